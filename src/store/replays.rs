//! What `replay` remembers and reads back: the files it took in, and the
//! events it added (for the incident engine to run over).

use std::path::Path;

use rusqlite::{params, Connection};

/// When (and as what) a file with this fingerprint was replayed into the store.
pub fn replayed_before(
    conn: &Connection,
    fingerprint: &str,
) -> rusqlite::Result<Option<(i64, String)>> {
    let mut stmt = conn.prepare("SELECT at, path FROM replays WHERE fingerprint = ?1")?;
    let mut rows = stmt.query_map([fingerprint], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.next().transpose()
}

pub fn record(
    conn: &Connection,
    fingerprint: &str,
    path: &Path,
    at_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO replays (fingerprint, path, at) VALUES (?1, ?2, ?3)",
        params![fingerprint, path.display().to_string(), at_ms],
    )?;
    Ok(())
}

/// The largest event rowid now: what a replay adds comes after it.
pub fn last_event(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(rowid), 0) FROM events", [], |r| {
        r.get(0)
    })
}

/// (ts, host, raw line) of the events stored after rowid `after`, in time order.
pub fn events_after(conn: &Connection, after: i64) -> rusqlite::Result<Vec<(i64, String, String)>> {
    conn.prepare("SELECT ts, host, raw FROM events WHERE rowid > ?1 ORDER BY ts, rowid")?
        .query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}
