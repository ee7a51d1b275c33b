//! The daemon's side of notifications: routing to channels, silences,
//! grouping. It turns incident changes into outbox rows.

use rusqlite::Connection;

use super::group::Grouper;
use super::{items, ChannelConfig, Notification};
use crate::incidents::Change;
use crate::store::silences::{self, Silence};

pub struct Notifier {
    channels: Vec<ChannelConfig>,
    digest: crate::digest::DigestConfig,
    /// When the next digest leaves (None: no digest configured).
    next_digest_ms: Option<i64>,
    repeat_ms: i64,
    /// Critical incidents: when they were last notified.
    last_notified: std::collections::HashMap<i64, i64>,
    grouper: Grouper,
    silences: Vec<Silence>,
    /// Reads the silences the CLI adds.
    conn: Option<Connection>,
}

impl Notifier {
    pub fn new(config: &crate::config::Config) -> Notifier {
        let now = crate::timezone::now_ms();
        Notifier {
            channels: config.channel.clone(),
            digest: config.digest.clone(),
            next_digest_ms: (!config.digest.channels.is_empty())
                .then(|| crate::digest::next_due(now, config.digest.every, config.digest.hour)),
            repeat_ms: config.notify.repeat_critical.as_millis() as i64,
            last_notified: Default::default(),
            grouper: Grouper::new(config.notify.group_wait),
            silences: Vec::new(),
            conn: None,
        }
    }

    pub fn read_silences_from(&mut self, conn: Connection) {
        self.conn = Some(conn);
    }

    pub fn reconfigure(&mut self, config: &crate::config::Config) {
        self.channels = config.channel.clone();
    }

    /// Re-reads the active silences (once a second).
    pub fn refresh(&mut self, now_ms: i64) {
        if let Some(conn) = &self.conn {
            match silences::list(conn, now_ms, false) {
                Ok(s) => {
                    let ids = |v: &[Silence]| v.iter().map(|s| s.id).collect::<Vec<_>>();
                    if ids(&s) != ids(&self.silences) {
                        tracing::info!(active = s.len(), "silences changed");
                    }
                    self.silences = s;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the silences"),
            }
        }
        self.silences.retain(|s| s.until_ms > now_ms);
    }

    /// Notifications due now for these changes (others wait for their group).
    pub fn changes(&mut self, changes: &[Change], now_ms: i64) -> Vec<Notification> {
        for c in changes {
            if let Change::Opened(i) = c {
                self.last_notified.insert(i.id, now_ms);
            }
        }
        let wanted = items(&self.channels, changes);
        self.route(wanted, now_ms, true)
    }

    /// Critical incidents open for another `repeat_critical` are notified again.
    pub fn reminders<'a>(
        &mut self,
        open: impl Iterator<Item = &'a crate::incidents::Incident>,
        now_ms: i64,
    ) -> Vec<Notification> {
        if self.repeat_ms <= 0 {
            return Vec::new();
        }
        let mut due = Vec::new();
        let mut still_open = std::collections::HashSet::new();
        for i in open.filter(|i| i.severity == crate::incidents::Severity::Critical) {
            still_open.insert(i.id);
            // An incident restored at start-up counts from now: a restart does not re-alert.
            let last = *self.last_notified.entry(i.id).or_insert(now_ms);
            if now_ms - last >= self.repeat_ms {
                self.last_notified.insert(i.id, now_ms);
                let mut reminder = i.clone();
                let hours = (now_ms - i.opened_ms) as f64 / 3_600_000.0;
                reminder.summary = format!("{} (still open after {hours:.1} h)", i.summary);
                reminder.detail.insert("reminder_ms".into(), now_ms.into());
                due.push(Change::Opened(reminder));
            }
        }
        self.last_notified.retain(|id, _| still_open.contains(id));
        let wanted = items(&self.channels, &due);
        self.route(wanted, now_ms, false)
    }

    /// Drops what a silence covers; `first` notices also hold back their later resolve.
    fn route(
        &mut self,
        mut wanted: Vec<super::Item>,
        now_ms: i64,
        first: bool,
    ) -> Vec<Notification> {
        wanted.retain(|it| {
            let Some(s) = self.silences.iter().find(|s| s.matches(&it.incident)) else {
                return true;
            };
            if it.resolved.is_none() && first {
                tracing::info!(
                    incident = it.incident.id,
                    silence = s.id,
                    reason = s.reason,
                    "silenced: not notified"
                );
                // Its resolve is not sent either, even after the silence ends.
                self.grouper.suppress(it.channel, it.incident.id);
            }
            false
        });
        self.grouper.push(&self.channels, wanted, now_ms)
    }

    /// The digest mail, when it is due: one notification per digest channel.
    pub fn digest(&mut self, now_ms: i64) -> Vec<Notification> {
        let (Some(due), Some(conn)) = (self.next_digest_ms, &self.conn) else {
            return Vec::new();
        };
        if now_ms < due {
            return Vec::new();
        }
        let span = match self.digest.every {
            crate::digest::Every::Hourly => 3_600_000,
            crate::digest::Every::Daily => 86_400_000,
        };
        self.next_digest_ms = Some(crate::digest::next_due(
            now_ms,
            self.digest.every,
            self.digest.hour,
        ));
        let digests = match crate::digest::build(conn, due - span, due) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the digest");
                return Vec::new();
            }
        };
        let body = crate::digest::render(&digests, due - span, due);
        let subject = format!("[hapwatch] digest {}", crate::timezone::rfc3339(due));
        self.channels
            .iter()
            .filter(|c| self.digest.channels.contains(&c.name))
            .map(|c| {
                let domain = c
                    .from
                    .as_deref()
                    .and_then(|f| f.rsplit_once('@'))
                    .map_or("hapwatch.invalid", |(_, d)| d.trim_end_matches('>'));
                let mail = serde_json::json!({
                    "subject": subject,
                    "body": body,
                    "message_id": format!("<hapwatch-digest-{due}@{domain}>"),
                    "in_reply_to": null,
                });
                Notification {
                    incident_id: 0,
                    channel: c.name.clone(),
                    group_key: "digest".into(),
                    status: "digest",
                    payload: mail.to_string(),
                    created_ms: now_ms,
                }
            })
            .collect()
    }

    /// The system clock was stepped: reminders and groups keep their intervals.
    /// (The digest stays on the wall clock's hours, as promised.)
    pub fn shift_clock(&mut self, delta_ms: i64) {
        for t in self.last_notified.values_mut() {
            *t += delta_ms;
        }
        self.grouper.shift_clock(delta_ms);
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.grouper.next_deadline()
    }

    pub fn due(&mut self, now_ms: i64) -> Vec<Notification> {
        self.grouper.due(&self.channels, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Incident, Kind, Severity};

    #[test]
    fn critical_incidents_are_reminded_every_repeat_interval() {
        let config: crate::config::Config = toml::from_str(
            "[notify]\ngroup_wait = \"0s\"\nrepeat_critical = \"1h\"\n\
             [[channel]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n",
        )
        .unwrap();
        let mut n = Notifier::new(&config);
        let i = Incident {
            id: 3,
            key: "backend:lb1:be".into(),
            kind: Kind::BackendDown,
            severity: Severity::Critical,
            host: "lb1".into(),
            backend: Some("be".into()),
            server: None,
            opened_ms: 0,
            summary: "backend be has no server available".into(),
            detail: Default::default(),
        };
        assert_eq!(n.changes(&[Change::Opened(i.clone())], 0).len(), 1);
        assert!(n.reminders([&i].into_iter(), 3_599_999).is_empty());
        let r = n.reminders([&i].into_iter(), 3_600_000);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].payload.contains("still open after 1.0 h"),
            "{}",
            r[0].payload
        );
        assert!(
            n.reminders([&i].into_iter(), 3_600_001).is_empty(),
            "once per interval"
        );
        assert!(n.reminders(std::iter::empty(), 9_000_000).is_empty());
        assert!(
            n.last_notified.is_empty(),
            "resolved incidents are forgotten"
        );
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn a_due_digest_becomes_one_mail_per_digest_channel() {
        let config: crate::config::Config = toml::from_str(
            "[digest]\nevery = \"hourly\"\nchannels = [\"mail\"]\n\
             [[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"mx\"\nfrom = \"hw@example.org\"\nto = [\"ops@example.org\"]\n\
             [[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://x\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        drop(crate::store::open_write(&path).unwrap());
        let mut n = Notifier::new(&config);
        n.read_silences_from(crate::store::open_read(&path).unwrap());
        let due = n.next_digest_ms.unwrap();
        assert!(n.digest(due - 1).is_empty(), "not before it is due");
        let mails = n.digest(due);
        assert_eq!(mails.len(), 1, "the email channel only");
        let mail: serde_json::Value = serde_json::from_str(&mails[0].payload).unwrap();
        assert!(mail["subject"]
            .as_str()
            .unwrap()
            .starts_with("[hapwatch] digest "));
        assert!(mail["body"]
            .as_str()
            .unwrap()
            .contains("No traffic and no incidents"));
        assert_eq!(n.next_digest_ms, Some(due + 3_600_000));
        assert!(n.digest(due + 1).is_empty(), "once per period");
    }

    #[test]
    fn a_digest_channel_must_be_an_email_channel() {
        let config: crate::config::Config = toml::from_str(
            "[digest]\nchannels = [\"hook\"]\n[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://x\"\n",
        )
        .unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .contains("not an email channel"));
    }
}
