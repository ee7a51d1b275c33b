//! What the HTTP endpoints show: a view the pipeline publishes each second
//! (traffic totals since start, every server's state) plus the live counters.

use std::collections::HashMap;
use std::sync::RwLock;

use hapwatch_parsers::Traffic;

use crate::fasthash::FastMap;
use crate::hist::{bucket_range, Histogram};
use crate::route::{NameId, RouteId, Routes};

/// Totals of one (host, backend, server) since the daemon started: the same
/// tally as a window's.
pub type Totals = crate::windows::Counts;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub host: String,
    pub backend: String,
    pub server: String,
}

/// A route of the totals: (host, backend, server), interned.
pub type TotalsKey = [NameId; 3];

/// Per-route totals, updated for every traffic line; at most `limit`
/// routes (the rest count in one overflow route), idle ones forgotten.
pub struct TrafficTotals {
    routes: FastMap<TotalsKey, Entry>,
    limit: usize,
    idle_ms: i64,
    /// Lines counted in the overflow route because `limit` was reached.
    pub overflowed: u64,
    /// Routes changed since the last `take_changes`, and routes forgotten.
    changed: Vec<TotalsKey>,
    forgotten: Vec<TotalsKey>,
    /// When idle routes were last looked for.
    expired_ms: i64,
}

struct Entry {
    route: Route,
    totals: Totals,
    last_ms: i64,
    /// Already in `changed`.
    dirty: bool,
}

/// The route that holds what is over the limit: `_overflow` thrice.
const OVERFLOW: TotalsKey = [Routes::OVERFLOW_ID; 3];

impl Default for TrafficTotals {
    fn default() -> Self {
        TrafficTotals::new(20_000, 3_600_000)
    }
}

impl TrafficTotals {
    pub fn new(limit: usize, idle_ms: i64) -> TrafficTotals {
        TrafficTotals {
            routes: FastMap::default(),
            limit: limit.max(1),
            idle_ms,
            overflowed: 0,
            changed: Vec::new(),
            forgotten: Vec::new(),
            expired_ms: i64::MIN,
        }
    }

    /// Whether the line went to the overflow route.
    pub fn add(&mut self, names: &Routes, route: RouteId, t: &Traffic<'_>, now_ms: i64) -> bool {
        let mut key = [route.host, route.backend, route.server];
        if !self.routes.contains_key(&key) && self.routes.len() >= self.limit {
            if self.overflowed == 0 {
                tracing::warn!(limit = self.limit, "more routes than [limits] routes: the rest are counted under backend \"_overflow\"");
            }
            self.overflowed += 1;
            key = OVERFLOW;
        }
        let over = key == OVERFLOW;
        let e = self.routes.entry(key).or_insert_with(|| {
            let [host, backend, server] = key.map(|id| names.name(id).to_owned());
            Entry {
                route: Route {
                    host,
                    backend,
                    server,
                },
                totals: Totals::default(),
                last_ms: now_ms,
                dirty: false,
            }
        });
        e.last_ms = now_ms;
        if !e.dirty {
            e.dirty = true;
            self.changed.push(key);
        }
        e.totals.add(t);
        over
    }

    /// Forgets routes idle for `idle_ms`; scans at most once a minute, so the
    /// per-second work stays with what changed.
    pub fn expire(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.expired_ms) < 60_000 {
            return;
        }
        self.expired_ms = now_ms;
        let idle = self.idle_ms;
        let forgotten = &mut self.forgotten;
        self.routes.retain(|k, e| {
            let keep = now_ms - e.last_ms < idle;
            if !keep {
                forgotten.push(*k);
            }
            keep
        });
    }

    /// What changed since the last call: (changed routes, forgotten keys).
    pub fn take_changes(&mut self) -> (Vec<(TotalsKey, Route, Totals)>, Vec<TotalsKey>) {
        let mut out = Vec::with_capacity(self.changed.len());
        for key in self.changed.drain(..) {
            if let Some(e) = self.routes.get_mut(&key) {
                e.dirty = false;
                out.push((key, e.route.clone(), e.totals.clone()));
            }
        }
        (out, std::mem::take(&mut self.forgotten))
    }
}

/// A server's state as the logs tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    pub host: String,
    pub backend: String,
    pub server: String,
    /// What the logs said; UP for a server only seen serving traffic.
    pub state: crate::incidents::fleet::StateSeen,
}

#[derive(Debug, Clone, Default)]
pub struct View {
    pub traffic: Vec<(Route, Totals)>,
    pub servers: Vec<ServerView>,
    pub open_incidents: [u64; 3],
    pub updated_ms: i64,
}

/// The pipeline publishes every second: a view older than this means it is
/// stuck (`/healthz`, the heartbeat; the outbox loop is held to the same).
pub const STALE_MS: i64 = 10_000;

/// Shared between the pipeline thread (writer) and the HTTP server (readers).
#[derive(Default)]
pub struct Observed {
    /// Servers, incident counts, time; `traffic` is kept apart.
    view: RwLock<View>,
    /// Live totals per route, updated with what changed each second.
    traffic: RwLock<HashMap<TotalsKey, (Route, Totals)>>,
}

impl Observed {
    pub fn publish(&self, view: View) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }

    /// Applies the routes changed and forgotten since the last second.
    pub fn update_traffic(
        &self,
        changed: Vec<(TotalsKey, Route, Totals)>,
        forgotten: Vec<TotalsKey>,
    ) {
        if changed.is_empty() && forgotten.is_empty() {
            return;
        }
        let mut t = self.traffic.write().unwrap_or_else(|p| p.into_inner());
        for key in forgotten {
            t.remove(&key);
        }
        for (key, route, totals) in changed {
            t.insert(key, (route, totals));
        }
    }

    /// When the view was last published (0: never), without copying it.
    pub fn updated_ms(&self) -> i64 {
        self.view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .updated_ms
    }

    pub fn view(&self) -> View {
        let mut v = self.view.read().unwrap_or_else(|p| p.into_inner()).clone();
        v.traffic = self
            .traffic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v
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
