//! Incident reads: the CLI's lists and details, and what the engine needs
//! at start-up to carry on where the last run stopped.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection};
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
    /// The newest this many.
    pub limit: Option<usize>,
}

/// An incident's columns and its acknowledgement, if any (`FROM` included).
const COLUMNS: &str =
    "id, key, kind, severity, host, backend, server, opened_at, resolved_at, summary, resolution, detail,
     acked_by, ack_reason, acked_at FROM incidents LEFT JOIN acks ON acks.incident_id = incidents.id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredIncident> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
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
            ack: match r.get::<_, Option<String>>(12)? {
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
pub fn list(conn: &Connection, f: &IncidentFilter) -> rusqlite::Result<Vec<StoredIncident>> {
    let mut sql = format!("SELECT {COLUMNS} WHERE ");
    let mut args: Vec<SqlValue> = Vec::new();
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
        args.push(SqlValue::Text(h.clone()));
        sql += &format!(" AND host = ?{}", args.len());
    }
    if let Some(b) = &f.backend {
        args.push(SqlValue::Text(b.clone()));
        sql += &format!(" AND backend = ?{}", args.len());
    }
    if let Some(srv) = &f.server {
        args.push(SqlValue::Text(srv.clone()));
        sql += &format!(" AND server = ?{}", args.len());
    }
    if let Some(k) = f.kind {
        args.push(SqlValue::Text(k.as_str().into()));
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
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), row)?;
    rows.collect()
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<StoredIncident>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} WHERE id = ?1"))?;
    let mut rows = stmt.query_map([id], row)?;
    rows.next().transpose()
}

/// (ts, text), oldest first.
pub fn timeline(conn: &Connection, id: i64) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT ts, text FROM incident_timeline WHERE incident_id = ?1 ORDER BY ts, rowid",
    )?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The id the next incident takes.
pub fn next_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM incidents", [], |r| {
        r.get(0)
    })
}

/// What the engine starts from: the next id, the open incidents, and each
/// server's latest state from events since `since_ms`.
pub fn restore(conn: &Connection, since_ms: i64) -> rusqlite::Result<(i64, Vec<Incident>, Fleet)> {
    let next_id = next_id(conn)?;
    let open = list(
        conn,
        &IncidentFilter {
            open: true,
            ..Default::default()
        },
    )?
    .into_iter()
    .map(|s| s.incident)
    .collect();
    let mut fleet = Fleet::default();
    // The latest state line of each server (the writer keeps it with the events).
    let mut stmt = conn.prepare(
        "SELECT host, backend, server, state, state_ts FROM server_state
         WHERE state IS NOT NULL AND state_ts >= ?1",
    )?;
    let rows = stmt.query_map(params![since_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for r in rows {
        let (host, proxy, server, state, ts) = r?;
        let s = fleet.server(&host, &proxy, &server);
        s.state = crate::incidents::fleet::StateSeen::from_name(&state);
        s.since_ms = ts;
    }
    Ok((next_id, open, fleet))
}
