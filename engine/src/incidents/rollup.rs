//! Host rollups: when most of a host's backends have no server available at
//! once (an LB reboot, a network cut), one `host_down` incident for the host,
//! whose notice supersedes its backends' and servers' ones (the notifier's
//! side); it resolves once most are back, saying what came back and what
//! did not.

use serde_json::{json, Map, Value};

use hapwatch_parsers::ServerState;

use super::{Change, Engine, IncidentKey, Kind, Severity};

/// The backends a host's rollup counts (as it opened, and those gone since).
pub fn backends_counted(i: &super::Incident) -> Vec<String> {
    i.detail
        .get("backends_down")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a change can make a host's backends mostly down or not: a backend
/// losing its last server or getting one back. (Only these are worth the
/// scan of the host's servers, which an outage storm would pay per line.)
pub(super) fn may_change_host(c: &Change) -> bool {
    let i = match c {
        Change::Opened(i) => i,
        Change::Resolved { incident, .. } => incident,
        Change::Timeline { .. } => return false,
    };
    match i.kind {
        Kind::BackendDown => true,
        Kind::ServerDown => {
            matches!(c, Change::Resolved { .. })
                || i.detail.get("active_left").and_then(Value::as_u64) == Some(0)
        }
        _ => false,
    }
}

impl Engine {
    /// The host's backends the fleet knows, and those failing now: with no
    /// server available, or whose newest state line was a DOWN leaving 0
    /// active and 0 backup servers (it comes before its "no server
    /// available": counting it then keeps the host's count from dipping).
    /// HAProxy's own count decides, not the servers the fleet happens to know.
    fn backends_down(&self, host: &str) -> (usize, Vec<String>) {
        // backend → its newest state change: (when, DOWN with nothing left)
        let mut newest: std::collections::HashMap<&str, (i64, bool)> = Default::default();
        for ((h, b, _), s) in &self.fleet.servers {
            if h != host {
                continue;
            }
            let emptied = s.state.is(ServerState::Down)
                && s.active_left == Some(0)
                && s.backup_left.unwrap_or(0) == 0;
            let e = newest.entry(b.as_str()).or_insert((i64::MIN, false));
            if s.since_ms >= e.0 {
                *e = (s.since_ms, emptied);
            }
        }
        let mut down: Vec<String> = newest
            .iter()
            .filter(|(_, (_, emptied))| *emptied)
            .map(|(b, _)| (*b).to_owned())
            .collect();
        for i in self.open.values() {
            if let (Kind::BackendDown, true, Some(b)) = (i.kind, i.host == host, &i.backend) {
                if !down.contains(b) {
                    down.push(b.clone());
                }
            }
        }
        down.sort();
        // A backend named only by its "no server available" line counts as known.
        let known = newest.len().max(down.len());
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
            (Some(_), true) => {
                // Still most: what went down since is part of it, for the resolve.
                if let Some(open) = self.open.get_mut(&key) {
                    let mut all: Vec<String> = backends_counted(open);
                    for b in down {
                        if !all.contains(&b) {
                            all.push(b);
                        }
                    }
                    all.sort();
                    open.detail.insert("backends_down".into(), json!(all));
                }
            }
            (Some(open), false) => {
                let was: Vec<String> = backends_counted(open);
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

#[cfg(test)]
mod tests {
    use super::super::fleet::Fleet;
    use super::super::{Change, Engine, IncidentsConfig, Kind};
    use hapwatch_parsers::Parser;

    fn feed(engine: &mut Engine, message: &str, ts_ms: i64) -> Vec<Change> {
        let parser = Parser::new(vec![]);
        let event = parser.parse_message(message).unwrap();
        engine.on_event("lb1", &event, ts_ms, message)
    }

    fn host_changes(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Opened(i) if i.kind == Kind::HostDown => Some(i.summary.clone()),
                Change::Resolved { incident, note, .. } if incident.kind == Kind::HostDown => {
                    Some(format!("resolved: {note}"))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_backend_still_served_is_not_failing_whatever_the_fleet_knows() {
        let mut e = Engine::new(IncidentsConfig::default(), 1, vec![], Fleet::default());
        let mut said = Vec::new();
        for b in ["be_b", "be_c"] {
            said.extend(host_changes(&feed(&mut e, &format!("Server {b}/s2 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 2 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."), 0)));
        }
        said.extend(host_changes(&feed(&mut e, "Server be_a/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.", 10)));
        said.extend(host_changes(&feed(
            &mut e,
            "backend be_a has no server available!",
            11,
        )));
        assert!(said.is_empty(), "one backend of three is down: {said:?}");
    }

    #[test]
    fn most_backends_down_open_the_host_and_fewer_resolve_it_saying_what_came_back() {
        let mut e = Engine::new(IncidentsConfig::default(), 1, vec![], Fleet::default());
        let mut said = Vec::new();
        feed(&mut e, "Health check for server be_d/s1 succeeded, reason: Layer7 check passed, code: 200, check duration: 2ms, status: 2/2 UP.", 0);
        for (t, b) in ["be_a", "be_b", "be_c"].iter().enumerate() {
            let t = t as i64 * 10;
            said.extend(host_changes(&feed(&mut e, &format!("Server {b}/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."), t)));
            said.extend(host_changes(&feed(
                &mut e,
                &format!("backend {b} has no server available!"),
                t + 1,
            )));
        }
        said.extend(host_changes(&feed(&mut e, "Server be_a/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.", 100)));
        assert_eq!(
            said,
            [
                "host lb1: 2 of 3 backends have no server available",
                "resolved: back: be_a; still down: be_b, be_c",
            ]
        );
    }
}
