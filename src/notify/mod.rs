//! Notifications: which channels hear about an incident change, and what
//! they are sent. Rows go to the durable outbox with the incident change that
//! caused them; `outbox.rs` delivers them.

pub mod channel;
pub mod notifier;
pub mod outbox;
pub mod repost;
pub mod secret;

pub use crate::delivery::{error_chain, http_status, DeliveryError, SetupError};
pub use channel::{mail_domain, routes, ChannelConfig, EmailTarget, HttpTarget, SmtpTls, Target};
pub use hapwatch_engine::notify::{
    group, items, render, text, ChannelType, Item, Message, NewRow, OutboxOp, Route, RowState,
    Status,
};

use std::time::Duration;

use serde::Deserialize;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Change, Incident, Kind, Severity};
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
            ack: None,
            summary: format!("server {backend}/s1 is DOWN"),
            detail,
        }
    }

    fn channel(text: &str) -> ChannelConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn only_alertmanager_channels_repost_and_by_default_each_minute() {
        let am = |extra: &str| {
            toml::from_str::<ChannelConfig>(&format!(
                "name = \"am\"\ntype = \"alertmanager\"\nurl = \"http://am:9093/api/v2/alerts\"\n{extra}"
            ))
        };
        let repost = |c: ChannelConfig| c.http().unwrap().repost;
        assert_eq!(repost(am("").unwrap()), Some(Duration::from_secs(60)));
        assert_eq!(
            repost(am("repost = \"15s\"").unwrap()),
            Some(Duration::from_secs(15))
        );
        assert_eq!(repost(am("repost = \"0s\"").unwrap()), None);
        let hook = toml::from_str::<ChannelConfig>(
            "name = \"h\"\ntype = \"webhook\"\nurl = \"http://x\"\nrepost = \"1m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(hook.contains("takes no `repost`"), "{hook}");
        assert_eq!(
            repost(channel(
                "name = \"w\"\ntype = \"webhook\"\nurl = \"http://x\"\n"
            )),
            None
        );
    }

    #[test]
    fn channels_filter_by_severity_and_backend_and_resolves() {
        let all = channel("name = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n");
        assert!(matches!(all.target, Target::Http(_)));
        let mail = toml::from_str::<ChannelConfig>(
            "name = \"m\"\ntype = \"email\"\nsmtp_host = \"mx\"\nfrom = \"hapwatch@example.org\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(mail.contains("needs `to`"), "{mail}");
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
