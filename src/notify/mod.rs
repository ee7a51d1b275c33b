//! Notifications: which channels hear about an incident change, and what
//! they are sent. Rows go to the durable outbox with the incident change that
//! caused them; `outbox.rs` delivers them.

pub mod notifier;
pub mod outbox;
pub mod secret;

pub use crate::delivery::{error_chain, http_status, DeliveryError, SetupError};
pub use hapwatch_engine::notify::{
    group, items, render, text, ChannelType, Item, Message, NewRow, OutboxOp, Route, RowState,
    Status,
};

use std::time::Duration;

use serde::Deserialize;

use crate::incidents::Severity;

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
    /// What notification planning needs of it.
    pub fn route(&self) -> Route {
        Route {
            name: self.name.clone(),
            kind: self.kind,
            min_severity: self.min_severity,
            backends: self.backends.clone(),
            resolved: self.resolved,
            mail_domain: mail_domain(self).to_owned(),
            routing_key: self.routing_key.as_ref().map(|k| k.expose().to_owned()),
        }
    }

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
        // A key another type reads is a mistake, not a setting.
        let email_only = [
            ("smtp_host", self.smtp_host.is_some()),
            ("smtp_port", self.smtp_port.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
            ("ca_file", self.ca_file.is_some()),
        ];
        let webhook_only = [
            ("url", self.url.is_some()),
            ("secret", self.secret.is_some()),
            ("routing_key", self.routing_key.is_some()),
        ];
        let foreign = match self.kind {
            ChannelType::Email => webhook_only.iter().find(|(_, set)| *set),
            ChannelType::Pagerduty => email_only.iter().find(|(_, set)| *set),
            _ => email_only
                .iter()
                .chain(&webhook_only[2..])
                .find(|(_, set)| *set),
        };
        if let Some((key, _)) = foreign {
            return Err(crate::config::ConfigError::ChannelForeignKey {
                channel: self.name.clone(),
                kind: self.kind,
                key,
            });
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

/// The domain of a channel's sender, for Message-IDs.
pub fn mail_domain(ch: &ChannelConfig) -> &str {
    ch.from
        .as_deref()
        .and_then(|f| f.rsplit_once('@'))
        .map_or("hapwatch.invalid", |(_, d)| d.trim_end_matches('>'))
}

/// What planning needs of each channel.
pub fn routes(channels: &[ChannelConfig]) -> Vec<Route> {
    channels.iter().map(ChannelConfig::route).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Change, Incident, Kind};
    use hapwatch_engine::notify::Resolution;

    fn incident(severity: Severity, backend: &str) -> Incident {
        let mut detail = serde_json::Map::new();
        detail.insert("reason".into(), "Layer4 timeout".into());
        detail.insert("active_left".into(), 3.into());
        Incident {
            id: 7,
            key: crate::incidents::IncidentKey::server("lb1", backend, "s1"),
            kind: Kind::ServerDown,
            severity,
            host: "lb1".into(),
            backend: Some(backend.into()),
            server: Some("s1".into()),
            opened_ms: 1_795_395_600_000,
            reminder_ms: None,
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
        // Through what planning is handed of each: its route.
        let channels = routes(&[all, api_only, critical]);
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
