//! Incident reads: the CLI's lists and details, and what the engine needs
//! at start-up to carry on where the last run stopped.

use super::db::{vals, values, Db, DbError, DbResult, Param, Row};
use serde_json::{Map, Value};

use crate::incidents::fleet::Fleet;
use crate::incidents::{Incident, Kind, Severity};

#[derive(Debug, Clone)]
pub struct StoredIncident {
    pub incident: Incident,
    pub resolved_ms: Option<i64>,
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub since_ms: i64,
    /// Active before this (None: now).
    pub until_ms: Option<i64>,
    pub backend: Option<String>,
    pub server: Option<String>,
    pub kind: Option<Kind>,
    /// This severity or worse.
    pub severity: Option<Severity>,
    /// Only open ones (whenever they opened).
    pub open: bool,
    /// Only resolved ones.
    pub resolved: bool,
    pub host: Option<String>,
    /// Decided by this group of nodes (`[cluster] group`).
    pub group: Option<String>,
    /// The newest this many.
    pub limit: Option<usize>,
}

/// An incident's columns and its acknowledgement, if any (`FROM` included).
const COLUMNS: &str =
    "id, key, kind, severity, host, backend, server, opened_at, resolved_at, summary, resolution, detail,
     acked_by, ack_reason, acked_at FROM incidents LEFT JOIN acks ON acks.incident_id = incidents.id";

fn row(r: &Row<'_>) -> DbResult<StoredIncident> {
    let text = |i: usize| -> DbResult<String> { r.get(i) };
    let bad = |index: usize, what: &str| DbError::Column {
        index,
        message: format!("unknown {what}"),
    };
    let detail: Map<String, Value> = match serde_json::from_str(&text(11)?) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Ok(StoredIncident {
        incident: Incident {
            id: r.get(0)?,
            key: crate::incidents::IncidentKey::stored(text(1)?),
            kind: Kind::parse(&text(2)?).ok_or_else(|| bad(2, "kind"))?,
            severity: Severity::parse(&text(3)?).ok_or_else(|| bad(3, "severity"))?,
            host: text(4)?,
            backend: r.get(5)?,
            server: r.get(6)?,
            opened_ms: r.get(7)?,
            reminder_ms: None,
            ack: match r.get::<Option<String>>(12)? {
                Some(by) => Some(Box::new(crate::incidents::Ack {
                    by,
                    reason: text(13)?,
                    at_ms: r.get(14)?,
                })),
                None => None,
            },
            summary: text(9)?,
            detail,
        },
        resolved_ms: r.get(8)?,
        resolution: r.get(10)?,
    })
}

/// Newest first.
pub fn list(conn: &Db, f: &IncidentFilter) -> DbResult<Vec<StoredIncident>> {
    let mut sql = format!("SELECT {COLUMNS} WHERE ");
    let mut args: Vec<Param> = Vec::new();
    if f.open {
        sql += "resolved_at IS NULL";
    } else {
        args.push(f.since_ms.into());
        // Still open, or active at some point since `since`.
        sql += "(resolved_at IS NULL OR resolved_at >= ?1 OR opened_at >= ?1)";
    }
    if f.resolved {
        sql += " AND resolved_at IS NOT NULL";
    }
    if let Some(h) = &f.host {
        args.push(h.clone().into());
        sql += &format!(" AND host = ?{}", args.len());
    }
    if let Some(g) = &f.group {
        args.push(g.clone().into());
        sql += &format!(" AND grp = ?{}", args.len());
    }
    if let Some(b) = &f.backend {
        args.push(b.clone().into());
        sql += &format!(" AND backend = ?{}", args.len());
    }
    if let Some(srv) = &f.server {
        args.push(srv.clone().into());
        sql += &format!(" AND server = ?{}", args.len());
    }
    if let Some(k) = f.kind {
        args.push(k.as_str().to_owned().into());
        sql += &format!(" AND kind = ?{}", args.len());
    }
    if let Some(min) = f.severity {
        let worse: Vec<String> = [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .filter(|s| *s >= min)
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        sql += &format!(" AND severity IN ({})", worse.join(", "));
    }
    if let Some(until) = f.until_ms {
        args.push(until.into());
        sql += &format!(" AND opened_at < ?{}", args.len());
    }
    sql += " ORDER BY opened_at DESC, id DESC";
    if let Some(n) = f.limit {
        sql += &format!(" LIMIT {n}");
    }
    conn.query(&sql, &values(&args), row)
}

pub fn get(conn: &Db, id: i64) -> DbResult<Option<StoredIncident>> {
    conn.query_opt(&format!("SELECT {COLUMNS} WHERE id = ?1"), &vals![id], row)
}

/// (ts, text), oldest first.
pub fn timeline(conn: &Db, id: i64) -> DbResult<Vec<(i64, String)>> {
    conn.query(
        "SELECT ts, text FROM incident_timeline WHERE incident_id = ?1 ORDER BY ts, rowid",
        &vals![id],
        |r| r.get(0),
    )
}

/// The id the next incident takes.
pub fn next_id(conn: &Db) -> DbResult<i64> {
    conn.scalar("SELECT coalesce(max(id), 0) + 1 FROM incidents", &[])
}

/// What the engine starts from: the next id, the open incidents (of one
/// group of nodes, when several share the store), and each server's latest
/// state from events since `since_ms`.
pub fn restore(
    conn: &Db,
    since_ms: i64,
    group: Option<&str>,
) -> DbResult<(i64, Vec<Incident>, Fleet)> {
    let next_id = next_id(conn)?;
    let open = list(
        conn,
        &IncidentFilter {
            open: true,
            group: group.map(str::to_owned),
            ..Default::default()
        },
    )?
    .into_iter()
    .map(|s| s.incident)
    .collect();
    let mut fleet = Fleet::default();
    // The latest state line of each server (the writer keeps it with the events).
    let rows = conn.query(
        "SELECT host, backend, server, state, state_ts FROM server_state
         WHERE state IS NOT NULL AND state_ts >= ?1",
        &vals![since_ms],
        |r| r.get::<(String, String, String, String, i64)>(0),
    )?;
    for (host, proxy, server, state, ts) in rows {
        let s = fleet.server(&host, &proxy, &server);
        s.state = crate::incidents::fleet::StateSeen::from_name(&state);
        s.since_ms = ts;
    }
    Ok((next_id, open, fleet))
}
