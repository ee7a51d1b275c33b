//! What `replay` remembers and reads back: the files it took in, and the
//! events it added (for the incident engine to run over).

use std::path::Path;

use super::db::{vals, Db, DbResult};

/// When (and as what) a file with this fingerprint was replayed into the store.
pub fn replayed_before(conn: &Db, fingerprint: &str) -> DbResult<Option<(i64, String)>> {
    conn.query_opt(
        "SELECT at, path FROM replays WHERE fingerprint = ?1",
        &vals![fingerprint],
        |r| r.get(0),
    )
}

pub fn record(conn: &Db, fingerprint: &str, path: &Path, at_ms: i64) -> DbResult<()> {
    conn.execute(
        "INSERT INTO replays (fingerprint, path, at) VALUES (?1, ?2, ?3)
         ON CONFLICT (fingerprint) DO UPDATE SET path = excluded.path, at = excluded.at",
        &vals![fingerprint, path.display().to_string(), at_ms],
    )?;
    Ok(())
}

/// The largest event rowid now: what a replay adds comes after it.
pub fn last_event(conn: &Db) -> DbResult<i64> {
    conn.scalar("SELECT coalesce(max(id), 0) FROM events", &[])
}

/// (ts, host, raw line) of the events stored after rowid `after`, in time order.
pub fn events_after(conn: &Db, after: i64) -> DbResult<Vec<(i64, String, String)>> {
    conn.query(
        "SELECT ts, host, raw FROM events WHERE id > ?1 ORDER BY ts, id",
        &vals![after],
        |r| r.get(0),
    )
}
