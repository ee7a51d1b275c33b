//! The backend page's model: its servers (as on the fleet page), its
//! traffic over 1 h / 24 h / 7 d, and the incidents of that span.

use crate::store::Db;
use serde::Serialize;

use super::chart::{Chart, Mark, Range, Scope, Traffic};
use super::fleet::{self, HostRow};
use super::incidents::IncidentRow;
use crate::store::incidents::{self as stored, IncidentFilter};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendPage {
    pub now_ms: i64,
    pub name: String,
    pub range: Range,
    /// Each host that has this backend, with its servers.
    pub hosts: Vec<HostRow>,
    pub charts: Vec<Chart>,
    pub incidents: Vec<IncidentRow>,
}

/// None when no host has a backend of that name.
pub fn build(
    conn: &Db,
    now_ms: i64,
    name: &str,
    range: Range,
    window_s: i64,
) -> crate::store::DbResult<Option<BackendPage>> {
    let hosts = fleet::backend(conn, now_ms, name, window_s)?.hosts;
    let since = now_ms - range.span_ms();
    let incidents: Vec<IncidentRow> = stored::list(
        conn,
        &IncidentFilter {
            since_ms: since,
            backend: Some(name.to_owned()),
            limit: Some(200),
            ..Default::default()
        },
    )?
    .iter()
    .map(|s| IncidentRow::of(s, now_ms))
    .collect();
    if hosts.is_empty() && incidents.is_empty() {
        return Ok(None);
    }
    let scope = Scope {
        host: None,
        backend: name,
        server: None,
    };
    let traffic = Traffic::read(conn, &scope, (since, now_ms), range.bucket_s(), window_s)?;
    let marks: Vec<Mark> = incidents
        .iter()
        .filter(|i| i.severity != "info")
        .map(|i| Mark {
            incident: i.id,
            from_ms: i.opened_ms,
            to_ms: i.resolved_ms,
            label: i.summary.clone(),
        })
        .collect();
    Ok(Some(BackendPage {
        now_ms,
        name: name.to_owned(),
        range,
        hosts,
        charts: vec![
            traffic.requests().with_marks(marks.clone()),
            traffic.errors().with_marks(marks.clone()),
            traffic.latency().with_marks(marks),
        ],
        incidents,
    }))
}
