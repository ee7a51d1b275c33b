//! Per-window traffic aggregation keyed by (host, frontend, backend, server).
//! Windows are aligned on Unix time; a line goes to the window of its own
//! event time, however late it arrives. Closed windows leave as rows; a late
//! line re-opens its window and the store merges the two rows.

use hapwatch_parsers::{TerminationClass, Traffic};

use crate::fasthash::FastMap;
use crate::hist::Histogram;
use crate::route::{NameId, RouteId, Routes};

/// An HTTP status's class; `Other` is no status (tcplog sessions, `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    S1xx,
    S2xx,
    S3xx,
    S4xx,
    S5xx,
    Other,
}

pub fn status_class(status: Option<i64>) -> StatusClass {
    match status {
        Some(100..=199) => StatusClass::S1xx,
        Some(200..=299) => StatusClass::S2xx,
        Some(300..=399) => StatusClass::S3xx,
        Some(400..=499) => StatusClass::S4xx,
        Some(500..=599) => StatusClass::S5xx,
        _ => StatusClass::Other,
    }
}

/// The figures of one window, mergeable by addition.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub s1xx: u64,
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    /// No HTTP status: tcplog sessions and `-1` (no response).
    pub s_other: u64,
    pub retries: u64,
    pub redispatches: u64,
    pub term_client: u64,
    pub term_server: u64,
    pub term_proxy: u64,
    pub term_resource: u64,
    /// Killed by an admin or the process (`D`, `K`, `U`).
    pub term_other: u64,
    pub bytes: u64,
    /// Ta (httplog) or Tt (tcplog), ms.
    pub t_total: Histogram,
    /// Their sum, for Prometheus' `_sum` (kept in memory; windows do not store it).
    pub t_total_sum_ms: u64,
    /// Tr, the server's response time, ms.
    pub t_response: Histogram,
}

impl Counts {
    pub fn add(&mut self, t: &Traffic<'_>) {
        self.requests += 1;
        *match status_class(t.status) {
            StatusClass::S1xx => &mut self.s1xx,
            StatusClass::S2xx => &mut self.s2xx,
            StatusClass::S3xx => &mut self.s3xx,
            StatusClass::S4xx => &mut self.s4xx,
            StatusClass::S5xx => &mut self.s5xx,
            StatusClass::Other => &mut self.s_other,
        } += 1;
        self.retries += u64::from(t.retries.unwrap_or(0));
        self.redispatches += u64::from(t.redispatched);
        match t.termination_class() {
            TerminationClass::Client => self.term_client += 1,
            TerminationClass::Server => self.term_server += 1,
            TerminationClass::Proxy => self.term_proxy += 1,
            TerminationClass::Resource => self.term_resource += 1,
            TerminationClass::Killed => self.term_other += 1,
            TerminationClass::Normal | TerminationClass::Local => {}
        }
        // A line's numbers come from the network: saturate, never overflow.
        self.bytes = self.bytes.saturating_add(t.bytes_read.unwrap_or(0));
        // -1 means the phase was never reached: no latency to record.
        if let Some(total) = t.t_active.or(t.t_total).filter(|v| *v >= 0) {
            self.t_total.record(total as u64);
            self.t_total_sum_ms = self.t_total_sum_ms.saturating_add(total as u64);
        }
        if let Some(tr) = t.t_response.filter(|v| *v >= 0) {
            self.t_response.record(tr as u64);
        }
    }

    pub fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.s1xx += o.s1xx;
        self.s2xx += o.s2xx;
        self.s3xx += o.s3xx;
        self.s4xx += o.s4xx;
        self.s5xx += o.s5xx;
        self.s_other += o.s_other;
        self.retries += o.retries;
        self.redispatches += o.redispatches;
        self.term_client += o.term_client;
        self.term_server += o.term_server;
        self.term_proxy += o.term_proxy;
        self.term_resource += o.term_resource;
        self.term_other += o.term_other;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.t_total.merge(&o.t_total);
        self.t_total_sum_ms = self.t_total_sum_ms.saturating_add(o.t_total_sum_ms);
        self.t_response.merge(&o.t_response);
    }

    /// Requests by status class, in `StatusClass` order (1xx … 5xx, other).
    pub fn classes(&self) -> [u64; 6] {
        [
            self.s1xx,
            self.s2xx,
            self.s3xx,
            self.s4xx,
            self.s5xx,
            self.s_other,
        ]
    }
}

/// Which error a kept raw line illustrates.
pub fn sample_class(t: &Traffic<'_>) -> Option<&'static str> {
    if matches!(t.status, Some(500..=599)) {
        return Some("5xx");
    }
    match t.termination_class() {
        TerminationClass::Normal | TerminationClass::Local => None,
        _ => Some("termination"),
    }
}

/// The evidence classes [`sample_class`] names, read back from a journal
/// (a class it does not name is kept as `termination`, the broader one).
fn sample_classes<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(&'static str, String)>, D::Error> {
    let owned: Vec<(String, String)> = serde::Deserialize::deserialize(d)?;
    Ok(owned
        .into_iter()
        .map(|(class, raw)| (if class == "5xx" { "5xx" } else { "termination" }, raw))
        .collect())
}

/// One closed window, ready for the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowRow {
    /// Unix seconds of the window's start.
    pub start: i64,
    pub span_s: i64,
    pub host: String,
    pub frontend: String,
    pub backend: String,
    pub server: String,
    pub counts: Counts,
    /// (class, raw line) evidence.
    #[serde(deserialize_with = "sample_classes")]
    pub samples: Vec<(&'static str, String)>,
    /// Requests by HTTP status code (0: none), in the order first seen.
    pub statuses: Vec<(u16, u64)>,
}

/// One backend's URL in one closed window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UrlRow {
    pub start: i64,
    pub span_s: i64,
    pub host: String,
    pub backend: String,
    pub method: String,
    pub path: String,
    pub counts: crate::urls::UrlCounts,
}

/// What closing windows hands to the store.
#[derive(Debug, Default)]
pub struct Closed {
    pub windows: Vec<WindowRow>,
    pub urls: Vec<UrlRow>,
}

#[cfg(test)]
impl Closed {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.urls.is_empty()
    }
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key {
    start: i64,
    route: RouteId,
}

#[derive(Default)]
struct Open {
    counts: Counts,
    samples: Vec<(&'static str, String)>,
    statuses: Vec<(u16, u64)>,
}

/// A backend's window, for its URL table.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct BackendKey {
    start: i64,
    host: NameId,
    backend: NameId,
}

pub struct Windows {
    span_ms: i64,
    grace_ms: i64,
    samples_per_window: usize,
    open: FastMap<Key, Open>,
    /// Distinct URLs kept per backend and window (0: no URL breakdown).
    url_limit: usize,
    urls: FastMap<BackendKey, crate::urls::UrlTable>,
    scratch: String,
}

impl Windows {
    pub fn new(
        span: std::time::Duration,
        grace: std::time::Duration,
        samples_per_window: usize,
        url_limit: usize,
    ) -> Self {
        Windows {
            span_ms: (span.as_millis() as i64).max(1000),
            grace_ms: grace.as_millis() as i64,
            samples_per_window,
            open: FastMap::default(),
            url_limit,
            urls: FastMap::default(),
            scratch: String::new(),
        }
    }

    /// Counts one traffic line at its event time `ts_ms`; `raw` is kept as
    /// evidence when the line shows an error and the window has room.
    pub fn add(
        &mut self,
        route: RouteId,
        t: &Traffic<'_>,
        ts_ms: i64,
        raw: impl FnOnce() -> String,
    ) {
        let key = Key {
            start: ts_ms.div_euclid(self.span_ms) * self.span_ms / 1000,
            route,
        };
        let limit = self.samples_per_window;
        let w = self.open.entry(key).or_default();
        w.counts.add(t);
        let code = crate::urls::status_code(t.status);
        match w.statuses.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => w.statuses.push((code, 1)),
        }
        if let Some(class) = sample_class(t) {
            if w.samples.iter().filter(|(c, _)| *c == class).count() < limit {
                w.samples.push((class, raw()));
            }
        }
        if self.url_limit > 0 && crate::urls::has_url(t) {
            let key = BackendKey {
                start: key.start,
                host: route.host,
                backend: route.backend,
            };
            self.urls
                .entry(key)
                .or_default()
                .add(t, self.url_limit, &mut self.scratch);
        }
    }

    #[cfg(test)]
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Closes every window that ended at least the grace period before `watermark_ms`.
    pub fn close_before(&mut self, names: &Routes, watermark_ms: i64) -> Closed {
        let cutoff_start_s = watermark_ms
            .saturating_sub(self.grace_ms + self.span_ms)
            .div_euclid(1000);
        let closing: Vec<Key> = self
            .open
            .keys()
            .filter(|k| k.start <= cutoff_start_s)
            .copied()
            .collect();
        let urls: Vec<BackendKey> = self
            .urls
            .keys()
            .filter(|k| k.start <= cutoff_start_s)
            .copied()
            .collect();
        self.take(names, closing, urls)
    }

    /// Closes everything (shutdown, end of a replay).
    pub fn close_all(&mut self, names: &Routes) -> Closed {
        let all: Vec<Key> = self.open.keys().copied().collect();
        let urls: Vec<BackendKey> = self.urls.keys().copied().collect();
        self.take(names, all, urls)
    }

    fn take(&mut self, names: &Routes, keys: Vec<Key>, url_keys: Vec<BackendKey>) -> Closed {
        let span_s = self.span_ms / 1000;
        let mut urls = Vec::new();
        for k in url_keys {
            let Some(table) = self.urls.remove(&k) else {
                continue;
            };
            let (host, backend) = (names.name(k.host), names.name(k.backend));
            urls.extend(table.into_rows().map(|(method, path, counts)| UrlRow {
                start: k.start,
                span_s,
                host: host.to_string(),
                backend: backend.to_string(),
                method,
                path,
                counts,
            }));
        }
        let windows = keys
            .into_iter()
            .filter_map(|k| {
                let w = self.open.remove(&k)?;
                let [host, frontend, backend, server] = names.names_of(k.route);
                Some(WindowRow {
                    start: k.start,
                    span_s,
                    host: host.to_string(),
                    frontend: frontend.to_string(),
                    backend: backend.to_string(),
                    server: server.to_string(),
                    counts: w.counts,
                    samples: w.samples,
                    statuses: w.statuses,
                })
            })
            .collect();
        Closed { windows, urls }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapwatch_parsers::{Event, Parser};
    use std::time::Duration;

    fn traffic_of<'a>(p: &'a Parser, line: &'a str) -> Box<Traffic<'a>> {
        match p.parse_message(line).unwrap() {
            Event::Traffic(t) => t,
            other => panic!("not traffic: {other:?}"),
        }
    }

    const OK: &str = "10.0.0.1:4242 [23/Nov/2026:01:23:33.398] fe_http be_app/app1 0/0/1/2/3 200 512 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"";
    const ERR: &str = "10.0.0.1:4242 [23/Nov/2026:01:23:34.000] fe_http be_app/app1 0/0/1/-1/40 503 212 - - SC-- 1/1/0/0/1 0/0 \"GET / HTTP/1.1\"";

    #[test]
    fn lines_land_in_their_own_window_and_close_after_the_grace() {
        let p = Parser::new(vec![]);
        let mut w = Windows::new(Duration::from_secs(60), Duration::from_secs(10), 1, 10);
        let mut names = Routes::new(100);
        let ok = traffic_of(&p, OK);
        let err = traffic_of(&p, ERR);
        let route = names.of("lb1", &ok);
        assert_eq!(route, names.of("lb1", &err));
        w.add(route, &ok, 60_000 + 5, || "ok".into());
        w.add(route, &err, 60_000 + 59_999, || "err1".into());
        w.add(route, &err, 60_000 + 30_000, || "err2".into());
        w.add(route, &ok, 120_000, || "next".into());
        assert_eq!(w.open_windows(), 2);
        // 60 s window [60, 120) closes at 120 s + 10 s grace.
        assert!(w.close_before(&names, 129_999).is_empty());
        let closed = w.close_before(&names, 130_000);
        let rows = closed.windows;
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.start, r.span_s, r.server.as_str()), (60, 60, "app1"));
        let c = &r.counts;
        assert_eq!(
            (c.requests, c.s2xx, c.s5xx, c.retries, c.term_server),
            (3, 1, 2, 2, 2)
        );
        assert_eq!(c.bytes, 512 + 2 * 212);
        assert_eq!(c.t_response.total(), 1, "Tr = -1 is not a latency");
        assert_eq!(c.t_total.total(), 3);
        assert_eq!(
            r.samples,
            vec![("5xx", "err1".to_string())],
            "one sample per class"
        );
        assert_eq!(r.statuses, vec![(200, 1), (503, 2)]);
        let urls: Vec<_> = closed
            .urls
            .iter()
            .map(|u| {
                (
                    u.start,
                    u.backend.as_str(),
                    u.method.as_str(),
                    u.path.as_str(),
                    u.counts.requests,
                    u.counts.s5xx,
                )
            })
            .collect();
        assert_eq!(urls, vec![(60, "be_app", "GET", "/", 3, 2)]);
        let rest = w.close_all(&names);
        assert_eq!((rest.windows.len(), rest.urls.len()), (1, 1));
    }
}
