//! Carrying on where the last run stopped: open incidents, each server's
//! last state, and the notifications owed (waiting in their group, sent,
//! withheld), read back from the store at start.

use crate::config::Config;
use crate::incidents::Engine;
use crate::notify::group::Restored;
use crate::notify::OutboxOp;

/// The engine and notifier's state as the store has them, and what to
/// settle (rows that cannot be read back), for the caller to send once it
/// may decide. Sharing the store with other groups of nodes, only this
/// group's incidents and waiting rows are read back. `conn` is the caller's,
/// to hand on to the notifier after (one connect on the takeover's path).
pub fn restore(
    config: &Config,
    db: &crate::store::Location,
    conn: &crate::store::Db,
    now: i64,
) -> Result<(Engine, Restored, Vec<OutboxOp>), super::DaemonError> {
    let read = |source| super::DaemonError::Restore {
        path: db.to_string(),
        source,
    };
    let since = now - config.storage.retain_events.as_millis() as i64;
    let group =
        matches!(db, crate::store::Location::Postgres(_)).then_some(config.cluster.group.as_str());
    let (next_id, open, fleet) =
        crate::store::incidents::restore(conn, since, group).map_err(read)?;
    if !open.is_empty() {
        tracing::info!(open = open.len(), "incidents still open from the last run");
    }
    let (waiting, unreadable) = crate::store::outbox::waiting(conn, group).map_err(read)?;
    if !unreadable.is_empty() {
        tracing::error!(rows = ?unreadable, "outbox rows in their group wait cannot be read back; marked failed");
    }
    let settle = unreadable
        .into_iter()
        .map(|id| OutboxOp::Settle {
            id,
            state: crate::notify::RowState::Failed,
            note: "its change could not be read back after a restart".into(),
            message: None,
        })
        .collect();
    let outbox = Restored {
        now_ms: now,
        legacy_max: crate::store::outbox::legacy_max(conn).map_err(read)?,
        next_row: crate::store::outbox::next_id(conn).map_err(read)?,
        waiting,
        sent: crate::store::outbox::sent_firings(conn, since, group).map_err(read)?,
        withheld: crate::store::outbox::withheld_firings(conn, since, group).map_err(read)?,
    };
    if !outbox.waiting.is_empty() {
        tracing::info!(
            rows = outbox.waiting.len(),
            "notifications still in their group wait from the last run"
        );
    }
    let engine = Engine::new(config.incidents.clone(), next_id, open, fleet)
        .with_host_limit(config.limits.hosts)
        .with_server_idle(config.limits.route_idle);
    Ok((engine, outbox, settle))
}
