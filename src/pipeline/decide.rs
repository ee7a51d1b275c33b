//! Putting events and readings to the engine and applying its changes:
//! logged, stored, and the notifications they owe queued.

use hapwatch_parsers::Record;

use super::cluster::Decisions;
use crate::incidents::{Change, Engine, Severity};
use crate::notify::notifier::Notifier;
use crate::store::writer::WriteOp;

/// An event put to the engine (if any), its changes applied with the
/// traffic evidence: (rates, decisions, notifier, now).
pub(super) fn decide(
    engine: &mut Option<Engine>,
    (rates, decisions, notifier, now_ms): (&crate::rules::Rates, &Decisions, &mut Notifier, i64),
    host: &str,
    rec: &Record<'_>,
    ts_ms: i64,
) {
    if let Some(engine) = engine {
        let mut changes = engine.on_event(host, &rec.event, ts_ms, rec.message);
        add_evidence(rates, &mut changes);
        apply(decisions, notifier, changes, engine, now_ms);
    }
}

/// Every event at debug level; what matters is logged by `apply` as incidents.
pub(super) fn log_event(host: &str, rec: &Record<'_>) {
    tracing::debug!(host = %crate::escape::escape(host), kind = rec.event.kind(), template = rec.event.template(), "{}", crate::escape::escape(rec.message));
}

/// Adds the last window's traffic of the incident's backend (or server) to
/// its evidence, as it was when the incident opened.
pub(super) fn add_evidence(rates: &crate::rules::Rates, changes: &mut [Change]) {
    for c in changes {
        if let Change::Opened(i) = c {
            let Some(backend) = i.backend.as_deref() else {
                continue;
            };
            let figures = rates
                .figures(&i.host, backend, i.server.as_deref())
                .or_else(|| rates.figures(&i.host, backend, None));
            if let Some(f) = figures {
                i.detail.insert("last_window".into(), f);
            }
        }
    }
}

/// Logs incident changes (the alert channel of last resort) and stores them
/// with the notifications they cause, decided at `now_ms` (the wall clock,
/// not the lines' time).
pub(super) fn apply(
    decisions: &Decisions,
    notifier: &mut Notifier,
    changes: Vec<Change>,
    engine: &Engine,
    now_ms: i64,
) {
    // Standing by, the engine only keeps up: the node deciding notifies.
    if changes.is_empty() || !decisions.deciding() {
        return;
    }
    for c in &changes {
        match c {
            Change::Opened(i) => {
                // Names come from the network: no CR/LF may forge a log line.
                let (id, host) = (i.id, i.host.as_str());
                let summary = crate::escape::escape(&i.summary);
                let reason = i.detail.get("reason").and_then(|r| r.as_str());
                match i.severity {
                    Severity::Critical => {
                        tracing::error!(incident = id, host, reason, "ALERT {summary}")
                    }
                    Severity::Warning => {
                        tracing::warn!(incident = id, host, reason, "ALERT {summary}")
                    }
                    Severity::Info => tracing::info!(incident = id, host, "{summary}"),
                }
            }
            Change::Resolved {
                id, incident, note, ..
            } => {
                let (summary, note) = (
                    crate::escape::escape(&incident.summary),
                    crate::escape::escape(note),
                );
                tracing::info!(incident = id, "RESOLVED {summary}: {note}");
            }
            Change::Timeline { id, text, .. } => {
                tracing::debug!(incident = id, "{}", crate::escape::escape(text))
            }
        }
    }
    let now = now_ms;
    let mut notifications = notifier.changes(&changes, now);
    // An incident that stood for others resolved: those still open are owed.
    for c in &changes {
        if let Change::Resolved { incident, .. } = c {
            let still_open: Vec<crate::incidents::Incident> = engine
                .open_incidents()
                .filter(|i| stood_for(incident, i))
                .cloned()
                .collect();
            if !still_open.is_empty() {
                notifications.extend(notifier.release(incident.id, &still_open, now));
            }
        }
    }
    decisions.send(WriteOp::Incidents(changes, notifications));
}

/// Whether `by`'s notice stood for `i`'s: a host's (host DOWN, silent) for
/// every other of that host; "no server available" for its servers' DOWN
/// and its degraded notice.
fn stood_for(by: &crate::incidents::Incident, i: &crate::incidents::Incident) -> bool {
    use crate::incidents::Kind;
    let host_level = |k: Kind| matches!(k, Kind::HostDown | Kind::Silence);
    match by.kind {
        k if host_level(k) => i.host == by.host && !host_level(i.kind),
        Kind::BackendDown => {
            i.host == by.host
                && i.backend == by.backend
                && matches!(i.kind, Kind::ServerDown | Kind::BackendDegraded)
        }
        _ => false,
    }
}
