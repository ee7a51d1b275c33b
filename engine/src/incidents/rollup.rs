//! Host rollups: when most of a host's backends have no server available at
//! once (an LB reboot, a network cut), one `host_down` incident for the host,
//! whose notice supersedes its backends' and servers' ones (the notifier's
//! side); it resolves once most are back, saying what came back and what
//! did not.

use serde_json::{json, Map, Value};

use super::{Change, Engine, IncidentKey, Kind, Severity};

impl Engine {
    /// The host's backends the fleet knows, and those with no server available now.
    fn backends_down(&self, host: &str) -> (usize, Vec<String>) {
        let known: std::collections::HashSet<&str> = self
            .fleet
            .servers
            .keys()
            .filter(|(h, _, _)| h == host)
            .map(|(_, b, _)| b.as_str())
            .collect();
        let mut down: Vec<String> = self
            .open
            .values()
            .filter(|i| i.kind == Kind::BackendDown && i.host == host)
            .filter_map(|i| i.backend.clone())
            .collect();
        down.sort();
        // A backend named only by its "no server available" line counts as known.
        let known = known.len().max(down.len());
        (known, down)
    }

    /// Opens or resolves the host's rollup after what just happened there.
    pub(super) fn host_rollup(&mut self, out: &mut Vec<Change>, host: &str, ts_ms: i64) {
        let share = self.cfg.host_share;
        if share <= 0.0 {
            return;
        }
        let key = IncidentKey::host(host);
        let (known, down) = self.backends_down(host);
        // At least two backends, and more than the share of those known.
        let most = down.len() >= 2 && down.len() as f64 > share * known as f64;
        match (self.open.get(&key), most) {
            (None, true) => {
                let mut detail = Map::new();
                detail.insert("backends_down".into(), json!(down));
                detail.insert("backends".into(), json!(known));
                let summary = format!(
                    "host {host}: {} of {known} backends have no server available",
                    down.len()
                );
                self.open(
                    out,
                    key,
                    Kind::HostDown,
                    Severity::Critical,
                    (host, None, None),
                    ts_ms,
                    summary,
                    detail,
                );
            }
            (Some(open), false) => {
                let was: Vec<String> = open
                    .detail
                    .get("backends_down")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let back: Vec<&str> = was
                    .iter()
                    .filter(|b| !down.contains(b))
                    .map(String::as_str)
                    .collect();
                let list = |v: &[&str]| {
                    if v.is_empty() {
                        "-".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                let still: Vec<&str> = down.iter().map(String::as_str).collect();
                let note = format!("back: {}; still down: {}", list(&back), list(&still));
                self.resolve(out, &key, ts_ms, note);
            }
            _ => {}
        }
    }
}
