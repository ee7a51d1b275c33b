//! The fleet page's model: every host → backend → server with its state as
//! the stored events tell it, its last check, and its recent traffic.

use std::collections::BTreeMap;

use crate::store::Db;
use serde::Serialize;

use crate::hist::Histogram;
use crate::incidents::fleet::StateSeen;
use crate::incidents::{Kind, Severity};
use crate::store::incidents::{self as stored, IncidentFilter, StoredIncident};
use crate::store::queries::{self, WindowFilter};
use hapwatch_parsers::ServerState;

/// Traffic figures cover the last five minutes.
pub const RECENT_S: i64 = 300;
/// A server with no state line counts as UP while it served within this long.
const SERVING_S: i64 = 3600;

/// A server's state on the console: HAProxy's, or what the console concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Up,
    Down,
    Stopping,
    Maint,
    Drain,
    /// An open flapping incident: its DOWN/UP notices are held.
    Flapping,
    /// Only checks (no state line) and no traffic, or a state hapwatch cannot read.
    Unknown,
}

/// Red, amber or green: always shown with the state's text beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Light {
    Green,
    /// Nothing known: shown, but no reason for attention.
    Grey,
    Amber,
    Red,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
            Status::Stopping => "STOPPING",
            Status::Maint => "MAINT",
            Status::Drain => "DRAIN",
            Status::Flapping => "FLAPPING",
            Status::Unknown => "UNKNOWN",
        }
    }

    pub fn light(self) -> Light {
        match self {
            Status::Up => Light::Green,
            Status::Down => Light::Red,
            // Not known to be wrong: a server gone from the config, a backup never used.
            Status::Unknown => Light::Grey,
            _ => Light::Amber,
        }
    }

    /// With no state line, a server that served within the hour, or whose
    /// last check passed, is UP as far as the logs can tell.
    fn of(seen: StateSeen, serving: bool, check_passed: bool) -> Status {
        match seen {
            StateSeen::Is(ServerState::Up) => Status::Up,
            StateSeen::Is(ServerState::Down) => Status::Down,
            StateSeen::Is(ServerState::Stopping) => Status::Stopping,
            StateSeen::Is(ServerState::Maint) => Status::Maint,
            StateSeen::Is(ServerState::Drain) => Status::Drain,
            StateSeen::Never if serving || check_passed => Status::Up,
            StateSeen::Never | StateSeen::Unreadable => Status::Unknown,
        }
    }
}

impl Light {
    pub fn as_str(self) -> &'static str {
        match self {
            Light::Green => "green",
            Light::Grey => "grey",
            Light::Amber => "amber",
            Light::Red => "red",
        }
    }
}

/// The last health or agent check HAProxy logged for a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastCheck {
    pub at_ms: i64,
    /// succeeded, failed, conditionally succeeded.
    pub result: String,
    pub reason: String,
    pub code: Option<i64>,
    pub info: Option<String>,
    pub duration_ms: Option<i64>,
}

/// Requests in the stored windows of about the last [`RECENT_S`] seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    pub requests: u64,
    pub per_s: f64,
    /// Share of requests answered 5xx, in percent.
    pub s5xx_pct: f64,
    pub p95_ms: Option<u64>,
}

impl Rates {
    /// Over `covered_s`: the time the windows read cover (the one in progress is not stored).
    fn from(requests: u64, s5xx: u64, hist: &Histogram, covered_s: i64) -> Rates {
        Rates {
            requests,
            per_s: requests as f64 / covered_s.max(1) as f64,
            s5xx_pct: crate::figures::pct(s5xx, requests),
            p95_ms: hist.quantile(0.95),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRow {
    pub name: String,
    pub status: Status,
    pub light: Light,
    /// When its state last changed (a state line), if one was logged.
    pub since_ms: Option<i64>,
    /// The reason of that change (`Layer4 connection problem`, `changed from CLI`).
    pub reason: Option<String>,
    pub last_check: Option<LastCheck>,
    /// The start of the last window it served in, ms.
    pub last_request_ms: Option<i64>,
    pub traffic: Rates,
    pub incident: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendRow {
    pub name: String,
    pub light: Light,
    /// As HAProxy last counted them in a state line: "N active and M backup servers left".
    pub active_left: Option<u32>,
    pub backup_left: Option<u32>,
    pub servers: Vec<ServerRow>,
    pub traffic: Rates,
    /// Open incidents of the backend or its servers, newest first.
    pub incidents: Vec<IncidentRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRef {
    pub id: i64,
    pub kind: &'static str,
    pub summary: String,
    pub opened_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    pub name: String,
    pub light: Light,
    /// Open incidents of the host itself (host down, silent), not of a backend.
    pub incidents: Vec<IncidentRef>,
    pub backends: Vec<BackendRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetPage {
    pub now_ms: i64,
    pub hosts: Vec<HostRow>,
    /// Servers per state, over the whole fleet.
    pub counts: BTreeMap<&'static str, usize>,
    pub open_incidents: usize,
    /// Open incidents of no backend and no host on the page (a failing channel, say).
    pub other_incidents: Vec<IncidentRef>,
    /// The filter typed (server side, for browsers without JS).
    pub filter: String,
}

#[derive(Default)]
struct ServerFacts {
    seen: StateSeen,
    since_ms: Option<i64>,
    reason: Option<String>,
    check: Option<LastCheck>,
    requests: u64,
    s5xx: u64,
    hist: Histogram,
    /// Its last window's start, if it ever served.
    last_request_s: Option<i64>,
    /// Served within [`SERVING_S`].
    serving: bool,
}

#[derive(Default)]
struct BackendFacts {
    /// Seconds the recent windows cover (the same for every backend of a page).
    covered_s: i64,
    servers: BTreeMap<String, ServerFacts>,
    left: Option<(i64, Option<u32>, Option<u32>)>,
    requests: u64,
    s5xx: u64,
    hist: Histogram,
}

type Facts = BTreeMap<String, BTreeMap<String, BackendFacts>>;

/// The fleet now, from the store; `filter` keeps what names it (host, backend or server).
pub fn build(
    conn: &Db,
    now_ms: i64,
    filter: &str,
    window_s: i64,
) -> crate::store::DbResult<FleetPage> {
    build_of(conn, now_ms, filter, None, window_s)
}

/// One backend's rows on every host (the backend page's), reading only its rows.
pub fn backend(
    conn: &Db,
    now_ms: i64,
    name: &str,
    window_s: i64,
) -> crate::store::DbResult<FleetPage> {
    build_of(conn, now_ms, "", Some(name), window_s)
}

fn build_of(
    conn: &Db,
    now_ms: i64,
    filter: &str,
    only: Option<&str>,
    window_s: i64,
) -> crate::store::DbResult<FleetPage> {
    let mut facts = Facts::new();
    states(conn, only, &mut facts)?;
    traffic(conn, now_ms, only, window_s, &mut facts)?;
    let open = stored::list(
        conn,
        &IncidentFilter {
            open: true,
            ..Default::default()
        },
    )?;
    let mut counts = BTreeMap::new();
    let needle = filter.trim().to_lowercase();
    let mut hosts = Vec::new();
    // Every host, filtered or not: a hidden host's incidents are not "of no load balancer".
    let all_hosts: std::collections::HashSet<String> = facts.keys().cloned().collect();
    for (host, backends) in facts {
        let mut rows = Vec::new();
        for (backend, b) in backends {
            let row = backend_row(&host, backend, b, &open);
            let named = |s: &str| s.to_lowercase().contains(&needle);
            if needle.is_empty()
                || named(&host)
                || named(&row.name)
                || row.servers.iter().any(|s| named(&s.name))
            {
                rows.push(row);
            }
        }
        for s in rows.iter().flat_map(|b| &b.servers) {
            *counts.entry(s.status.as_str()).or_insert(0) += 1;
        }
        if !rows.is_empty() {
            let own: Vec<&StoredIncident> = open
                .iter()
                .filter(|s| s.incident.host == host && s.incident.backend.is_none())
                .collect();
            let own_light = own.iter().map(|s| match s.incident.severity {
                Severity::Critical => Light::Red,
                _ => Light::Amber,
            });
            hosts.push(HostRow {
                light: rows
                    .iter()
                    .map(|b| b.light)
                    .chain(own_light)
                    .max()
                    .unwrap_or(Light::Green),
                incidents: own.into_iter().map(IncidentRef::of).collect(),
                name: host,
                backends: rows,
            });
        }
    }
    let other_incidents = if only.is_some() {
        Vec::new()
    } else {
        open.iter()
            .filter(|s| s.incident.backend.is_none() && !all_hosts.contains(&s.incident.host))
            .map(IncidentRef::of)
            .collect()
    };
    Ok(FleetPage {
        now_ms,
        hosts,
        counts,
        open_incidents: open.len(),
        other_incidents,
        filter: filter.to_owned(),
    })
}

impl IncidentRef {
    fn of(s: &StoredIncident) -> IncidentRef {
        IncidentRef {
            id: s.incident.id,
            kind: s.incident.kind.as_str(),
            summary: s.incident.summary.clone(),
            opened_ms: s.incident.opened_ms,
        }
    }
}

fn backend_row(host: &str, name: String, b: BackendFacts, open: &[StoredIncident]) -> BackendRow {
    let of_backend: Vec<&StoredIncident> = open
        .iter()
        .filter(|s| s.incident.host == host && s.incident.backend.as_deref() == Some(&name))
        .collect();
    let servers: Vec<ServerRow> = b
        .servers
        .into_iter()
        .map(|(server, f)| {
            let mine = |k: Kind| {
                of_backend
                    .iter()
                    .find(|s| s.incident.kind == k && s.incident.server.as_deref() == Some(&server))
            };
            let passed = f
                .check
                .as_ref()
                .is_some_and(|c| c.result.starts_with("succeeded"));
            let mut status = Status::of(f.seen, f.serving, passed);
            if mine(Kind::Flapping).is_some() {
                status = Status::Flapping;
            }
            let incident = mine(Kind::Flapping)
                .or_else(|| mine(Kind::ServerDown))
                .or_else(|| mine(Kind::Operator))
                .map(|s| s.incident.id);
            ServerRow {
                name: server,
                status,
                light: status.light(),
                since_ms: f.since_ms,
                reason: f.reason,
                last_check: f.check,
                last_request_ms: f.last_request_s.map(|s| s * 1000),
                traffic: Rates::from(f.requests, f.s5xx, &f.hist, b.covered_s),
                incident,
            }
        })
        .collect();
    let all_down = !servers.is_empty() && servers.iter().all(|s| s.status == Status::Down);
    let light = if all_down
        || of_backend
            .iter()
            .any(|s| matches!(s.incident.kind, Kind::BackendDown | Kind::HostDown))
    {
        Light::Red
    } else if servers.iter().any(|s| s.light >= Light::Amber) || !of_backend.is_empty() {
        Light::Amber
    } else {
        Light::Green
    };
    BackendRow {
        light,
        active_left: b.left.and_then(|l| l.1),
        backup_left: b.left.and_then(|l| l.2),
        servers,
        traffic: Rates::from(b.requests, b.s5xx, &b.hist, b.covered_s),
        incidents: of_backend.iter().map(|s| IncidentRef::of(s)).collect(),
        name,
    }
}

fn backend_facts<'f>(facts: &'f mut Facts, host: &str, backend: &str) -> &'f mut BackendFacts {
    facts
        .entry(host.to_owned())
        .or_default()
        .entry(backend.to_owned())
        .or_default()
}

fn server<'f>(
    facts: &'f mut Facts,
    host: &str,
    backend: &str,
    server: &str,
) -> &'f mut ServerFacts {
    backend_facts(facts, host, backend)
        .servers
        .entry(server.to_owned())
        .or_default()
}

/// Each server's latest state line and check line (kept by the writer), and
/// each backend's latest count of servers left.
fn states(conn: &Db, only: Option<&str>, facts: &mut Facts) -> crate::store::DbResult<()> {
    conn.query(
        "SELECT host, backend, server, state, state_ts, reason, active_left, backup_left,
            check_ts, check_result, check_reason, check_code, check_info, check_duration_ms
         FROM server_state WHERE CAST(?1 AS TEXT) IS NULL OR backend = ?1",
        &crate::vals![only],
        |r| server_row(r, facts),
    )?;
    Ok(())
}

/// One `server_state` row into the facts.
fn server_row(r: &crate::store::db::Row<'_>, facts: &mut Facts) -> crate::store::DbResult<()> {
    let (host, backend): (String, String) = (r.get(0)?, r.get(1)?);
    let state_ts: Option<i64> = r.get(4)?;
    let (active, backup): (Option<u32>, Option<u32>) = (r.get(6)?, r.get(7)?);
    let check = match r.get::<Option<i64>>(8)? {
        Some(at_ms) => Some(LastCheck {
            at_ms,
            result: r.get::<Option<String>>(9)?.unwrap_or_default(),
            reason: r.get::<Option<String>>(10)?.unwrap_or_default(),
            code: r.get(11)?,
            info: r.get(12)?,
            duration_ms: r.get(13)?,
        }),
        None => None,
    };
    let s = server(facts, &host, &backend, &r.get::<String>(2)?);
    s.seen = StateSeen::from_name(&r.get::<Option<String>>(3)?.unwrap_or_default());
    s.since_ms = state_ts;
    s.reason = r.get(5)?;
    s.check = check;
    if let (Some(ts), true) = (state_ts, active.is_some() || backup.is_some()) {
        let b = backend_facts(facts, &host, &backend);
        if b.left.is_none_or(|l| l.0 < ts) {
            b.left = Some((ts, active, backup));
        }
    }
    Ok(())
}

/// Every route traffic was stored for, and the windows of the last five minutes.
fn traffic(
    conn: &Db,
    now_ms: i64,
    only: Option<&str>,
    window_s: i64,
    facts: &mut Facts,
) -> crate::store::DbResult<()> {
    let now_s = now_ms / 1000;
    queries::for_each_route(conn, only, |host, backend, server, last_s| {
        let b = backend_facts(facts, host, backend);
        // Requests no server took (`<NOSRV>`, `<STATS>`) are the backend's, not a server's.
        if !server.starts_with('<') {
            let s = b.servers.entry(server.to_owned()).or_default();
            s.last_request_s = Some(last_s);
            s.serving = now_s - last_s < SERVING_S;
        }
    })?;
    // The last closed windows covering five minutes (or one window, if longer):
    // the one in progress is not stored yet. None when the store has nothing
    // that recent: the rates are then zero, not last week's.
    let window_s = window_s.max(1);
    let span_s = RECENT_S.max(window_s);
    let closed = queries::closed_until(conn)?
        .map(|c| c.min(now_s))
        .filter(|c| now_s - c <= span_s + window_s + 120);
    let Some(until_s) = closed else {
        return Ok(());
    };
    let since_s = until_s - span_s;
    let recent = WindowFilter {
        since_s,
        until_s,
        backend: only.map(str::to_owned),
        ..Default::default()
    };
    queries::for_each_window_started(conn, &recent, |w| {
        let b = backend_facts(facts, w.host, w.backend);
        b.requests += w.counts.requests;
        b.s5xx += w.counts.s5xx;
        b.hist.merge_encoded(w.t_total);
        if let Some(s) = b.servers.get_mut(w.server) {
            s.requests += w.counts.requests;
            s.s5xx += w.counts.s5xx;
            s.hist.merge_encoded(w.t_total);
        }
    })?;
    for b in facts.values_mut().flat_map(|h| h.values_mut()) {
        b.covered_s = span_s;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_a_state_line_is_up_only_on_evidence() {
        assert_eq!(Status::of(StateSeen::Never, true, false), Status::Up);
        assert_eq!(Status::of(StateSeen::Never, false, true), Status::Up);
        assert_eq!(Status::of(StateSeen::Never, false, false), Status::Unknown);
        assert_eq!(
            Status::of(StateSeen::Unreadable, true, true),
            Status::Unknown
        );
        // A state line says more than traffic or a check.
        let down = StateSeen::Is(ServerState::Down);
        assert_eq!(Status::of(down, true, true), Status::Down);
        // Unknown is grey, below amber: it does not make a backend degraded.
        assert!(Status::Unknown.light() < Light::Amber);
        assert_eq!(Status::Maint.light(), Light::Amber);
        assert_eq!(Status::Down.light(), Light::Red);
    }
}
