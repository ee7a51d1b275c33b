//! Maintenance windows added from the CLI: written by `hapwatch maintenance
//! add|remove`, read by the daemon each second (as silences are).

use super::db::{vals, Db, DbResult};

use crate::maintenance::Schedule;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredWindow {
    pub id: i64,
    pub hosts: Vec<String>,
    pub backends: Vec<String>,
    pub schedule: Schedule,
    pub reason: String,
    pub created_ms: i64,
}

impl StoredWindow {
    /// Its name in notes and logs: `#3`.
    pub fn name(&self) -> String {
        format!("#{}", self.id)
    }
}

pub fn add(conn: &Db, w: &StoredWindow) -> DbResult<i64> {
    let (every, zone, start, end) = match &w.schedule {
        Schedule::Every { text, zone } => (Some(text.as_str()), zone.as_deref(), None, None),
        Schedule::Once { start_ms, end_ms } => (None, None, Some(*start_ms), Some(*end_ms)),
    };
    conn.scalar(
        "INSERT INTO maintenance (hosts, backends, every, timezone, start_at, end_at, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        &vals![
            serde_json::to_string(&w.hosts).unwrap_or_default(),
            serde_json::to_string(&w.backends).unwrap_or_default(),
            every,
            zone,
            start,
            end,
            w.reason,
            w.created_ms
        ],
    )
}

/// Removes a window now; false if there is no such window left.
pub fn remove(conn: &Db, id: i64, now_ms: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE maintenance SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
        &vals![id, now_ms],
    )? > 0)
}

/// Windows not removed, and not one-offs over before `now_ms`.
pub fn list(conn: &Db, now_ms: i64) -> DbResult<Vec<StoredWindow>> {
    let sql = "SELECT id, hosts, backends, every, timezone, start_at, end_at, reason, created_at
         FROM maintenance WHERE removed_at IS NULL AND (every IS NOT NULL OR end_at > ?1)
         ORDER BY id";
    let names = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    conn.query(sql, &vals![now_ms], |r| {
        let every: Option<String> = r.get(3)?;
        let schedule = match every {
            Some(text) => Schedule::Every {
                text,
                zone: r.get(4)?,
            },
            None => Schedule::Once {
                start_ms: r.get::<Option<i64>>(5)?.unwrap_or_default(),
                end_ms: r.get::<Option<i64>>(6)?.unwrap_or_default(),
            },
        };
        Ok(StoredWindow {
            id: r.get(0)?,
            hosts: names(r.get(1)?),
            backends: names(r.get(2)?),
            schedule,
            reason: r.get(7)?,
            created_ms: r.get(8)?,
        })
    })
}
