//! The incident engine: health and state events in, incident changes out
//! (opened, a timeline entry, resolved). It owns the fleet state; storing
//! and notifying are the caller's.

pub mod fleet;
mod key;
mod readings;
mod rollup;
pub use rollup::backends_counted;

use std::collections::HashMap;
use std::time::Duration;

use hapwatch_parsers::{CheckResult, Event, ServerState, StateChange};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use fleet::{Fleet, ServerKey};
pub use key::IncidentKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ServerDown,
    BackendDown,
    BackendDegraded,
    Flapping,
    Operator,
    Silence,
    /// A traffic rule (5xx share, latency, …) over its threshold.
    Rule,
    /// A notification channel that keeps failing: pages are not getting through.
    Channel,
    /// HAProxy's stats (socket or page) cannot be read: reconciliation is blind.
    Reconcile,
    /// Most of a host's backends have no server available (an LB reboot, a
    /// network cut): one notice for the host instead of one per backend.
    HostDown,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::ServerDown,
        Kind::BackendDown,
        Kind::BackendDegraded,
        Kind::Flapping,
        Kind::Operator,
        Kind::Silence,
        Kind::Rule,
        Kind::Channel,
        Kind::Reconcile,
        Kind::HostDown,
    ];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ServerDown => "server_down",
            Kind::BackendDown => "backend_down",
            Kind::BackendDegraded => "backend_degraded",
            Kind::Flapping => "flapping",
            Kind::Operator => "operator",
            Kind::Silence => "silence",
            Kind::Rule => "rule",
            Kind::Channel => "channel",
            Kind::Reconcile => "reconcile",
            Kind::HostDown => "host_down",
        }
    }
}

/// Stored with each notification waiting in the outbox, so a restart renders
/// exactly what the change said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    /// What it is about, e.g. `server:lb1:be_api/api3`: one open incident per key.
    pub key: IncidentKey,
    pub kind: Kind,
    pub severity: Severity,
    pub host: String,
    pub backend: Option<String>,
    pub server: Option<String>,
    pub opened_ms: i64,
    /// Set on the copy a reminder (`repeat_critical`) notifies: when it was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_ms: Option<i64>,
    /// Who acknowledged it, when and why (`hapwatch ack`), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Box<Ack>>,
    pub summary: String,
    /// Evidence known when it opened: check reason, servers left, …
    pub detail: Map<String, Value>,
}

/// An acknowledgement: someone is on it. No more reminders; its resolve says who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    Opened(Incident),
    Timeline {
        id: i64,
        ts_ms: i64,
        text: String,
    },
    /// `incident` is as it was opened: notifications are routed by it.
    Resolved {
        id: i64,
        ts_ms: i64,
        incident: Box<Incident>,
        note: String,
    },
}

/// `[incidents]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentsConfig {
    /// More than this many UP/DOWN changes of one server…
    pub flap_changes: usize,
    /// …within this period make it flapping.
    #[serde(deserialize_with = "crate::de::duration")]
    pub flap_period: Duration,
    /// A flapping server stable this long is resolved.
    #[serde(deserialize_with = "crate::de::duration")]
    pub flap_quiet: Duration,
    /// Share of a backend's servers DOWN above which it is degraded (0 disables).
    #[serde(deserialize_with = "crate::de::share")]
    pub degraded_share: f64,
    /// No message from a host heard before for this long (0 disables).
    #[serde(deserialize_with = "crate::de::duration")]
    pub silence_after: Duration,
    /// More than this share of a host's backends with no server available
    /// opens one `host_down` for the host (0 disables).
    #[serde(deserialize_with = "crate::de::share")]
    pub host_share: f64,
    /// After a HAProxy reload or restart (a new worker PID), what opens on
    /// that host is held this long and paged only if it outlasts it (0 disables).
    #[serde(deserialize_with = "crate::de::duration")]
    pub reload_grace: Duration,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            flap_changes: 4,
            flap_period: Duration::from_secs(600),
            flap_quiet: Duration::from_secs(600),
            degraded_share: 0.25,
            silence_after: Duration::from_secs(300),
            reload_grace: Duration::from_secs(10),
            host_share: 0.5,
        }
    }
}

/// Which servers a silence covers (None: any), as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerMatch {
    pub host: Option<String>,
    pub backend: Option<String>,
    pub server: Option<String>,
}

impl ServerMatch {
    pub fn matches(&self, host: &str, backend: &str, server: &str) -> bool {
        self.covers(host, Some(backend), Some(server))
    }

    /// Whether it covers an incident: one about no backend (a silent host)
    /// only when it names no backend either.
    pub fn matches_incident(&self, i: &Incident) -> bool {
        self.covers(&i.host, i.backend.as_deref(), i.server.as_deref())
    }

    fn covers(&self, host: &str, backend: Option<&str>, server: Option<&str>) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&self.host, Some(host)) && eq(&self.backend, backend) && eq(&self.server, server)
    }
}

/// An incident about hapwatch's own dependencies (a channel, HAProxy's stats).
struct Dependency {
    key: IncidentKey,
    kind: Kind,
    severity: Severity,
    summary: String,
    detail: Map<String, Value>,
    /// The resolution when it works again.
    back: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Heard {
    first_ms: i64,
    last_ms: i64,
}

pub struct Engine {
    cfg: IncidentsConfig,
    /// Silenced servers: their DOWN is recorded but does not make a backend degraded.
    muted: Vec<ServerMatch>,
    /// Rule conditions seen true, waiting out their hold time: key → since.
    pending: HashMap<IncidentKey, i64>,
    ids: crate::Numbering,
    open: HashMap<IncidentKey, Incident>,
    fleet: Fleet,
    /// Per host: when it was first and last heard. Only a host heard over at
    /// least `silence_after` can fall silent; one line from a new name cannot.
    last_seen: HashMap<String, Heard>,
    /// Hosts watched for silence at most; more are counted, not watched.
    host_limit: usize,
    pub hosts_untracked: u64,
    server_idle_ms: i64,
    /// When idle servers were last pruned.
    pruned_ms: i64,
}

fn server_key(host: &str, backend: &str, server: &str) -> ServerKey {
    (host.to_owned(), backend.to_owned(), server.to_owned())
}

impl Engine {
    /// `open` and `fleet` come from the store, so a restart neither re-alerts
    /// nor forgets; `next_id` follows the largest stored id.
    pub fn new(cfg: IncidentsConfig, next_id: i64, open: Vec<Incident>, fleet: Fleet) -> Engine {
        Engine {
            cfg,
            muted: Vec::new(),
            pending: HashMap::new(),
            ids: crate::Numbering::new(next_id),
            open: open.into_iter().map(|i| (i.key.clone(), i)).collect(),
            fleet,
            last_seen: HashMap::new(),
            host_limit: 10_000,
            hosts_untracked: 0,
            server_idle_ms: 3_600_000,
            pruned_ms: i64::MIN,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Keeps what `before` (the engine this one replaces) heard of each host:
    /// a host that fell silent while another node decided is still found
    /// silent here.
    pub fn carry_hearing(&mut self, before: &mut Engine) {
        self.last_seen = std::mem::take(&mut before.last_seen);
        self.hosts_untracked = before.hosts_untracked;
    }

    /// Numbers new incidents in blocks from `source` (several nodes deciding at once).
    pub fn number_from(&mut self, source: crate::IdSource) {
        self.ids.blocks_from(source);
    }

    /// Changes whenever a server's state may have: views built from the fleet are stale.
    pub fn fleet_version(&self) -> u64 {
        self.fleet.version
    }

    /// The active silences, re-read each second.
    pub fn set_muted(&mut self, muted: Vec<ServerMatch>) {
        self.muted = muted;
    }

    /// (DOWN servers that count, the backend's size as known, their share).
    /// A silenced or flapping server does not count: a notice about it is
    /// held or already says it, and one server must not be two pages.
    fn degraded_share(&self, host: &str, backend: &str, active_left: u32) -> (usize, usize, f64) {
        let (all_down, _) = self.fleet.backend_down_share(host, backend, active_left);
        let counted = self
            .fleet
            .down_servers(host, backend)
            .filter(|srv| {
                !self.muted.iter().any(|m| m.matches(host, backend, srv))
                    && !self
                        .open
                        .contains_key(&IncidentKey::flapping(host, backend, srv))
            })
            .count();
        let total = all_down + active_left as usize;
        (counted, total, fleet::share(counted, total))
    }

    /// The state the logs last gave this server, if they gave one.
    pub fn known_state(&self, host: &str, backend: &str, server: &str) -> fleet::StateSeen {
        self.fleet
            .servers
            .get(&server_key(host, backend, server))
            .map_or(fleet::StateSeen::Never, |s| s.state)
    }

    /// Learns a state without acting on it (a server first seen UP in the stats).
    pub fn note_state(
        &mut self,
        host: &str,
        backend: &str,
        server: &str,
        state: ServerState,
        ts_ms: i64,
    ) {
        self.fleet.version += 1;
        let s = self.fleet.server(host, backend, server);
        s.state = fleet::StateSeen::Is(state);
        s.since_ms = ts_ms;
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open.values()
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        out: &mut Vec<Change>,
        key: IncidentKey,
        kind: Kind,
        severity: Severity,
        (host, backend, server): (&str, Option<&str>, Option<&str>),
        ts_ms: i64,
        summary: String,
        detail: Map<String, Value>,
    ) -> i64 {
        if let Some(existing) = self.open.get(&key) {
            return existing.id;
        }
        let id = self.ids.take();
        let incident = Incident {
            id,
            key: key.clone(),
            kind,
            severity,
            host: host.to_owned(),
            backend: backend.map(str::to_owned),
            server: server.map(str::to_owned),
            opened_ms: ts_ms,
            reminder_ms: None,
            ack: None,
            summary,
            detail,
        };
        out.push(Change::Opened(incident.clone()));
        self.open.insert(key, incident);
        id
    }

    fn resolve(&mut self, out: &mut Vec<Change>, key: &IncidentKey, ts_ms: i64, note: String) {
        if let Some(i) = self.open.remove(key) {
            // Times from headers and from the clock may disagree: never before it opened.
            let ts_ms = ts_ms.max(i.opened_ms);
            out.push(Change::Resolved {
                id: i.id,
                ts_ms,
                incident: Box::new(i),
                note,
            });
        }
    }

    fn timeline(&self, out: &mut Vec<Change>, key: &IncidentKey, ts_ms: i64, text: &str) {
        if let Some(i) = self.open.get(key) {
            out.push(Change::Timeline {
                id: i.id,
                ts_ms,
                text: text.to_owned(),
            });
        }
    }

    /// A health, state or proxy event from `host`; `message` goes into timelines.
    pub fn on_event(
        &mut self,
        host: &str,
        event: &Event<'_>,
        ts_ms: i64,
        message: &str,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        match event {
            Event::HealthCheck(h) => {
                if h.result == CheckResult::Failed {
                    let reason = match h.info {
                        Some(info) => format!("{} ({info})", h.reason),
                        None => h.reason.to_owned(),
                    };
                    self.fleet.server(host, h.proxy, h.server).last_failure = Some(reason);
                }
                let heard = &mut self.fleet.server(host, h.proxy, h.server).heard_ms;
                *heard = (*heard).max(ts_ms);
                for key in [
                    IncidentKey::server(host, h.proxy, h.server),
                    IncidentKey::flapping(host, h.proxy, h.server),
                ] {
                    self.timeline(&mut out, &key, ts_ms, message);
                }
            }
            Event::StateChange(s) => self.on_state(&mut out, host, s, ts_ms, message),
            Event::BackendDown { proxy, proxy_type } => {
                let key = IncidentKey::backend(host, proxy);
                let mut detail = Map::new();
                detail.insert("proxy_type".into(), json!(proxy_type));
                let down: Vec<&str> = self.fleet.down_servers(host, proxy).collect();
                if !down.is_empty() {
                    detail.insert("down_servers".into(), json!(down));
                }
                self.open(
                    &mut out,
                    key.clone(),
                    Kind::BackendDown,
                    Severity::Critical,
                    (host, Some(proxy), None),
                    ts_ms,
                    format!("{proxy_type} {proxy} has no server available"),
                    detail,
                );
                self.timeline(&mut out, &key, ts_ms, message);
            }
            Event::Other(_) | Event::Traffic(_) => {}
        }
        if out.iter().any(rollup::may_change_host) {
            self.host_rollup(&mut out, host, ts_ms);
        }
        out
    }

    fn on_state(
        &mut self,
        out: &mut Vec<Change>,
        host: &str,
        s: &StateChange<'_>,
        ts_ms: i64,
        message: &str,
    ) {
        let (be, srv) = (s.proxy, s.server);
        let key = server_key(host, be, srv);
        let state = s.new_state.map_or("?", |x| x.as_str());
        self.fleet.version += 1;
        {
            let status = self.fleet.server(host, be, srv);
            status.state = s
                .new_state
                .map_or(fleet::StateSeen::Unreadable, fleet::StateSeen::Is);
            status.since_ms = ts_ms;
            status.heard_ms = ts_ms;
            status.active_left = s.active_servers.or(status.active_left);
            status.backup_left = s.backup_servers.or(status.backup_left);
        }
        let target = (host, Some(be), Some(srv));
        if s.is_operator_action() {
            let op_key = IncidentKey::operator(host, be, srv);
            if matches!(
                s.new_state,
                Some(ServerState::Maint | ServerState::Drain | ServerState::Down)
            ) {
                let cause = s.cause.map_or(String::new(), |c| format!(" ({c})"));
                self.open(
                    out,
                    op_key.clone(),
                    Kind::Operator,
                    Severity::Info,
                    target,
                    ts_ms,
                    format!("server {be}/{srv} set to {state} by an operator{cause}"),
                    Map::new(),
                );
                self.timeline(out, &op_key, ts_ms, message);
            } else {
                self.timeline(out, &op_key, ts_ms, message);
                self.resolve(out, &op_key, ts_ms, format!("server is {state} again"));
            }
            return;
        }
        let server_k = IncidentKey::server(host, be, srv);
        let flap_k = IncidentKey::flapping(host, be, srv);
        let degraded_k = IncidentKey::degraded(host, be);
        match s.new_state {
            Some(ServerState::Down) => {
                if !self.flapping(out, &key, ts_ms, message) {
                    let last_failure = self.fleet.server(host, be, srv).last_failure.clone();
                    let mut detail = Map::new();
                    detail.insert(
                        "reason".into(),
                        json!(s.reason.map(str::to_owned).or(last_failure)),
                    );
                    detail.insert("active_left".into(), json!(s.active_servers));
                    detail.insert("backup_left".into(), json!(s.backup_servers));
                    if let Some(active) = s.active_servers {
                        // Known DOWN servers plus those HAProxy still counts active.
                        let (down, _) = self.fleet.backend_down_share(host, be, active);
                        detail.insert("servers".into(), json!(down + active as usize));
                    }
                    self.open(
                        out,
                        server_k.clone(),
                        Kind::ServerDown,
                        Severity::Warning,
                        target,
                        ts_ms,
                        format!("server {be}/{srv} is DOWN"),
                        detail,
                    );
                    self.timeline(out, &server_k, ts_ms, message);
                }
                if let Some(active) = s.active_servers {
                    let (down, total, share) = self.degraded_share(host, be, active);
                    if self.cfg.degraded_share > 0.0 && share > self.cfg.degraded_share {
                        let mut detail = Map::new();
                        detail.insert("down".into(), json!(down));
                        detail.insert("active_left".into(), json!(active));
                        detail.insert("servers".into(), json!(total));
                        self.open(
                            out,
                            degraded_k.clone(),
                            Kind::BackendDegraded,
                            Severity::Warning,
                            (host, Some(be), None),
                            ts_ms,
                            format!("backend {be} has {down} of {total} servers DOWN"),
                            detail,
                        );
                        self.timeline(out, &degraded_k, ts_ms, message);
                    }
                }
            }
            Some(ServerState::Up) => {
                self.flapping(out, &key, ts_ms, message);
                self.timeline(out, &server_k, ts_ms, message);
                self.resolve(out, &server_k, ts_ms, "UP again".into());
                let backend_k = IncidentKey::backend(host, be);
                self.timeline(out, &backend_k, ts_ms, message);
                let still: Vec<String> = self
                    .fleet
                    .down_servers(host, be)
                    .map(str::to_owned)
                    .collect();
                let back = match still.as_slice() {
                    [] => format!("server {srv} is UP"),
                    rest => format!("server {srv} is UP ({} still DOWN)", rest.join(", ")),
                };
                self.resolve(out, &backend_k, ts_ms, back.clone());
                let active = s.active_servers.unwrap_or(0);
                let (_, _, share) = self.degraded_share(host, be, active);
                if share <= self.cfg.degraded_share {
                    self.resolve(out, &degraded_k, ts_ms, back);
                }
            }
            _ => {
                self.timeline(out, &server_k, ts_ms, message);
                self.timeline(out, &flap_k, ts_ms, message);
            }
        }
    }

    /// Counts an UP/DOWN change; true when the server is flapping (its
    /// incident is then open and has the change in its timeline).
    fn flapping(
        &mut self,
        out: &mut Vec<Change>,
        key: &ServerKey,
        ts_ms: i64,
        message: &str,
    ) -> bool {
        let changes = self
            .fleet
            .note_change(key, ts_ms, self.cfg.flap_period.as_millis() as i64);
        let (host, be, srv) = key;
        let flap_k = IncidentKey::flapping(host, be, srv);
        if !self.open.contains_key(&flap_k) {
            if changes <= self.cfg.flap_changes {
                return false;
            }
            self.open_flapping(out, host, be, srv, ts_ms, changes);
        }
        self.timeline(out, &flap_k, ts_ms, message);
        true
    }

    /// A flapping incident absorbs the server's DOWN incident.
    fn open_flapping(
        &mut self,
        out: &mut Vec<Change>,
        host: &str,
        be: &str,
        srv: &str,
        ts_ms: i64,
        changes: usize,
    ) {
        let mut detail = Map::new();
        detail.insert("changes".into(), json!(changes));
        let period = humantime::format_duration(self.cfg.flap_period);
        let id = self.open(
            out,
            IncidentKey::flapping(host, be, srv),
            Kind::Flapping,
            Severity::Warning,
            (host, Some(be), Some(srv)),
            ts_ms,
            format!("server {be}/{srv} is flapping ({changes} changes in {period})"),
            detail,
        );
        self.resolve(
            out,
            &IncidentKey::server(host, be, srv),
            ts_ms,
            format!("superseded by flapping incident #{id}"),
        );
        // A flapping server no longer counts toward its backend's share.
        let degraded_k = IncidentKey::degraded(host, be);
        if let Some(active) = self
            .open
            .get(&degraded_k)
            .and_then(|i| i.detail.get("active_left"))
            .and_then(Value::as_u64)
        {
            let (_, _, share) = self.degraded_share(host, be, active as u32);
            if share <= self.cfg.degraded_share {
                let note =
                    format!("server {srv} is flapping (incident #{id}); it no longer counts");
                self.resolve(out, &degraded_k, ts_ms, note);
            }
        }
    }

    /// The system clock was stepped by `delta_ms`: the times this engine waits
    /// from (last messages, rule holds) move with it, so a step forward is not
    /// silence and a step back does not postpone an alert.
    pub fn shift_clock(&mut self, delta_ms: i64) {
        for t in self.pending.values_mut() {
            *t += delta_ms;
        }
        for h in self.last_seen.values_mut() {
            h.first_ms += delta_ms;
            h.last_ms += delta_ms;
        }
    }

    /// At most this many hosts are watched for silence.
    pub fn with_host_limit(mut self, limit: usize) -> Engine {
        self.host_limit = limit.max(1);
        self
    }

    /// Servers only ever named by health checks and quiet this long are
    /// forgotten: a flood of names must not stay in memory. Servers with a
    /// state (UP, DOWN, MAINT…) are kept.
    pub fn with_server_idle(mut self, idle: Duration) -> Engine {
        self.server_idle_ms = idle.as_millis() as i64;
        self
    }

    /// Delivery says a channel fails (`Some(error)`) or works again (`None`).
    pub fn on_channel(
        &mut self,
        host: &str,
        channel: &str,
        failing: Option<&str>,
        ts_ms: i64,
    ) -> Vec<Change> {
        let mut detail = Map::new();
        detail.insert("channel".into(), json!(channel));
        let incident = Dependency {
            key: IncidentKey::channel(channel),
            kind: Kind::Channel,
            severity: Severity::Critical,
            summary: format!("notification channel {channel} keeps failing"),
            detail,
            back: "it delivers again",
        };
        self.dependency(host, incident, failing, ts_ms)
    }

    /// The stats of `host`'s HAProxy cannot be read (`Some(why)`) or can again.
    pub fn on_stats(&mut self, host: &str, failing: Option<&str>, ts_ms: i64) -> Vec<Change> {
        let incident = Dependency {
            key: IncidentKey::reconcile(host),
            kind: Kind::Reconcile,
            severity: Severity::Warning,
            summary: format!("HAProxy's stats cannot be read for {host}"),
            detail: Map::new(),
            back: "the stats answer again",
        };
        self.dependency(host, incident, failing, ts_ms)
    }

    /// Something hapwatch itself relies on fails (opens `d`, with the reason)
    /// or works again (resolves it).
    fn dependency(
        &mut self,
        host: &str,
        d: Dependency,
        failing: Option<&str>,
        ts_ms: i64,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        match failing {
            Some(error) => {
                let mut detail = d.detail;
                detail.insert("reason".into(), json!(error));
                self.open(
                    &mut out,
                    d.key,
                    d.kind,
                    d.severity,
                    (host, None, None),
                    ts_ms,
                    d.summary,
                    detail,
                );
            }
            None => self.resolve(&mut out, &d.key, ts_ms, d.back.into()),
        }
        out
    }

    /// Resolves every open incident at `ts_ms` (the end of a replay: what the
    /// file leaves open is not a live incident).
    pub fn close_all(&mut self, ts_ms: i64, note: &str) -> Vec<Change> {
        let mut out = Vec::new();
        let keys: Vec<IncidentKey> = self.open.keys().cloned().collect();
        for key in keys {
            self.resolve(&mut out, &key, ts_ms, note.to_owned());
        }
        out
    }

    /// A message from `host` arrived: it is not silent.
    pub fn seen(&mut self, host: &str, ts_ms: i64) -> Vec<Change> {
        let mut out = Vec::new();
        let full = self.last_seen.len() >= self.host_limit;
        match self.last_seen.get_mut(host) {
            Some(h) => h.last_ms = h.last_ms.max(ts_ms),
            None if full => {
                if self.hosts_untracked == 0 {
                    tracing::warn!(
                        limit = self.host_limit,
                        "more hosts than [limits] hosts: new ones are not watched for silence"
                    );
                }
                self.hosts_untracked += 1;
            }
            None => {
                self.last_seen.insert(
                    host.to_owned(),
                    Heard {
                        first_ms: ts_ms,
                        last_ms: ts_ms,
                    },
                );
            }
        }
        let key = IncidentKey::silence(host);
        if self.open.contains_key(&key) {
            self.resolve(&mut out, &key, ts_ms, "logs arrive again".into());
        }
        out
    }

    /// Time-driven changes: silent hosts, flapping servers that settled.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Change> {
        let mut out = Vec::new();
        if now_ms.saturating_sub(self.pruned_ms) >= 60_000 {
            self.pruned_ms = now_ms;
            let idle = self.server_idle_ms;
            let before = self.fleet.servers.len();
            let open = &self.open;
            self.fleet.servers.retain(|(h, b, srv), s| {
                let quiet = now_ms - s.heard_ms.max(s.since_ms) >= idle;
                let flapping = open.contains_key(&IncidentKey::flapping(h, b, srv));
                // Only servers never seen changing state: an UP one is still part of
                // its backend's health (HAProxy says UP once).
                !(quiet && !flapping && s.state == fleet::StateSeen::Never)
            });
            if self.fleet.servers.len() != before {
                self.fleet.version += 1;
            }
        }
        let silence = self.cfg.silence_after.as_millis() as i64;
        if silence > 0 {
            // Hosts gone for long are forgotten (an open silence stays until they return).
            let forget = (silence * 10).max(86_400_000);
            self.last_seen.retain(|_, h| now_ms - h.last_ms < forget);
            let silent: Vec<(String, i64)> = self
                .last_seen
                .iter()
                .filter(|(_, h)| now_ms - h.last_ms >= silence && h.last_ms - h.first_ms >= silence)
                .filter(|(name, _)| !self.open.contains_key(&IncidentKey::silence(name)))
                .map(|(name, h)| (name.clone(), h.last_ms))
                .collect();
            for (host, last) in silent {
                let mut detail = Map::new();
                detail.insert("last_message_ms".into(), json!(last));
                let quiet = humantime::format_duration(Duration::from_secs(
                    ((now_ms - last) / 1000) as u64,
                ));
                self.open(
                    &mut out,
                    IncidentKey::silence(&host),
                    Kind::Silence,
                    Severity::Warning,
                    (&host, None, None),
                    now_ms,
                    format!("no log from {host} for {quiet}"),
                    detail,
                );
            }
        }
        let quiet = self.cfg.flap_quiet.as_millis() as i64;
        let settled: Vec<(IncidentKey, ServerKey)> = self
            .open
            .values()
            .filter(|i| i.kind == Kind::Flapping)
            .filter_map(|i| {
                let key = server_key(&i.host, i.backend.as_deref()?, i.server.as_deref()?);
                let last = self
                    .fleet
                    .servers
                    .get(&key)?
                    .changes
                    .back()
                    .copied()
                    .unwrap_or(i.opened_ms);
                (now_ms - last >= quiet).then(|| (i.key.clone(), key))
            })
            .collect();
        for (flap_key, (host, be, srv)) in settled {
            let state = self.fleet.server(&host, &be, &srv).state;
            self.resolve(
                &mut out,
                &flap_key,
                now_ms,
                format!(
                    "stable ({state}) for {}",
                    humantime::format_duration(self.cfg.flap_quiet)
                ),
            );
            if state.is(ServerState::Down) {
                let mut detail = Map::new();
                detail.insert(
                    "reason".into(),
                    json!(self.fleet.server(&host, &be, &srv).last_failure),
                );
                self.open(
                    &mut out,
                    IncidentKey::server(&host, &be, &srv),
                    Kind::ServerDown,
                    Severity::Warning,
                    (&host, Some(&be), Some(&srv)),
                    now_ms,
                    format!("server {be}/{srv} is DOWN"),
                    detail,
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
