//! Carrying on where the last run stopped: open incidents, each server's
//! last state, and the notifications owed (waiting in their group, sent,
//! withheld), read back from the store at start.

use std::sync::mpsc::SyncSender;

use crate::config::Config;
use crate::incidents::Engine;
use crate::notify::group::Restored;
use crate::store::writer::WriteOp;

pub fn restore(
    config: &Config,
    db: &crate::store::Location,
    store: &SyncSender<WriteOp>,
    now: i64,
) -> Result<(Engine, Restored), super::DaemonError> {
    let conn = db.open_read()?;
    let read = |source| super::DaemonError::Restore {
        path: db.to_string(),
        source,
    };
    let since = now - config.storage.retain_events.as_millis() as i64;
    let (next_id, open, fleet) = crate::store::incidents::restore(&conn, since).map_err(read)?;
    if !open.is_empty() {
        tracing::info!(open = open.len(), "incidents still open from the last run");
    }
    let (waiting, unreadable) = crate::store::outbox::waiting(&conn).map_err(read)?;
    if !unreadable.is_empty() {
        tracing::error!(rows = ?unreadable, "outbox rows in their group wait cannot be read back; marked failed");
        let ops = unreadable
            .into_iter()
            .map(|id| crate::notify::OutboxOp::Settle {
                id,
                state: crate::notify::RowState::Failed,
                note: "its change could not be read back after a restart".into(),
                message: None,
            })
            .collect();
        let _ = store.send(WriteOp::Incidents(Vec::new(), ops));
    }
    let outbox = Restored {
        now_ms: now,
        legacy_max: crate::store::outbox::legacy_max(&conn).map_err(read)?,
        next_row: crate::store::outbox::next_id(&conn).map_err(read)?,
        waiting,
        sent: crate::store::outbox::sent_firings(&conn, since).map_err(read)?,
        withheld: crate::store::outbox::withheld_firings(&conn, since).map_err(read)?,
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
    Ok((engine, outbox))
}
