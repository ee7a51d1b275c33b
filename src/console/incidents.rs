//! The incident pages' models: the list (open first, then history) and one
//! incident with its timeline, evidence, traffic and every delivery attempt.

use crate::store::Db;
use serde::Serialize;

use super::chart::{Chart, Mark, Scope, Traffic};
use super::fleet::Light;
use crate::incidents::{Kind, Severity};
use crate::store::incidents::{self as stored, IncidentFilter, StoredIncident};
use crate::store::outbox::{self, AttemptRecord};
use crate::store::queries::{self, Sample, WindowFilter};

/// The spans the list can look back over.
pub const SINCE: [(&str, i64); 4] = [
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
    ("365d", 365 * 86_400_000),
];

/// History rows shown at most; the CLI has the rest.
const HISTORY: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Open,
    /// Open, and someone is on it.
    Acked,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acked => "acked",
            IncidentState::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRow {
    pub id: i64,
    pub state: IncidentState,
    pub light: Light,
    pub severity: &'static str,
    pub kind: &'static str,
    pub host: String,
    pub backend: Option<String>,
    pub server: Option<String>,
    pub summary: String,
    pub opened_ms: i64,
    pub resolved_ms: Option<i64>,
    pub resolution: Option<String>,
    /// Open so far, or open for.
    pub duration_ms: i64,
}

impl IncidentRow {
    pub fn of(s: &StoredIncident, now_ms: i64) -> IncidentRow {
        let i = &s.incident;
        let state = match (s.resolved_ms, &i.ack) {
            (Some(_), _) => IncidentState::Resolved,
            (None, Some(_)) => IncidentState::Acked,
            (None, None) => IncidentState::Open,
        };
        let light = match (state, i.severity) {
            (IncidentState::Resolved, _) => Light::Green,
            (IncidentState::Open, Severity::Critical) => Light::Red,
            _ => Light::Amber,
        };
        IncidentRow {
            id: i.id,
            state,
            light,
            severity: i.severity.as_str(),
            kind: i.kind.as_str(),
            host: i.host.clone(),
            backend: i.backend.clone(),
            server: i.server.clone(),
            summary: i.summary.clone(),
            opened_ms: i.opened_ms,
            resolved_ms: s.resolved_ms,
            resolution: s.resolution.clone(),
            duration_ms: s.resolved_ms.unwrap_or(now_ms) - i.opened_ms,
        }
    }
}

/// The list's filters, as the query string gives them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListFilter {
    pub backend: String,
    pub host: String,
    /// An incident kind (`server_down`), or "".
    pub kind: String,
    /// One of [`SINCE`].
    pub since: String,
}

impl ListFilter {
    fn since_ms(&self) -> i64 {
        SINCE
            .iter()
            .find(|(name, _)| *name == self.since)
            .map_or(SINCE[1].1, |(_, ms)| *ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentsPage {
    pub now_ms: i64,
    pub filter: ListFilter,
    pub kinds: Vec<&'static str>,
    pub open: Vec<IncidentRow>,
    pub history: Vec<IncidentRow>,
    /// More history matched than is shown.
    pub more: bool,
}

pub fn list(conn: &Db, now_ms: i64, filter: ListFilter) -> crate::store::DbResult<IncidentsPage> {
    let mut filter = filter;
    if !SINCE.iter().any(|(n, _)| *n == filter.since) {
        filter.since = SINCE[1].0.to_owned();
    }
    let kind = Kind::parse(&filter.kind);
    if kind.is_none() {
        filter.kind.clear();
    }
    let base = IncidentFilter {
        backend: (!filter.backend.is_empty()).then(|| filter.backend.clone()),
        host: (!filter.host.is_empty()).then(|| filter.host.clone()),
        kind,
        ..Default::default()
    };
    let open: Vec<IncidentRow> = stored::list(
        conn,
        &IncidentFilter {
            open: true,
            ..base.clone()
        },
    )?
    .iter()
    .map(|s| IncidentRow::of(s, now_ms))
    .collect();
    let mut history: Vec<IncidentRow> = stored::list(
        conn,
        &IncidentFilter {
            since_ms: now_ms - filter.since_ms(),
            resolved: true,
            limit: Some(HISTORY + 1),
            ..base
        },
    )?
    .iter()
    .map(|s| IncidentRow::of(s, now_ms))
    .collect();
    let more = history.len() > HISTORY;
    history.truncate(HISTORY);
    Ok(IncidentsPage {
        now_ms,
        filter,
        kinds: Kind::ALL.iter().map(|k| k.as_str()).collect(),
        open,
        history,
        more,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub channel: String,
    /// firing, resolved, acknowledge, digest.
    pub status: String,
    pub state: &'static str,
    /// Grouped into another row's message.
    pub message_id: Option<i64>,
    pub note: Option<String>,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
    pub failed_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Each attempt at the message that carries it.
    pub attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ack {
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentPage {
    pub now_ms: i64,
    pub incident: IncidentRow,
    pub ack: Option<Ack>,
    /// What the notifications said of it: (label, line).
    pub evidence: Vec<(&'static str, String)>,
    pub timeline: Vec<(i64, String)>,
    /// The backend's (or server's) traffic around it.
    pub charts: Vec<Chart>,
    /// Raw 5xx and termination lines from the minutes before it opened.
    pub log_lines: Vec<Sample>,
    pub deliveries: Vec<Delivery>,
}

/// Evidence lines shown at most.
const LOG_LINES: usize = 20;
/// The traffic chart follows an incident for its first day at most.
const CHART_SPAN_MS: i64 = 86_400_000;

pub fn one(
    conn: &Db,
    now_ms: i64,
    id: i64,
    window_s: i64,
) -> crate::store::DbResult<Option<IncidentPage>> {
    let Some(s) = stored::get(conn, id)? else {
        return Ok(None);
    };
    let i = &s.incident;
    let row = IncidentRow::of(&s, now_ms);
    let mut charts = Vec::new();
    let mut log_lines = Vec::new();
    if let Some(backend) = &i.backend {
        // Half an hour before it opened to ten minutes after it ended (its
        // first day, for a longer one), in at most ~120 points.
        let since = i.opened_ms - 1_800_000;
        let end = s
            .resolved_ms
            .unwrap_or(now_ms)
            .min(i.opened_ms + CHART_SPAN_MS);
        let until = (end + 600_000).min(now_ms.max(i.opened_ms));
        let bucket_s = ((until - since) / 1000 / 120 + 59).max(60) / 60 * 60;
        let scope = Scope {
            host: Some(&i.host),
            backend,
            server: i.server.as_deref(),
        };
        let traffic = Traffic::read(conn, &scope, (since, until), bucket_s, window_s)?;
        let mark = vec![Mark {
            incident: i.id,
            from_ms: i.opened_ms,
            to_ms: s.resolved_ms,
            label: i.summary.clone(),
        }];
        charts = vec![
            traffic.requests().with_marks(mark.clone()),
            traffic.errors().with_marks(mark),
        ];
        log_lines = queries::samples(
            conn,
            &WindowFilter {
                since_s: i.opened_ms / 1000 - 600,
                until_s: i.opened_ms / 1000 + 60,
                host: Some(i.host.clone()),
                backend: Some(backend.clone()),
                server: i.server.clone(),
                frontend: None,
            },
            LOG_LINES,
        )?;
    }
    let attempts = outbox::attempts_of(conn, id)?;
    let deliveries = outbox::of_incident(conn, id)?
        .into_iter()
        .map(|r| {
            let carrier = r.message_id.unwrap_or(r.id);
            Delivery {
                attempts: attempts
                    .iter()
                    .filter(|a| a.outbox_id == carrier)
                    .cloned()
                    .collect(),
                id: r.id,
                channel: r.channel,
                status: r.status,
                state: r.state.as_str(),
                message_id: r.message_id,
                note: r.note,
                created_ms: r.created_ms,
                delivered_ms: r.delivered_ms,
                failed_ms: r.failed_ms,
                last_error: r.last_error,
            }
        })
        .collect();
    Ok(Some(IncidentPage {
        now_ms,
        ack: i.ack.as_ref().map(|a| Ack {
            by: a.by.clone(),
            reason: a.reason.clone(),
            at_ms: a.at_ms,
        }),
        // In UTC, as the page's times are before the script localises them.
        evidence: hapwatch_engine::notify::text::evidence(i, &crate::timezone::Zone::Utc),
        timeline: stored::timeline(conn, id)?,
        charts,
        log_lines,
        deliveries,
        incident: row,
    }))
}
