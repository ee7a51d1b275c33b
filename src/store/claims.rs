//! Each sender's window is counted by one node. Nodes that receive the same
//! stream (an HA pair) each close the same windows; the first to commit one
//! claims it for its (sender, span, start), and the others leave theirs out,
//! so every query counts that traffic once. A node's own late lines still
//! merge into the windows it claimed. One node alone claims nothing.

use std::collections::HashMap;

use super::db::{vals, Db, DbResult};
use super::writer::WriterCounters;

/// A sender's window: (host, span in seconds, start).
pub type WindowKey<'r> = (&'r str, i64, i64);

/// Claims the windows no node has counted yet, in one order every node
/// shares (two batches claiming the same windows wait for each other
/// instead of deadlocking); says of each whether this node counts it.
pub fn claim<'r>(
    tx: &Db,
    node: &str,
    mut windows: Vec<WindowKey<'r>>,
) -> DbResult<HashMap<WindowKey<'r>, bool>> {
    windows.sort_unstable();
    windows.dedup();
    let mut owned = HashMap::with_capacity(windows.len());
    for w in windows {
        let (host, span_s, start) = w;
        tx.execute(
            "INSERT INTO window_claims (host, span_s, start, node) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            &vals![host, span_s, start, node],
        )?;
        let by: String = tx.scalar(
            "SELECT node FROM window_claims WHERE host = ?1 AND span_s = ?2 AND start = ?3",
            &vals![host, span_s, start],
        )?;
        owned.insert(w, by == node);
    }
    Ok(owned)
}

/// The rows of `rows` this node counts: all of them alone on the store, else
/// those whose window `claimed` says is this node's.
pub fn mine<'r, T>(
    counters: &WriterCounters,
    claimed: &HashMap<WindowKey<'_>, bool>,
    rows: &'r [T],
    key: impl Fn(&T) -> WindowKey<'_>,
) -> Vec<&'r T> {
    if counters.cluster.is_none() {
        return rows.iter().collect();
    }
    rows.iter()
        .filter(|r| claimed.get(&key(r)).copied().unwrap_or(false))
        .collect()
}
