//! Maintenance windows and reload graces: what they hold, and what their
//! end owes.

use super::{Notifier, OutboxOp, Silence};
use crate::incidents::Incident;

/// What a silence or window must cover to cover this incident: the
/// incident, or for a host's rollup each backend it counts.
fn backends_of(i: &Incident) -> Vec<Incident> {
    if i.kind != crate::incidents::Kind::HostDown {
        return vec![i.clone()];
    }
    let backends = crate::incidents::backends_counted(i);
    if backends.is_empty() {
        return vec![i.clone()];
    }
    backends
        .into_iter()
        .map(|b| {
            let mut probe = i.clone();
            probe.backend = Some(b);
            probe
        })
        .collect()
}

/// What covers each of `backends_of(i)` (the first one's), if all are.
fn covered<'a, T: ?Sized>(
    i: &Incident,
    covering: impl Fn(&Incident) -> Option<&'a T>,
) -> Option<&'a T> {
    let probes = backends_of(i);
    let first = covering(probes.first()?)?;
    probes
        .iter()
        .all(|p| covering(p).is_some())
        .then_some(first)
}

impl Notifier {
    /// `host`'s HAProxy has a new worker: hold what opens there for the
    /// reload grace, as a maintenance window of that host would.
    pub fn reloaded(&mut self, host: &str, now_ms: i64) {
        if self.reload_grace_ms <= 0 {
            return;
        }
        self.reload_windows
            .retain(|w| w.active_at(now_ms).is_some());
        self.reload_windows
            .push(hapwatch_engine::maintenance::Window {
                // No ':' (a note is read back up to it) and unique across restarts.
                name: format!("haproxy-reload-{}-{now_ms}", self.reload_windows.len() + 1),
                scope: hapwatch_engine::maintenance::Scope {
                    hosts: vec![host.to_owned()],
                    backends: Vec::new(),
                },
                when: hapwatch_engine::maintenance::When::Once {
                    start_ms: now_ms,
                    end_ms: now_ms + self.reload_grace_ms,
                },
                // What was down before the reload is not the new worker settling.
                fresh_only: true,
            });
    }

    pub(super) fn all_windows(
        &self,
    ) -> impl Iterator<Item = &hapwatch_engine::maintenance::Window> {
        self.windows
            .iter()
            .chain(&self.stored_windows)
            .chain(&self.reload_windows)
    }

    /// The active maintenance window that covers this incident, if any. A
    /// host's rollup is covered when each of its backends is.
    pub(super) fn window_over(&self, i: &Incident, now_ms: i64) -> Option<&str> {
        covered(i, |p| {
            self.all_windows()
                .find(|w| w.holds(p, now_ms))
                .map(|w| w.name.as_str())
        })
    }

    /// The silence that covers this incident, if any (a host's rollup: when
    /// each of its backends is covered).
    pub(super) fn silence_over(&self, i: &Incident) -> Option<&Silence> {
        covered(i, |p| {
            self.silences.iter().find(|s| s.scope.matches_incident(p))
        })
    }

    /// What windows that ended owe: the firings they held whose incidents
    /// are still open, once, routed again (a silence or another window may
    /// hold them still). Also returns how many windows are on.
    pub fn windows_ended<'a>(
        &mut self,
        open: impl Iterator<Item = &'a Incident>,
        now_ms: i64,
    ) -> (Vec<OutboxOp>, usize) {
        let active: std::collections::HashSet<String> = self
            .all_windows()
            .filter(|w| w.active_at(now_ms).is_some())
            .map(|w| w.name.clone())
            .collect();
        if !self.grouper.holds_for_windows() {
            return (Vec::new(), active.len());
        }
        let open: std::collections::HashMap<i64, Incident> =
            open.map(|i| (i.id, i.clone())).collect();
        let items = self
            .grouper
            .release_windows(&|name| active.contains(name), &open);
        (self.route_released(items, now_ms), active.len())
    }
}
