//! Rule incidents: a backend's (or server's) traffic over a threshold.

use serde_json::{json, Map};

use super::{Change, Engine, IncidentKey, Kind, Severity};

impl Engine {
    /// A traffic rule's reading for one backend (once a second).
    pub fn on_reading(
        &mut self,
        subject: &crate::rules::Subject,
        r: &crate::rules::Reading,
        now_ms: i64,
        hold_ms: i64,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        let (host, backend) = (subject.host.as_str(), subject.backend.as_str());
        let server = subject.server.as_deref();
        let key = match server {
            Some(s) => IncidentKey::rule(host, backend, Some(s), r.rule),
            None => IncidentKey::rule(host, backend, None, r.rule),
        };
        let name = match server {
            Some(s) => format!("server {backend}/{s}"),
            None => format!("backend {backend}"),
        };
        let firing = self.open.contains_key(&key);
        let show = |v: f64| crate::rules::show_value(r.rule, v);
        let what = r.rule.replace('_', " ");
        match r.value {
            Some(v) if !firing && v > r.fire => {
                let since = *self.pending.entry(key.clone()).or_insert(now_ms);
                if now_ms - since >= hold_ms {
                    self.pending.remove(&key);
                    let mut detail = Map::new();
                    detail.insert("rule".into(), json!(r.rule));
                    detail.insert("value".into(), json!(v));
                    detail.insert("threshold".into(), json!(r.fire));
                    detail.insert("requests".into(), json!(r.requests));
                    self.open(
                        &mut out,
                        key,
                        Kind::Rule,
                        Severity::Warning,
                        (host, Some(backend), server),
                        now_ms,
                        format!("{name}: {what} {} (fires above {})", show(v), show(r.fire)),
                        detail,
                    );
                }
            }
            Some(v) if firing && v < r.resolve => {
                self.resolve(
                    &mut out,
                    &key,
                    now_ms,
                    format!("{what} {} is under {}", show(v), show(r.resolve)),
                );
            }
            None if firing => {
                self.resolve(
                    &mut out,
                    &key,
                    now_ms,
                    "too little traffic left to judge".into(),
                );
            }
            Some(v) if v > r.fire => {}
            _ => {
                self.pending.remove(&key);
            }
        }
        out
    }
}
