//! What the HTTP endpoints show: a view the pipeline publishes each second
//! (traffic totals since start, every server's state) plus the live counters.

use std::collections::HashMap;
use std::sync::RwLock;

use hapwatch_parsers::Traffic;

use crate::hist::{bucket_range, Histogram};

/// Totals of one (host, backend, server) since the daemon started.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub requests: u64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub classes: [u64; 6],
    pub retries: u64,
    pub redispatches: u64,
    pub bytes: u64,
    pub latency: Histogram,
    pub latency_sum_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub host: String,
    pub backend: String,
    pub server: String,
}

/// Per-route totals, updated for every traffic line.
#[derive(Default)]
pub struct TrafficTotals {
    /// Keyed by `host NUL backend NUL server`: a line is looked up without allocating.
    routes: HashMap<String, (Route, Totals)>,
    key: String,
}

impl TrafficTotals {
    pub fn add(&mut self, host: &str, t: &Traffic<'_>) {
        let (backend, server) = (t.backend.unwrap_or(""), t.server.unwrap_or(""));
        self.key.clear();
        for part in [host, backend, server] {
            self.key.push_str(part);
            self.key.push('\0');
        }
        if !self.routes.contains_key(self.key.as_str()) {
            let route = Route {
                host: host.into(),
                backend: backend.into(),
                server: server.into(),
            };
            self.routes
                .insert(self.key.clone(), (route, Totals::default()));
        }
        let (_, totals) = self
            .routes
            .get_mut(self.key.as_str())
            .expect("inserted above");
        totals.requests += 1;
        // `classes` is indexed in StatusClass order.
        totals.classes[crate::windows::status_class(t.status) as usize] += 1;
        totals.retries += u64::from(t.retries.unwrap_or(0));
        totals.redispatches += u64::from(t.redispatched);
        totals.bytes = totals.bytes.saturating_add(t.bytes_read.unwrap_or(0));
        if let Some(v) = t.t_active.or(t.t_total).filter(|v| *v >= 0) {
            totals.latency.record(v as u64);
            totals.latency_sum_ms = totals.latency_sum_ms.saturating_add(v as u64);
        }
    }

    pub fn snapshot(&self) -> Vec<(Route, Totals)> {
        self.routes.values().cloned().collect()
    }
}

/// A server's state as the logs tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    pub host: String,
    pub backend: String,
    pub server: String,
    /// UP, DOWN, MAINT, DRAIN, STOPPING; UP for a server only seen serving traffic.
    pub state: String,
}

#[derive(Debug, Clone, Default)]
pub struct View {
    pub traffic: Vec<(Route, Totals)>,
    pub servers: Vec<ServerView>,
    pub open_incidents: [u64; 3],
    pub updated_ms: i64,
}

/// Shared between the pipeline thread (writer) and the HTTP server (readers).
#[derive(Default)]
pub struct Observed {
    view: RwLock<View>,
}

impl Observed {
    pub fn publish(&self, view: View) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }

    /// When the view was last published (0: never), without copying it.
    pub fn updated_ms(&self) -> i64 {
        self.view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .updated_ms
    }

    pub fn view(&self) -> View {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Prometheus buckets (ms) the log-linear histogram is folded into.
pub const LE_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// Cumulative counts at each `LE_MS` bound. A log bucket counts under a bound
/// when its largest value is within it, so counts are exact at these bounds
/// up to the histogram's bucket width.
pub fn cumulative(h: &Histogram) -> Vec<u64> {
    let mut out = vec![0; LE_MS.len()];
    for (b, n) in h.buckets() {
        let (_, hi) = bucket_range(b);
        for (i, le) in LE_MS.iter().enumerate() {
            if hi <= *le {
                out[i] += n;
            }
        }
    }
    out
}
