//! Notifications: which channels hear about an incident change, and what
//! they are sent. Rows go to the durable outbox with the incident change that
//! caused them; `outbox.rs` delivers them.

pub mod email;
pub mod group;
pub mod notifier;
pub mod outbox;
pub mod payload;
pub mod secret;

use std::time::Duration;

use serde::Deserialize;

use crate::incidents::{Change, Incident, Severity};

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
    /// Where webhooks are posted.
    #[serde(default)]
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
    pub fn validate(&self) -> Result<(), String> {
        let need = |what: &str| {
            format!(
                "channel {:?} (type {:?}) needs `{what}`",
                self.name, self.kind
            )
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
                        format!(
                            "channel {:?}: {a:?} is not an email address: {e}",
                            self.name
                        )
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

/// One notification to store in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub incident_id: i64,
    pub channel: String,
    /// `host/backend` (or `host`): delivery keeps order within it.
    pub group_key: String,
    /// "firing" or "resolved".
    pub status: &'static str,
    pub payload: String,
    pub created_ms: i64,
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

/// An incident change one channel wants to hear about.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub channel: usize,
    pub incident: Incident,
    /// (when, why) for a resolved notice.
    pub resolved: Option<(i64, String)>,
}

impl Item {
    pub fn group_key(&self) -> String {
        let i = &self.incident;
        match &i.backend {
            Some(b) => format!("{}/{b}", i.host),
            None => i.host.clone(),
        }
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
            } => (&**incident, Some((*ts_ms, note.clone()))),
            Change::Timeline { .. } => continue,
        };
        for (n, ch) in channels
            .iter()
            .enumerate()
            .filter(|(_, ch)| ch.wants(incident))
        {
            if resolved.is_some() && !ch.resolved {
                continue;
            }
            out.push(Item {
                channel: n,
                incident: incident.clone(),
                resolved: resolved.clone(),
            });
        }
    }
    out
}

/// The notification(s) for one channel's items of one group: one for the
/// group, except PagerDuty, whose events each carry one incident's dedup key.
pub fn render(ch: &ChannelConfig, items: &[Item], now_ms: i64) -> Vec<Notification> {
    let one = |it: &Item, payload: serde_json::Value| Notification {
        incident_id: it.incident.id,
        channel: ch.name.clone(),
        group_key: it.group_key(),
        status: if it.resolved.is_some() {
            "resolved"
        } else {
            "firing"
        },
        payload: payload.to_string(),
        created_ms: now_ms,
    };
    let single = |it: &Item| {
        let resolved = it.resolved.as_ref().map(|(ts, why)| (*ts, why.as_str()));
        let payload = match ch.kind {
            ChannelType::Email => email::render(ch, &it.incident, resolved),
            _ => payload::build(ch, &it.incident, resolved),
        };
        one(it, payload)
    };
    match items {
        [] => Vec::new(),
        [it] => vec![single(it)],
        _ if ch.kind == ChannelType::Pagerduty => items.iter().map(single).collect(),
        [first, ..] => {
            let payload = match ch.kind {
                ChannelType::Email => email::render_group(ch, items),
                _ => payload::build_group(ch, items),
            };
            let mut n = one(first, payload);
            if items.iter().any(|i| i.resolved.is_none()) {
                n.status = "firing";
            }
            vec![n]
        }
    }
}

/// The notifications a batch of changes causes when nothing is grouped.
#[cfg(test)]
pub fn route(channels: &[ChannelConfig], changes: &[Change], now_ms: i64) -> Vec<Notification> {
    items(channels, changes)
        .iter()
        .flat_map(|it| render(&channels[it.channel], std::slice::from_ref(it), now_ms))
        .collect()
}

/// `[hapwatch] DOWN 3 of be_api on lb1: s1, s2, s3`, or `[hapwatch] 2 changes on be_api on lb1`.
pub fn group_title(items: &[Item]) -> String {
    let first = &items[0];
    let same = items.iter().all(|i| {
        i.incident.kind == first.incident.kind && i.resolved.is_some() == first.resolved.is_some()
    });
    let place = match &first.incident.backend {
        Some(b) => format!("{b} on {}", first.incident.host),
        None => first.incident.host.clone(),
    };
    if same {
        let word = if first.resolved.is_some() {
            "RESOLVED"
        } else {
            first.incident.severity_word()
        };
        let names: Vec<&str> = items
            .iter()
            .filter_map(|i| i.incident.server.as_deref())
            .collect();
        let names = if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        };
        format!("[hapwatch] {word} {} of {place}{names}", items.len())
    } else {
        format!("[hapwatch] {} changes on {place}", items.len())
    }
}

/// `[hapwatch] DOWN be_api/api3 (Layer4 timeout) — 3 of 4 servers left`, or `RESOLVED …`.
pub fn title(i: &Incident, resolved: bool) -> String {
    let word = if resolved {
        "RESOLVED"
    } else {
        i.severity_word()
    };
    let mut t = format!("[hapwatch] {word} {}", i.subject());
    if let Some(reason) = i.detail.get("reason").and_then(|r| r.as_str()) {
        t += &format!(" ({reason})");
    }
    let active = i.detail.get("active_left").and_then(|a| a.as_u64());
    match (active, i.detail.get("servers").and_then(|a| a.as_u64())) {
        (Some(active), Some(total)) => t += &format!(" — {active} of {total} servers left"),
        (Some(active), None) => t += &format!(" — {active} active servers left"),
        _ => {}
    }
    t
}

impl Incident {
    pub fn severity_word(&self) -> &'static str {
        use crate::incidents::Kind::*;
        match self.kind {
            ServerDown | BackendDown => "DOWN",
            BackendDegraded => "DEGRADED",
            Flapping => "FLAPPING",
            Silence => "SILENT",
            Operator => "MAINTENANCE",
            Rule => match self.detail.get("rule").and_then(|r| r.as_str()) {
                Some("p95_ms") => "SLOW",
                Some("retries_per_s") => "RETRIES",
                _ => "ERRORS",
            },
        }
    }

    /// What the incident is about, for titles.
    fn subject(&self) -> String {
        match (&self.backend, &self.server) {
            (Some(b), Some(s)) => format!("{b}/{s} on {}", self.host),
            (Some(b), None) => format!("{b} on {}", self.host),
            _ => self.host.clone(),
        }
    }
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
    fn channels_filter_by_severity_and_backend_and_pair_resolves() {
        let all = channel("name = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n");
        assert!(all.validate().is_ok());
        let mail = channel(
            "name = \"m\"\ntype = \"email\"\nsmtp_host = \"mx\"\nfrom = \"hapwatch@example.org\"\n",
        );
        assert!(mail.validate().unwrap_err().contains("needs `to`"));
        let api_only = channel("name = \"b\"\ntype = \"slack\"\nurl = \"http://y\"\nbackends = [\"be_api\"]\nresolved = false\n");
        let critical = channel(
            "name = \"c\"\ntype = \"webhook\"\nurl = \"http://z\"\nmin_severity = \"critical\"\n",
        );
        let channels = [all, api_only, critical];
        let i = incident(Severity::Warning, "be_api");
        let opened = route(&channels, &[Change::Opened(i.clone())], 0);
        let names: Vec<&str> = opened.iter().map(|n| n.channel.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let resolved = Change::Resolved {
            id: 7,
            ts_ms: 1,
            incident: Box::new(i),
            note: "UP again".into(),
        };
        let names: Vec<(String, &str)> = route(&channels, &[resolved], 0)
            .into_iter()
            .map(|n| (n.channel, n.status))
            .collect();
        assert_eq!(names, [("a".to_owned(), "resolved")]);
        assert!(route(
            &channels,
            &[Change::Opened(incident(Severity::Info, "be_api"))],
            0
        )
        .is_empty());
    }

    #[test]
    fn titles_say_what_why_and_what_is_left() {
        let i = incident(Severity::Warning, "be_api");
        assert_eq!(
            title(&i, false),
            "[hapwatch] DOWN be_api/s1 on lb1 (Layer4 timeout) — 3 active servers left"
        );
        let mut counted = i.clone();
        counted.detail.insert("servers".into(), 4.into());
        assert_eq!(
            title(&counted, false),
            "[hapwatch] DOWN be_api/s1 on lb1 (Layer4 timeout) — 3 of 4 servers left"
        );
        assert!(title(&i, true).starts_with("[hapwatch] RESOLVED be_api/s1 on lb1"));
    }
}
