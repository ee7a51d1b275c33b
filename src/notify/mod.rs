//! Notifications: which channels hear about an incident change, and what
//! they are sent. Rows go to the durable outbox with the incident change that
//! caused them; `outbox.rs` delivers them.

pub mod email;
pub mod group;
pub mod notifier;
pub mod outbox;
pub mod payload;
pub mod secret;
pub mod text;
pub mod tls;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::incidents::{Change, Incident, Severity};
use crate::timezone::Zone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// hapwatch's own JSON (see README).
    Webhook,
    Slack,
    Teams,
    Pagerduty,
    Alertmanager,
    /// SMTP, with lettre.
    Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on localhost.
    None,
}

/// `[[channel]]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// Where webhooks are posted (http:// or https://).
    #[serde(default, deserialize_with = "crate::config::http_url")]
    pub url: Option<String>,
    /// Incidents below this severity are not sent ("info", "warning", "critical").
    #[serde(default = "default_min_severity", deserialize_with = "severity")]
    pub min_severity: Severity,
    /// Only incidents of these backends; empty: all.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Send a notice when an incident is resolved.
    #[serde(default = "yes")]
    pub resolved: bool,
    /// One delivery attempt as a whole, connect to last answer.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub timeout: Duration,
    /// Signs the body: `X-Hapwatch-Signature: sha256=<hex HMAC-SHA256>`.
    #[serde(default)]
    pub secret: Option<secret::Secret>,
    /// PagerDuty's integration key.
    #[serde(default)]
    pub routing_key: Option<secret::Secret>,
    /// Email: the SMTP server.
    #[serde(default)]
    pub smtp_host: Option<String>,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// AUTH credentials, when the server wants them.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<secret::Secret>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// A PEM file of extra CA certificates to trust (a private relay).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl ChannelConfig {
    /// What serde cannot check field by field: the keys each type needs.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let need = |key: &'static str| crate::config::ConfigError::ChannelNeeds {
            channel: self.name.clone(),
            kind: self.kind,
            key,
        };
        match self.kind {
            ChannelType::Email => {
                if self.smtp_host.is_none() {
                    return Err(need("smtp_host"));
                }
                let from = self.from.as_deref().ok_or_else(|| need("from"))?;
                if self.to.is_empty() {
                    return Err(need("to"));
                }
                for a in self.to.iter().map(String::as_str).chain([from]) {
                    a.parse::<lettre::message::Mailbox>().map_err(|e| {
                        crate::config::ConfigError::BadAddress {
                            channel: self.name.clone(),
                            address: a.to_owned(),
                            reason: e.to_string(),
                        }
                    })?;
                }
                if self.username.is_some() != self.password.is_some() {
                    return Err(need("username and password together"));
                }
            }
            ChannelType::Pagerduty if self.routing_key.is_none() => {
                return Err(need("routing_key"))
            }
            _ => {}
        }
        if self.kind != ChannelType::Email && self.url.is_none() {
            return Err(need("url"));
        }
        Ok(())
    }
}

fn default_min_severity() -> Severity {
    Severity::Warning
}
fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let s = String::deserialize(d)?;
    Severity::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!("{s:?} is not a severity (info, warning, critical)"))
    })
}

/// `[notify]` in the config: retries of the outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// First retry delay; it doubles per attempt up to `retry_max`, with ±20 % jitter.
    #[serde(deserialize_with = "crate::config::duration")]
    pub retry_min: Duration,
    #[serde(deserialize_with = "crate::config::duration")]
    pub retry_max: Duration,
    /// A notification not delivered within this time is given up (and logged).
    #[serde(deserialize_with = "crate::config::duration")]
    pub expire_after: Duration,
    /// Changes of one backend within this wait become one notification ("0s": none).
    #[serde(deserialize_with = "crate::config::duration")]
    pub group_wait: Duration,
    /// A critical incident still open is notified again this often ("0s": never).
    #[serde(deserialize_with = "crate::config::duration")]
    pub repeat_critical: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            expire_after: Duration::from_secs(86_400),
            group_wait: Duration::from_secs(2),
            repeat_critical: Duration::from_secs(4 * 3600),
        }
    }
}

/// What a reload changes among the channels, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChannelDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl ChannelConfig {
    /// Changes when any setting does, secrets included, without showing them.
    pub fn fingerprint(&self) -> String {
        let secrets = [&self.secret, &self.routing_key, &self.password]
            .map(|s| s.as_ref().map_or("", |s| s.expose()));
        let text = format!("{self:?}{}", secrets.join("\0"));
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        d.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl ChannelDiff {
    /// Against what a running daemon stored: (name, fingerprint).
    pub fn against(running: &[(String, String)], new: &[ChannelConfig]) -> ChannelDiff {
        let mut d = ChannelDiff::default();
        for c in new {
            match running.iter().find(|(n, _)| *n == c.name) {
                None => d.added.push(c.name.clone()),
                Some((_, f)) if *f != c.fingerprint() => d.changed.push(c.name.clone()),
                Some(_) => {}
            }
        }
        d.removed = running
            .iter()
            .filter(|(n, _)| !new.iter().any(|c| &c.name == n))
            .map(|(n, _)| n.clone())
            .collect();
        d
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// (name, fingerprint) of each channel: what a running daemon records, and
/// what a reload or `check-config` compares with.
pub fn fingerprints(channels: &[ChannelConfig]) -> Vec<(String, String)> {
    channels
        .iter()
        .map(|c| (c.name.clone(), c.fingerprint()))
        .collect()
}

/// Why a delivery attempt failed, and so whether another can succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer within the channel's `timeout`: retried.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(std::time::Duration),
    /// The receiver answered this HTTP status (5xx, 408 and 429 are retried).
    #[error("HTTP {status}: {body}")]
    Status {
        status: http_status::Status,
        body: String,
    },
    /// Connecting or talking failed (refused, reset, DNS, SMTP 4xx): retried.
    #[error("{0}")]
    Transport(String),
    /// The server's certificate is not trusted: what it presented, what to do.
    #[error("{0}")]
    Tls(Box<tls::TlsDiagnosis>),
    /// Only a person can fix it: a redirect, SMTP 5xx, AUTH rejected, a bad
    /// address, a channel that cannot be set up.
    #[error("{0}")]
    Permanent(String),
}

impl DeliveryError {
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryError::Timeout(_) | DeliveryError::Transport(_) => false,
            DeliveryError::Status { status, .. } => !status.is_retried(),
            DeliveryError::Tls(_) | DeliveryError::Permanent(_) => true,
        }
    }
}

pub mod http_status {
    /// An HTTP status as a receiver answered it, shown as `503 Service Unavailable`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Status(pub u16);

    impl Status {
        /// Worth another attempt: the receiver is overloaded, down or asks to wait.
        pub fn is_retried(self) -> bool {
            matches!(self.0, 500..=599 | 408 | 429)
        }
    }

    impl std::fmt::Display for Status {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match reqwest::StatusCode::from_u16(self.0) {
                Ok(code) => write!(f, "{code}"),
                Err(_) => write!(f, "{}", self.0),
            }
        }
    }
}

/// A channel that cannot be set up to deliver (its `ca_file`, its TLS
/// settings, the HTTP client): no attempt can succeed until the config changes.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("channel {0:?} has no smtp_host")]
    NoSmtpHost(String),
    #[error(transparent)]
    CaFile(#[from] tls::CaFileError),
    #[error("TLS settings: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl From<SetupError> for DeliveryError {
    fn from(e: SetupError) -> Self {
        DeliveryError::Permanent(error_chain(&e))
    }
}

/// An error with its causes, each said once (some errors already print their source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg += &format!(": {text}");
        }
        src = s.source();
    }
    msg
}

/// The resolution of an incident, for its resolved notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub ts_ms: i64,
    /// What came back: `UP again`, `server st1 is UP (st2 still DOWN)`, …
    pub note: String,
}

/// One incident change that one channel is owed: a row of the outbox from the
/// moment it is decided (its JSON is stored with the row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub channel: String,
    pub incident: Incident,
    pub resolved: Option<Resolution>,
}

impl Item {
    /// `host/backend` (or `host`): grouped and delivered in order within it.
    pub fn group_key(&self) -> String {
        let i = &self.incident;
        match &i.backend {
            Some(b) => format!("{}/{b}", i.host),
            None => i.host.clone(),
        }
    }

    pub fn status(&self) -> Status {
        if self.resolved.is_some() {
            Status::Resolved
        } else {
            Status::Firing
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
    Digest,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
            Status::Digest => "digest",
        }
    }
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowState {
    /// In its group wait; `next_attempt_at` is the group's deadline.
    Waiting,
    /// Carries a message to deliver.
    Queued,
    Delivered,
    /// Given up: a permanent error, expiry, or its channel removed.
    Failed,
    /// Sent as part of the message another row carries.
    Grouped,
    /// Not sent: a worse notice of the same backend says it.
    Superseded,
    /// Not sent: undone within the wait, or its firing never went to this channel.
    Cancelled,
    /// Not sent: a silence covers it.
    Silenced,
}

impl RowState {
    pub const ALL: [RowState; 8] = [
        RowState::Waiting,
        RowState::Queued,
        RowState::Delivered,
        RowState::Failed,
        RowState::Grouped,
        RowState::Superseded,
        RowState::Cancelled,
        RowState::Silenced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Waiting => "waiting",
            RowState::Queued => "queued",
            RowState::Delivered => "delivered",
            RowState::Failed => "failed",
            RowState::Grouped => "grouped",
            RowState::Superseded => "superseded",
            RowState::Cancelled => "cancelled",
            RowState::Silenced => "silenced",
        }
    }

    pub fn parse(s: &str) -> Option<RowState> {
        RowState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A new outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    pub id: i64,
    pub incident_id: i64,
    pub channel: String,
    pub group_key: String,
    pub status: Status,
    pub state: RowState,
    /// The item's JSON (None for a digest).
    pub item: Option<String>,
    /// The message, once composed (empty while waiting).
    pub payload: String,
    pub note: Option<String>,
    pub created_ms: i64,
    /// The group deadline while waiting; the first attempt once queued.
    pub due_ms: i64,
}

/// What the notifier decided, for the writer to commit with the incident
/// changes that caused it.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxOp {
    Insert(NewRow),
    /// A waiting row is settled without a message of its own: `message` is
    /// the row carrying it (grouped), or None (superseded, cancelled, …).
    Settle {
        id: i64,
        state: RowState,
        note: String,
        message: Option<i64>,
    },
    /// A waiting row carries a composed message, queued from `at_ms`.
    Compose {
        id: i64,
        payload: String,
        at_ms: i64,
    },
}

impl ChannelConfig {
    fn wants(&self, i: &Incident) -> bool {
        i.severity >= self.min_severity
            && (self.backends.is_empty()
                || i.backend
                    .as_ref()
                    .is_some_and(|b| self.backends.contains(b)))
    }
}

/// Which channels hear about which changes.
pub fn items(channels: &[ChannelConfig], changes: &[Change]) -> Vec<Item> {
    let mut out = Vec::new();
    for c in changes {
        let (incident, resolved) = match c {
            Change::Opened(i) => (i, None),
            Change::Resolved {
                incident,
                ts_ms,
                note,
                ..
            } => (
                &**incident,
                Some(Resolution {
                    ts_ms: *ts_ms,
                    note: note.clone(),
                }),
            ),
            Change::Timeline { .. } => continue,
        };
        for ch in channels.iter().filter(|ch| ch.wants(incident)) {
            // A failing channel is not told that it fails: the others are.
            let about = incident.detail.get("channel").and_then(|c| c.as_str());
            if incident.kind == crate::incidents::Kind::Channel && about == Some(ch.name.as_str()) {
                continue;
            }
            if resolved.is_some() && !ch.resolved {
                continue;
            }
            out.push(Item {
                channel: ch.name.clone(),
                incident: incident.clone(),
                resolved: resolved.clone(),
            });
        }
    }
    out
}

/// What is wrong before what came back, most severe first, then in order of arrival.
pub fn sort_items(items: &mut [Item]) {
    items.sort_by_key(|it| {
        (
            it.resolved.is_some(),
            std::cmp::Reverse(it.incident.severity),
            rank(it.incident.kind),
        )
    });
}

/// Among equals in severity, what leads a title.
fn rank(k: crate::incidents::Kind) -> u8 {
    use crate::incidents::Kind::*;
    match k {
        BackendDown => 0,
        ServerDown => 1,
        Flapping => 2,
        BackendDegraded => 3,
        Rule => 4,
        Channel => 5,
        Reconcile => 6,
        Silence => 7,
        Operator => 8,
    }
}

/// A message to render: items of one channel and group, sorted.
pub struct Message<'a> {
    pub items: &'a [Item],
    /// The email Message-ID of this message.
    pub message_id: String,
    /// The Message-IDs of the firings a resolve (or reminder) answers, lead first.
    pub parents: Vec<String>,
    pub zone: &'a Zone,
}

impl Message<'_> {
    pub fn status(&self) -> Status {
        if self.items.iter().any(|i| i.resolved.is_none()) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }
}

/// The body one channel is sent for a message.
pub fn render(ch: &ChannelConfig, m: &Message<'_>) -> String {
    let v = match ch.kind {
        ChannelType::Email => email::render(m),
        _ => payload::build(ch, m),
    };
    v.to_string()
}

/// The domain of a channel's sender, for Message-IDs.
pub fn mail_domain(ch: &ChannelConfig) -> &str {
    ch.from
        .as_deref()
        .and_then(|f| f.rsplit_once('@'))
        .map_or("hapwatch.invalid", |(_, d)| d.trim_end_matches('>'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Incident, Kind};

    fn incident(severity: Severity, backend: &str) -> Incident {
        let mut detail = serde_json::Map::new();
        detail.insert("reason".into(), "Layer4 timeout".into());
        detail.insert("active_left".into(), 3.into());
        Incident {
            id: 7,
            key: format!("server:lb1:{backend}/s1"),
            kind: Kind::ServerDown,
            severity,
            host: "lb1".into(),
            backend: Some(backend.into()),
            server: Some("s1".into()),
            opened_ms: 1_795_395_600_000,
            summary: format!("server {backend}/s1 is DOWN"),
            detail,
        }
    }

    fn channel(text: &str) -> ChannelConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn channels_filter_by_severity_and_backend_and_resolves() {
        let all = channel("name = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n");
        assert!(all.validate().is_ok());
        let mail = channel(
            "name = \"m\"\ntype = \"email\"\nsmtp_host = \"mx\"\nfrom = \"hapwatch@example.org\"\n",
        );
        assert!(matches!(
            mail.validate(),
            Err(crate::config::ConfigError::ChannelNeeds { key: "to", .. })
        ));
        let api_only = channel("name = \"b\"\ntype = \"slack\"\nurl = \"http://y\"\nbackends = [\"be_api\"]\nresolved = false\n");
        let critical = channel(
            "name = \"c\"\ntype = \"webhook\"\nurl = \"http://z\"\nmin_severity = \"critical\"\n",
        );
        let channels = [all, api_only, critical];
        let i = incident(Severity::Warning, "be_api");
        let opened = items(&channels, &[Change::Opened(i.clone())]);
        let names: Vec<&str> = opened.iter().map(|n| n.channel.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let resolved = Change::Resolved {
            id: 7,
            ts_ms: 1,
            incident: Box::new(i),
            note: "UP again".into(),
        };
        let names: Vec<(String, Status)> = items(&channels, &[resolved])
            .into_iter()
            .map(|n| (n.channel.clone(), n.status()))
            .collect();
        assert_eq!(names, [("a".to_owned(), Status::Resolved)]);
        assert!(items(
            &channels,
            &[Change::Opened(incident(Severity::Info, "be_api"))]
        )
        .is_empty());
    }

    #[test]
    fn an_item_survives_its_json() {
        let it = Item {
            channel: "a".into(),
            incident: incident(Severity::Critical, "be_api"),
            resolved: Some(Resolution {
                ts_ms: 5,
                note: "UP again".into(),
            }),
        };
        let text = serde_json::to_string(&it).unwrap();
        assert_eq!(serde_json::from_str::<Item>(&text).unwrap(), it);
    }
}
