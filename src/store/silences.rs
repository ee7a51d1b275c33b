//! Silences: notifications about matching incidents are not sent while one
//! is active (the incidents are still recorded). Written by the CLI, read by
//! the daemon each second.

use super::db::{vals, Db, DbResult};

use crate::incidents::ServerMatch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    /// The host, backend and server it covers (None: any).
    pub scope: ServerMatch,
    pub created_ms: i64,
    pub until_ms: i64,
    pub reason: String,
}

pub fn add(conn: &Db, s: &Silence) -> DbResult<i64> {
    conn.scalar(
        "INSERT INTO silences (host, backend, server, created_at, until, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        &vals![
            s.scope.host,
            s.scope.backend,
            s.scope.server,
            s.created_ms,
            s.until_ms,
            s.reason
        ],
    )
}

/// Ends a silence now; false if there is no such active silence.
pub fn end(conn: &Db, id: i64, now_ms: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE silences SET until = ?2 WHERE id = ?1 AND until > ?2",
        &vals![id, now_ms],
    )? > 0)
}

/// Active at `now_ms`, or every one with `all`.
pub fn list(conn: &Db, now_ms: i64, all: bool) -> DbResult<Vec<Silence>> {
    conn.query(
        "SELECT id, host, backend, server, created_at, until, reason FROM silences
         WHERE ?2 OR until > ?1 ORDER BY id",
        &vals![now_ms, all],
        |r| {
            Ok(Silence {
                id: r.get(0)?,
                scope: ServerMatch {
                    host: r.get(1)?,
                    backend: r.get(2)?,
                    server: r.get(3)?,
                },
                created_ms: r.get(4)?,
                until_ms: r.get(5)?,
                reason: r.get(6)?,
            })
        },
    )
}
