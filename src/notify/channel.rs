//! `[[channel]]`: where notifications go. The settings every kind shares,
//! and a `Target` that holds only what its transport takes: a URL (and
//! PagerDuty's key) for the HTTP kinds, a relay and addresses for email. The
//! table is read flat and checked whole, so a key the type needs and lacks,
//! or one of another type, is an error at the table's line.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secret::Secret;
use super::{ChannelType, Route};
use crate::config::ConfigError;
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

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawChannel")]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelType,
    /// Incidents below this severity are not sent.
    pub min_severity: Severity,
    /// Only incidents of these backends; empty: all.
    pub backends: Vec<String>,
    /// Send a notice when an incident is resolved.
    pub resolved: bool,
    /// One delivery attempt as a whole, connect to last answer.
    pub timeout: Duration,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// Webhook, Slack, Teams, Alertmanager, PagerDuty: an HTTP POST.
    Http(HttpTarget),
    Email(EmailTarget),
}

#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// http:// or https://.
    pub url: String,
    /// Signs the body: `X-Hapwatch-Signature: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<Secret>,
    /// PagerDuty's integration key (PagerDuty only, and required there).
    pub routing_key: Option<Secret>,
    /// Alertmanager only: how often the alerts of open incidents are posted
    /// again (it forgets an alert not re-sent within its `resolve_timeout`).
    pub repost: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct EmailTarget {
    pub smtp_host: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    pub smtp_port: Option<u16>,
    pub tls: SmtpTls,
    /// AUTH (username, password), when the relay wants it.
    pub credentials: Option<(String, Secret)>,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM file of extra CA certificates to trust (a private relay).
    pub ca_file: Option<PathBuf>,
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
            routing_key: self
                .http()
                .and_then(|h| h.routing_key.as_ref())
                .map(|k| k.expose().to_owned()),
        }
    }

    pub fn http(&self) -> Option<&HttpTarget> {
        match &self.target {
            Target::Http(h) => Some(h),
            Target::Email(_) => None,
        }
    }

    pub fn email(&self) -> Option<&EmailTarget> {
        match &self.target {
            Target::Email(e) => Some(e),
            Target::Http(_) => None,
        }
    }

    /// Changes when any setting does, secrets included, without showing them.
    pub fn fingerprint(&self) -> String {
        let secrets: Vec<&str> = match &self.target {
            Target::Http(h) => [&h.secret, &h.routing_key]
                .into_iter()
                .map(|s| s.as_ref().map_or("", Secret::expose))
                .collect(),
            Target::Email(e) => vec![e.credentials.as_ref().map_or("", |(_, p)| p.expose())],
        };
        let text = format!("{self:?}{}", secrets.join("\0"));
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        d.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The domain of a channel's sender, for Message-IDs.
pub fn mail_domain(ch: &ChannelConfig) -> &str {
    ch.email()
        .and_then(|e| e.from.trim().rsplit_once('@'))
        .map_or("hapwatch.invalid", |(_, d)| d.trim_end_matches('>').trim())
}

/// What planning needs of each channel.
pub fn routes(channels: &[ChannelConfig]) -> Vec<Route> {
    channels.iter().map(ChannelConfig::route).collect()
}

/// The table as written: every key of every type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    #[serde(rename = "type")]
    kind: ChannelType,
    #[serde(default, deserialize_with = "crate::config::http_url")]
    url: Option<String>,
    #[serde(default = "default_min_severity", deserialize_with = "severity")]
    min_severity: Severity,
    #[serde(default)]
    backends: Vec<String>,
    #[serde(default = "yes")]
    resolved: bool,
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration"
    )]
    timeout: Duration,
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default)]
    routing_key: Option<Secret>,
    #[serde(default, deserialize_with = "optional_duration")]
    repost: Option<Duration>,
    #[serde(default)]
    smtp_host: Option<String>,
    #[serde(default)]
    smtp_port: Option<u16>,
    #[serde(default)]
    tls: Option<SmtpTls>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

impl TryFrom<RawChannel> for ChannelConfig {
    type Error = ConfigError;

    /// What serde cannot check key by key: the keys each type needs and takes.
    fn try_from(r: RawChannel) -> Result<Self, ConfigError> {
        let need = |key: &'static str| ConfigError::ChannelNeeds {
            channel: r.name.clone(),
            kind: r.kind,
            key,
        };
        let foreign = |keys: &[(&'static str, bool)]| match keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(ConfigError::ChannelForeignKey {
                channel: r.name.clone(),
                kind: r.kind,
                key,
            }),
            None => Ok(()),
        };
        let target = if r.kind == ChannelType::Email {
            foreign(&[
                ("url", r.url.is_some()),
                ("secret", r.secret.is_some()),
                ("routing_key", r.routing_key.is_some()),
                ("repost", r.repost.is_some()),
            ])?;
            let smtp_host = r.smtp_host.clone().ok_or_else(|| need("smtp_host"))?;
            let from = r.from.clone().ok_or_else(|| need("from"))?;
            if r.to.is_empty() {
                return Err(need("to"));
            }
            for a in r.to.iter().chain([&from]) {
                a.parse::<lettre::message::Mailbox>()
                    .map_err(|e| ConfigError::BadAddress {
                        channel: r.name.clone(),
                        address: a.clone(),
                        reason: e.to_string(),
                    })?;
            }
            let credentials = match (r.username.clone(), r.password.clone()) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => return Err(need("username and password together")),
            };
            Target::Email(EmailTarget {
                smtp_host,
                smtp_port: r.smtp_port,
                tls: r.tls.unwrap_or_default(),
                credentials,
                from,
                to: r.to.clone(),
                ca_file: r.ca_file.clone(),
            })
        } else {
            foreign(&[
                ("smtp_host", r.smtp_host.is_some()),
                ("smtp_port", r.smtp_port.is_some()),
                ("tls", r.tls.is_some()),
                ("username", r.username.is_some()),
                ("password", r.password.is_some()),
                ("from", r.from.is_some()),
                ("to", !r.to.is_empty()),
                ("ca_file", r.ca_file.is_some()),
            ])?;
            if r.kind == ChannelType::Pagerduty {
                if r.routing_key.is_none() {
                    return Err(need("routing_key"));
                }
            } else {
                foreign(&[("routing_key", r.routing_key.is_some())])?;
            }
            if r.kind != ChannelType::Alertmanager {
                foreign(&[("repost", r.repost.is_some())])?;
            }
            let repost = (r.kind == ChannelType::Alertmanager)
                .then(|| r.repost.unwrap_or(DEFAULT_REPOST))
                .filter(|d| !d.is_zero());
            Target::Http(HttpTarget {
                url: r.url.clone().ok_or_else(|| need("url"))?,
                secret: r.secret.clone(),
                routing_key: r.routing_key.clone(),
                repost,
            })
        };
        Ok(ChannelConfig {
            name: r.name,
            kind: r.kind,
            min_severity: r.min_severity,
            backends: r.backends,
            resolved: r.resolved,
            timeout: r.timeout,
            target,
        })
    }
}

/// Well inside Alertmanager's default `resolve_timeout` of 5 minutes (Prometheus re-sends every minute too).
const DEFAULT_REPOST: Duration = Duration::from_secs(60);

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::config::duration(d).map(Some)
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
