//! What `replay` does around the backfill itself: refuse a file it already
//! replayed into this store (it would count twice), and open the incidents
//! the replayed events make, on their own time, notifying nothing.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use rusqlite::{params, Connection};

use crate::incidents::{Change, Engine};

/// Identifies a file by a digest of its first 1 MiB: the same log rotated,
/// copied or grown since is the same file (its beginning would count twice).
pub fn fingerprint(path: &Path) -> anyhow::Result<Option<String>> {
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::with_capacity(1 << 20);
    (&mut f).take(1 << 20).read_to_end(&mut head)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&head);
    let hex: String = ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some(hex))
}

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

/// Runs the incident engine over the events stored after `after`, in their
/// own time order, and returns the changes (the caller stores them, with
/// no notification: a replay tells of the past).
pub fn incidents(
    conn: &Connection,
    after: i64,
    parser: &hapwatch_parsers::Parser,
    config: &crate::config::Config,
) -> anyhow::Result<Vec<Change>> {
    let next_id: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM incidents", [], |r| {
            r.get(0)
        })?;
    let mut engine = Engine::new(
        config.incidents.clone(),
        next_id,
        Vec::new(),
        Default::default(),
    );
    let mut stmt =
        conn.prepare("SELECT ts, host, raw FROM events WHERE rowid > ?1 ORDER BY ts, rowid")?;
    let rows = stmt.query_map([after], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut changes = Vec::new();
    let mut last = i64::MIN;
    for row in rows {
        let (ts, host, raw) = row?;
        if let Ok(rec) = parser.parse(raw.as_bytes()) {
            changes.extend(engine.on_event(&host, &rec.event, ts, rec.message));
        }
        // Flapping settles on the lines' time, as it would have live.
        changes.extend(engine.tick(ts));
        last = last.max(ts);
    }
    if last > i64::MIN {
        changes.extend(engine.tick(last));
        // Left open, the daemon would restore them as live and take the next
        // real DOWN of that server for one it already knows.
        changes.extend(engine.close_all(last, "still open where the replayed logs end"));
    }
    Ok(changes)
}
