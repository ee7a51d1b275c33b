//! The digest, logwatch's replacement: per backend over a span, its
//! incidents and downtime, request volume, 5xx share, p95, the servers with
//! the most errors and how sessions ended. `hapwatch digest` prints it; the
//! daemon can mail it daily or hourly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::store::Db;

use crate::figures::{compact_duration, pct};

use crate::incidents::Kind;
use crate::store::incidents::{self, IncidentFilter};
use crate::store::queries::{self, WindowFilter};
use crate::windows::Counts;

#[derive(Debug, Default)]
pub struct BackendDigest {
    pub backend: String,
    pub counts: Counts,
    /// (server, counts), most 5xx first.
    pub servers: Vec<(String, Counts)>,
    /// Incidents active in the span, by kind.
    pub incidents: BTreeMap<&'static str, u64>,
    /// Seconds of server or backend outage within the span.
    /// Time with no server available (backend_down incidents, overlaps counted once).
    pub downtime_s: i64,
    /// Server-seconds DOWN (server_down incidents, one per server).
    pub servers_down_s: i64,
}

pub fn build(
    conn: &Db,
    since_ms: i64,
    until_ms: i64,
) -> crate::store::DbResult<Vec<BackendDigest>> {
    let mut by_backend: BTreeMap<String, BackendDigest> = BTreeMap::new();
    let mut by_server: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let filter = WindowFilter {
        since_s: since_ms.div_euclid(1000),
        until_s: until_ms.div_euclid(1000),
        ..Default::default()
    };
    queries::for_each_window(conn, &filter, |w| {
        let d = by_backend.entry(w.backend.to_owned()).or_default();
        d.counts.merge(&w.counts);
        d.counts.t_total.merge_encoded(w.t_total);
        by_server
            .entry((w.backend.to_owned(), w.server.to_owned()))
            .or_default()
            .merge(&w.counts);
    })?;
    for ((backend, server), c) in by_server {
        if let Some(d) = by_backend.get_mut(&backend) {
            d.servers.push((server, c));
        }
    }
    let list = incidents::list(
        conn,
        &IncidentFilter {
            since_ms,
            ..Default::default()
        },
    )?;
    let mut outages: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for s in list.iter().filter(|s| s.incident.opened_ms < until_ms) {
        let Some(backend) = s.incident.backend.clone() else {
            continue;
        };
        let d = by_backend.entry(backend).or_default();
        *d.incidents.entry(s.incident.kind.as_str()).or_default() += 1;
        let start = s.incident.opened_ms.max(since_ms);
        let end = s.resolved_ms.unwrap_or(until_ms).min(until_ms);
        match s.incident.kind {
            Kind::BackendDown => outages
                .entry(s.incident.backend.clone().unwrap_or_default())
                .or_default()
                .push((start, end)),
            Kind::ServerDown => d.servers_down_s += (end - start).max(0) / 1000,
            _ => {}
        }
    }
    // A backend is down once however many hosts or incidents say so at once.
    for (backend, mut spans) in outages {
        spans.sort_unstable();
        let (mut total, mut reach) = (0i64, i64::MIN);
        for (start, end) in spans {
            let from = start.max(reach);
            if end > from {
                total += end - from;
            }
            reach = reach.max(end);
        }
        if let Some(d) = by_backend.get_mut(&backend) {
            d.downtime_s = total / 1000;
        }
    }
    let mut out: Vec<BackendDigest> = by_backend
        .into_iter()
        .map(|(backend, mut d)| {
            d.backend = backend;
            d.servers
                .sort_by(|a, b| b.1.s5xx.cmp(&a.1.s5xx).then(a.0.cmp(&b.0)));
            d
        })
        .collect();
    // The backends with trouble first, then by volume.
    out.sort_by(|a, b| {
        let trouble = |d: &BackendDigest| d.incidents.values().sum::<u64>() + d.counts.s5xx;
        trouble(b)
            .cmp(&trouble(a))
            .then(b.counts.requests.cmp(&a.counts.requests))
    });
    Ok(out)
}

/// The stored mail of a digest up to `until_ms` for one channel; `unique_ms`
/// makes its Message-ID (the daemon's schedule, or now for `digest --send`).
pub fn mail(mail_domain: &str, body: &str, until_ms: i64, unique_ms: i64) -> String {
    serde_json::json!({
        "subject": format!("[hapwatch] digest {}", crate::timezone::rfc3339(until_ms)),
        "body": body,
        "message_id": format!("<hapwatch-digest-{unique_ms}@{mail_domain}>"),
        "in_reply_to": null,
    })
    .to_string()
}

/// Plain text, for the terminal and the mail body.
pub fn render(digests: &[BackendDigest], since_ms: i64, until_ms: i64) -> String {
    let mut t = format!(
        "hapwatch digest {} → {}\n",
        crate::timezone::rfc3339(since_ms),
        crate::timezone::rfc3339(until_ms)
    );
    if digests.is_empty() {
        t += "\nNo traffic and no incidents in this span.\n";
        return t;
    }
    for d in digests {
        let c = &d.counts;
        let _ = writeln!(t, "\n{}", d.backend);
        let _ = writeln!(
            t,
            "  requests {}   5xx {:.2} %   4xx {:.2} %   p95 {}   retries {}   redispatches {}",
            c.requests,
            pct(c.s5xx, c.requests),
            pct(c.s4xx, c.requests),
            c.t_total
                .quantile(0.95)
                .map_or("-".into(), |v| format!("{v} ms")),
            c.retries,
            c.redispatches
        );
        if d.incidents.is_empty() {
            let _ = writeln!(t, "  incidents none");
        } else {
            let kinds: Vec<String> = d
                .incidents
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                t,
                "  incidents {}   no server available {}   servers DOWN {}",
                kinds.join(", "),
                compact_duration(d.downtime_s * 1000),
                compact_duration(d.servers_down_s * 1000)
            );
        }
        let ended = [
            ("client", c.term_client),
            ("server", c.term_server),
            ("proxy", c.term_proxy),
            ("resource", c.term_resource),
            ("killed", c.term_other),
        ];
        let ended: Vec<String> = ended
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !ended.is_empty() {
            let _ = writeln!(t, "  sessions ended abnormally: {}", ended.join(", "));
        }
        for (server, s) in d.servers.iter().filter(|(_, s)| s.s5xx > 0).take(3) {
            let _ = writeln!(
                t,
                "  {server}: {} 5xx of {} ({:.2} %)",
                s.s5xx,
                s.requests,
                pct(s.s5xx, s.requests)
            );
        }
    }
    t
}

/// When the next digest is due after `now_ms`: on the hour, or daily at
/// `hour` (UTC offset of the local zone applied by the caller).
pub fn next_due(now_ms: i64, every: Every, hour: u32) -> i64 {
    let h = 3_600_000;
    match every {
        Every::Hourly => (now_ms.div_euclid(h) + 1) * h,
        Every::Daily => {
            let day = 24 * h;
            let today = now_ms.div_euclid(day) * day + i64::from(hour) * h;
            if today > now_ms {
                today
            } else {
                today + day
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Hourly,
    Daily,
}

/// `[digest]` in the config: off unless `channels` names email channels.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestConfig {
    pub every: Every,
    /// Daily digests leave at this hour, UTC.
    pub hour: u32,
    /// Email channels that receive it.
    pub channels: Vec<String>,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            every: Every::Daily,
            hour: 6,
            channels: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_counted_once_and_server_downtime_apart() {
        use crate::incidents::{Change, Incident, Severity};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let w = crate::store::writer::Writer::spawn(
            crate::store::open_write(&path).unwrap(),
            None,
            Default::default(),
        );
        let incident = |id: i64, kind: Kind, server: Option<&str>| Incident {
            id,
            key: crate::incidents::IncidentKey::stored(format!("k{id}")),
            kind,
            severity: Severity::Warning,
            host: "lb1".into(),
            backend: Some("be".into()),
            server: server.map(Into::into),
            opened_ms: 10_000,
            reminder_ms: None,
            ack: None,
            summary: "x".into(),
            detail: Default::default(),
        };
        let mut changes = Vec::new();
        // A 15 s outage: both servers DOWN and "no server available", all at once.
        for i in [
            incident(1, Kind::ServerDown, Some("s1")),
            incident(2, Kind::ServerDown, Some("s2")),
            incident(3, Kind::BackendDown, None),
        ] {
            changes.push(Change::Opened(i.clone()));
            changes.push(Change::Resolved {
                id: i.id,
                ts_ms: 25_000,
                incident: Box::new(i),
                note: "UP".into(),
            });
        }
        w.tx.send(crate::store::writer::WriteOp::Incidents(changes, vec![]))
            .unwrap();
        w.finish();
        let conn = crate::store::open_read(&path).unwrap();
        let d = build(&conn, 0, 60_000).unwrap();
        let be = d.iter().find(|d| d.backend == "be").unwrap();
        assert_eq!((be.downtime_s, be.servers_down_s), (15, 30));
    }

    #[test]
    fn digests_are_due_on_the_hour_or_the_day() {
        let h = 3_600_000;
        assert_eq!(next_due(10 * h + 5, Every::Hourly, 0), 11 * h);
        assert_eq!(next_due(5 * h, Every::Daily, 6), 6 * h);
        assert_eq!(next_due(6 * h, Every::Daily, 6), 30 * h);
    }
}
