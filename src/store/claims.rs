//! Each sender's window is counted by one node. Nodes that receive the same
//! stream (an HA pair) each close the same windows; the first to commit one
//! claims it for its (sender, span, start), and the others leave theirs out,
//! so every query counts that traffic once. A node's own late lines still
//! merge into the windows it claimed. One node alone claims nothing.

use std::collections::HashMap;

use super::db::{vals, Db, DbResult};
use super::writer::WriterCounters;

/// The rows of `rows` whose window this node counts, claiming the windows
/// no node has counted yet.
pub fn mine<'r, T>(
    tx: &Db,
    counters: &WriterCounters,
    rows: &'r [T],
    key: impl Fn(&T) -> (&str, i64, i64),
) -> DbResult<Vec<&'r T>> {
    let Some(role) = &counters.cluster else {
        return Ok(rows.iter().collect());
    };
    let mut windows: Vec<(&str, i64, i64)> = rows.iter().map(&key).collect();
    // Claimed in one order by every node: two batches claiming the same
    // windows wait for each other instead of deadlocking.
    windows.sort_unstable();
    windows.dedup();
    let mut owned: HashMap<(&str, i64, i64), bool> = HashMap::with_capacity(windows.len());
    for w in windows {
        let (host, span_s, start) = w;
        tx.execute(
            "INSERT INTO window_claims (host, span_s, start, node) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            &vals![host, span_s, start, &*role.node],
        )?;
        let node: String = tx.scalar(
            "SELECT node FROM window_claims WHERE host = ?1 AND span_s = ?2 AND start = ?3",
            &vals![host, span_s, start],
        )?;
        owned.insert(w, node == *role.node);
    }
    Ok(rows.iter().filter(|r| owned[&key(r)]).collect())
}
