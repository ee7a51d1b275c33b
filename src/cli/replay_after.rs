//! What `replay` does around the backfill itself: a file's fingerprint (a
//! file replayed into this store again would count twice), and the incidents
//! the replayed events make, on their own time, notifying nothing.

use std::io::Read as _;
use std::path::Path;

use crate::store::Db;
use anyhow::Context as _;

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

/// Runs the incident engine over the events stored after `after`, in their
/// own time order, and returns the changes (the caller stores them, with
/// no notification: a replay tells of the past).
pub fn incidents(
    conn: &Db,
    after: i64,
    parser: &hapwatch_parsers::Parser,
    config: &crate::config::Config,
) -> anyhow::Result<Vec<Change>> {
    let next_id = crate::store::incidents::next_id(conn)?;
    let mut engine = Engine::new(
        config.incidents.clone(),
        next_id,
        Vec::new(),
        Default::default(),
    );
    let mut changes = Vec::new();
    let mut last = i64::MIN;
    for (ts, host, raw) in crate::store::replays::events_after(conn, after)? {
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
