//! What a HAProxy message means, as borrowed slices of the input line.

/// One parsed HAProxy message (the part after the syslog header).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    HealthCheck(HealthCheck<'a>),
    StateChange(StateChange<'a>),
    /// `backend X has no server available!`
    BackendDown {
        proxy: &'a str,
        /// `backend`, `proxy` (a `listen` section) or `frontend`.
        proxy_type: &'a str,
    },
    /// An httplog/httpslog/clf/custom line (`Protocol::Http`) or a tcplog line.
    Traffic(Box<Traffic<'a>>),
    Other(Other<'a>),
}

impl Event<'_> {
    /// The `kind` of the JSON schema.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::HealthCheck(_) => "health_check",
            Event::StateChange(_) => "state_change",
            Event::BackendDown { .. } => "backend_down",
            Event::Traffic(t) => match t.protocol {
                Protocol::Http => "http",
                Protocol::Tcp => "tcp",
            },
            Event::Other(_) => "other",
        }
    }

    /// The `template` of the JSON schema: which message shape matched.
    pub fn template(&self) -> &str {
        match self {
            Event::HealthCheck(h) => match h.check_type {
                CheckType::Health => "health_check",
                CheckType::Agent => "agent_check",
            },
            Event::StateChange(s) => s.template.name(),
            Event::BackendDown { .. } => "backend_no_server",
            Event::Traffic(t) => t.format.template(),
            Event::Other(o) => o.template(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckType {
    Health,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Succeeded,
    ConditionallySucceeded,
    Failed,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Succeeded => "succeeded",
            CheckResult::ConditionallySucceeded => "conditionally succeeded",
            CheckResult::Failed => "failed",
        }
    }
}

/// `{Health|Agent} check for [backup ]server be/srv <result>, reason: …, status: N/M STATE.`
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck<'a> {
    pub check_type: CheckType,
    pub proxy: &'a str,
    pub server: &'a str,
    pub backup: bool,
    pub result: CheckResult,
    /// Long description (`Layer4 connection problem`); see [`check_status_code`](crate::check_status_code).
    pub reason: &'a str,
    pub code: Option<i64>,
    /// Free text, HAProxy's `<XX>` escapes left as they are.
    pub info: Option<&'a str>,
    pub check_duration_ms: Option<u64>,
    /// `status: N/M STATE`: absent when the line was truncated.
    pub health: Option<u32>,
    pub health_of: Option<u32>,
    pub health_state: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Up,
    Down,
    Stopping,
    Maint,
    Drain,
}

impl ServerState {
    pub const ALL: [ServerState; 5] = [
        ServerState::Up,
        ServerState::Down,
        ServerState::Stopping,
        ServerState::Maint,
        ServerState::Drain,
    ];

    /// The state HAProxy names so (`UP`, `DOWN`, …), as `as_str` writes it.
    pub fn from_name(name: &str) -> Option<ServerState> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Up => "UP",
            ServerState::Down => "DOWN",
            ServerState::Stopping => "STOPPING",
            ServerState::Maint => "MAINT",
            ServerState::Drain => "DRAIN",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "READY",
            AdminState::Drain => "DRAIN",
            AdminState::Maint => "MAINT",
        }
    }
}

/// Which server state-change sentence matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateTemplate {
    Down,
    Up,
    Stopping,
    GoingMaint,
    MaintWasDown,
    EntersDrain,
    LeaveForcedMaint,
    LeaveMaint,
    ResolvesAgain,
    LeaveForcedMaintRemains,
    ResolvesRemainsMaint,
    RemainsForcedMaint,
    LeaveForcedDrain,
    LeaveDrain,
    RemainsDrain,
    RemainsForcedDrain,
    DnsReady,
}

impl StateTemplate {
    pub fn name(self) -> &'static str {
        match self {
            StateTemplate::Down => "srv_down",
            StateTemplate::Up => "srv_up",
            StateTemplate::Stopping => "srv_stopping",
            StateTemplate::GoingMaint => "srv_going_maint",
            StateTemplate::MaintWasDown => "srv_maint_was_down",
            StateTemplate::EntersDrain => "srv_enters_drain",
            StateTemplate::LeaveForcedMaint => "srv_leave_forced_maint",
            StateTemplate::LeaveMaint => "srv_leave_maint",
            StateTemplate::ResolvesAgain => "srv_resolves_again",
            StateTemplate::LeaveForcedMaintRemains => "srv_leave_forced_maint_remains",
            StateTemplate::ResolvesRemainsMaint => "srv_resolves_remains_maint",
            StateTemplate::RemainsForcedMaint => "srv_remains_forced_maint",
            StateTemplate::LeaveForcedDrain => "srv_leave_forced_drain",
            StateTemplate::LeaveDrain => "srv_leave_drain",
            StateTemplate::RemainsDrain => "srv_remains_drain",
            StateTemplate::RemainsForcedDrain => "srv_remains_forced_drain",
            StateTemplate::DnsReady => "srv_dns_ready",
        }
    }
}

/// `[Backup ]Server be/srv is DOWN|UP|stopping…`, maintenance and drain sentences.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange<'a> {
    pub template: StateTemplate,
    pub proxy: &'a str,
    pub server: &'a str,
    pub backup: bool,
    pub new_state: Option<ServerState>,
    /// Only when the sentence itself names it ("was DOWN", "leaving forced drain").
    pub old_state: Option<ServerState>,
    pub admin_state: Option<AdminState>,
    /// Check details, present when `option log-health-checks` is off.
    pub reason: Option<&'a str>,
    pub code: Option<i64>,
    pub info: Option<&'a str>,
    pub check_duration_ms: Option<u64>,
    /// `changed from CLI`, `DNS NX status`, …
    pub cause: Option<&'a str>,
    /// `be/srv` of the tracked server.
    pub via: Option<&'a str>,
    /// The FQDN of DNS-driven sentences (`('fqdn') resolves again`).
    pub fqdn: Option<&'a str>,
    pub active_servers: Option<u32>,
    pub backup_servers: Option<u32>,
    pub running_on_backup: Option<bool>,
    pub sessions_active: Option<u32>,
    pub sessions_requeued: Option<u32>,
    pub in_queue: Option<u32>,
}

impl<'a> StateChange<'a> {
    /// A sentence with only its template and names; the rest is filled in by who builds it.
    pub fn new(template: StateTemplate, proxy: &'a str, server: &'a str) -> Self {
        StateChange {
            template,
            proxy,
            server,
            backup: false,
            new_state: None,
            old_state: None,
            admin_state: None,
            reason: None,
            code: None,
            info: None,
            check_duration_ms: None,
            cause: None,
            via: None,
            fqdn: None,
            active_servers: None,
            backup_servers: None,
            running_on_backup: None,
            sessions_active: None,
            sessions_requeued: None,
            in_queue: None,
        }
    }

    /// Operator actions (maintenance, drain, CLI) rather than failures.
    pub fn is_operator_action(&self) -> bool {
        matches!(
            self.template,
            StateTemplate::GoingMaint
                | StateTemplate::MaintWasDown
                | StateTemplate::EntersDrain
                | StateTemplate::LeaveForcedMaint
                | StateTemplate::LeaveForcedDrain
                | StateTemplate::RemainsForcedDrain
                | StateTemplate::RemainsForcedMaint
                | StateTemplate::LeaveForcedMaintRemains
        ) || self.cause.is_some_and(|c| c.starts_with("changed from"))
    }
}

/// Lines that are neither checks, state changes nor traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Other<'a> {
    ProxyStopped {
        proxy: &'a str,
        fe: u64,
        be: u64,
    },
    ProxyHardStopped {
        proxy: &'a str,
        remaining: u64,
    },
    ProxyStarted {
        proxy: &'a str,
    },
    ProxyPaused {
        ptype: &'a str,
        proxy: &'a str,
    },
    ProxyResumed {
        ptype: &'a str,
        proxy: &'a str,
    },
    /// ≤2.4: `Stopping frontend X in N ms.`
    ProxyStopping {
        ptype: &'a str,
        proxy: &'a str,
        ms: u64,
    },
    SoftStopTooLong,
    /// Other process-level lines (`Grace period expired…`, `Scheduling a soft-stop…`).
    Process {
        text: &'a str,
    },
    ConnectFrom {
        src_ip: &'a str,
        src_port: Option<u32>,
        dst_ip: Option<&'a str>,
        dst_port: Option<u32>,
        proxy: &'a str,
        mode: &'a str,
    },
    /// Embryonic-session errors: `ip:port [date] fe/bind: SSL handshake failure`.
    ConnError {
        client_ip: &'a str,
        client_port: Option<u32>,
        accept_date: &'a str,
        frontend: &'a str,
        bind: &'a str,
        error: &'a str,
    },
}

impl Other<'_> {
    pub fn template(&self) -> &'static str {
        match self {
            Other::ProxyStopped { .. } => "proxy_stopped",
            Other::ProxyHardStopped { .. } => "proxy_hard_stopped",
            Other::ProxyStarted { .. } => "proxy_started",
            Other::ProxyPaused { .. } => "proxy_paused",
            Other::ProxyResumed { .. } => "proxy_resumed",
            Other::ProxyStopping { .. } => "proxy_stopping",
            Other::SoftStopTooLong => "soft_stop_too_long",
            Other::Process { .. } => "process",
            Other::ConnectFrom { .. } => "connect_from",
            Other::ConnError { .. } => "conn_error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

/// Which traffic format produced a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficFormat<'a> {
    Httplog,
    Httpslog,
    Clf,
    Tcplog,
    /// A `log-format` string compiled by [`LogFormat`](crate::LogFormat), by name.
    Custom(&'a str),
}

impl<'a> TrafficFormat<'a> {
    pub fn template(&self) -> &'a str {
        match self {
            TrafficFormat::Httplog | TrafficFormat::Httpslog => "httplog",
            TrafficFormat::Clf => "httplog_clf",
            TrafficFormat::Tcplog => "tcplog",
            TrafficFormat::Custom(name) => name,
        }
    }

    /// The `log_format` of the JSON schema.
    pub fn name(&self) -> &'a str {
        match self {
            TrafficFormat::Httplog => "httplog",
            TrafficFormat::Httpslog => "httpslog",
            TrafficFormat::Clf => "clf",
            TrafficFormat::Tcplog => "tcplog",
            TrafficFormat::Custom(name) => name,
        }
    }
}

/// A header capture block: `{a|b|}` or a `%hrl` list, kept as the raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captures<'a> {
    pub raw: &'a str,
    /// `|` for `{…}` blocks, ` ` for `%hrl`/`%hsl` lists.
    pub sep: u8,
}

impl<'a> Captures<'a> {
    /// The captured values, in configuration order; empty slots are `""`.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let raw = self.raw;
        let sep = self.sep as char;
        let quoted = self.sep == b' ';
        // `{}` is one empty slot; an empty `%hrl` list has none.
        let empty = raw.is_empty() && quoted;
        raw.split(sep)
            .filter(move |_| !empty)
            .map(move |v| if quoted { trim_quotes(v) } else { v })
    }
}

fn trim_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// TLS details of `option httpslog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslInfo<'a> {
    pub fc_err: Option<i64>,
    /// 16 hex digits.
    pub ssl_fc_err: &'a str,
    pub ssl_c_err: Option<i64>,
    pub ssl_c_ca_err: Option<i64>,
    pub resumed: Option<bool>,
    /// `None` for HAProxy's `-` (no SNI sent, or not TLS).
    pub sni: Option<&'a str>,
    pub version: Option<&'a str>,
    pub cipher: Option<&'a str>,
}

/// One traffic line. Timers keep HAProxy's `-1` for "phase not reached".
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic<'a> {
    pub protocol: Protocol,
    pub format: TrafficFormat<'a>,
    pub client_ip: Option<&'a str>,
    pub client_port: Option<u32>,
    /// As printed (`23/Nov/2026:01:23:33.398`, or with ` +0000` in clf).
    pub accept_date: Option<&'a str>,
    /// `%ms` (clf).
    pub accept_ms: Option<u32>,
    /// Without the `~` that marks a TLS listener.
    pub frontend: Option<&'a str>,
    pub ssl_frontend: bool,
    pub backend: Option<&'a str>,
    pub server: Option<&'a str>,
    pub t_request: Option<i64>,
    pub t_wait: Option<i64>,
    pub t_connect: Option<i64>,
    pub t_response: Option<i64>,
    pub t_active: Option<i64>,
    pub t_total: Option<i64>,
    /// A `+` before Ta/Tt/B: the session was logged before it ended.
    pub logasap: bool,
    pub status: Option<i64>,
    pub bytes_read: Option<u64>,
    pub req_cookie: Option<&'a str>,
    pub res_cookie: Option<&'a str>,
    pub termination_state: Option<&'a str>,
    pub actconn: Option<u32>,
    pub feconn: Option<u32>,
    pub beconn: Option<u32>,
    pub srv_conn: Option<u32>,
    pub retries: Option<u32>,
    /// The `+` of `%rc`.
    pub redispatched: bool,
    pub srv_queue: Option<u32>,
    pub backend_queue: Option<u32>,
    pub req_headers: Option<Captures<'a>>,
    pub res_headers: Option<Captures<'a>>,
    pub request: Option<&'a str>,
    pub method: Option<&'a str>,
    pub uri: Option<&'a str>,
    pub http_version: Option<&'a str>,
    /// The line ended before its last field (HAProxy's `len` cut it).
    pub truncated: bool,
    pub ssl: Option<SslInfo<'a>>,
    pub unique_id: Option<&'a str>,
}

impl<'a> Traffic<'a> {
    pub(crate) fn empty(protocol: Protocol, format: TrafficFormat<'a>) -> Self {
        Traffic {
            protocol,
            format,
            client_ip: None,
            client_port: None,
            accept_date: None,
            accept_ms: None,
            frontend: None,
            ssl_frontend: false,
            backend: None,
            server: None,
            t_request: None,
            t_wait: None,
            t_connect: None,
            t_response: None,
            t_active: None,
            t_total: None,
            logasap: false,
            status: None,
            bytes_read: None,
            req_cookie: None,
            res_cookie: None,
            termination_state: None,
            actconn: None,
            feconn: None,
            beconn: None,
            srv_conn: None,
            retries: None,
            redispatched: false,
            srv_queue: None,
            backend_queue: None,
            req_headers: None,
            res_headers: None,
            request: None,
            method: None,
            uri: None,
            http_version: None,
            truncated: false,
            ssl: None,
            unique_id: None,
        }
    }

    /// Splits the request line into method, URI and version.
    pub(crate) fn set_request(&mut self, request: &'a str) {
        self.request = Some(request);
        if request == "<BADREQ>" || request.is_empty() {
            return;
        }
        let Some(sp) = request.find(' ') else {
            self.method = Some(request);
            return;
        };
        self.method = Some(&request[..sp]);
        let rest = &request[sp + 1..];
        match rest.rfind(' ') {
            Some(v) if rest[v + 1..].starts_with("HTTP/") => {
                self.uri = Some(&rest[..v]);
                self.http_version = Some(&rest[v + 1..]);
            }
            _ => self.uri = Some(rest),
        }
    }

    /// The termination state's first character class, for error accounting.
    pub fn termination_class(&self) -> TerminationClass {
        match self.termination_state.and_then(|t| t.bytes().next()) {
            Some(b'C') | Some(b'c') => TerminationClass::Client,
            Some(b'S') | Some(b's') => TerminationClass::Server,
            Some(b'P') | Some(b'I') => TerminationClass::Proxy,
            Some(b'R') => TerminationClass::Resource,
            Some(b'D') | Some(b'U') | Some(b'K') => TerminationClass::Killed,
            Some(b'L') => TerminationClass::Local,
            _ => TerminationClass::Normal,
        }
    }
}

/// What ended a session, from the first character of the termination state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationClass {
    Normal,
    Local,
    Client,
    Server,
    Proxy,
    Resource,
    Killed,
}
