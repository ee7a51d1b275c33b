//! The daemon's side of notifications: routing to channels, silences,
//! grouping. It turns incident changes into outbox operations, committed
//! with the changes that caused them.

use crate::store::Db;

use super::group::{Grouper, Restored};
use super::{items, NewRow, OutboxOp, Route, RowState, Status};
use crate::incidents::{Change, ServerMatch};
use crate::store::acks::{self, OpenAck};
use crate::store::silences::{self, Silence};

mod acked;
mod windows;

pub struct Notifier {
    channels: Vec<Route>,
    digest: crate::digest::DigestConfig,
    /// When the next digest leaves (None: no digest configured).
    next_digest_ms: Option<i64>,
    repeat_ms: i64,
    /// Critical incidents: when they were last notified.
    last_notified: std::collections::HashMap<i64, i64>,
    grouper: Grouper,
    silences: Vec<Silence>,
    /// Acknowledgements of open incidents, by incident id.
    acks: std::collections::HashMap<i64, OpenAck>,
    /// Acks (incident, acked at) whose notifications are queued, until the
    /// store says so too.
    acks_queued: std::collections::HashSet<(i64, i64)>,
    /// Maintenance windows: the config's, and the CLI's (read each second).
    windows: Vec<hapwatch_engine::maintenance::Window>,
    stored_windows: Vec<hapwatch_engine::maintenance::Window>,
    /// A short window over a host's incidents after each HAProxy reload.
    reload_windows: Vec<hapwatch_engine::maintenance::Window>,
    reload_grace_ms: i64,
    /// The zone of recurring windows that name none (`[parse] timezone`).
    zone: crate::timezone::Zone,
    /// Reads the silences, acks and windows the CLI adds.
    conn: Option<Db>,
    /// The store is not read again before this (it failed to answer).
    read_after_ms: i64,
}

/// How long a store that failed to answer is left alone by the pipeline.
const STORE_BACKOFF_MS: i64 = 10_000;
/// The longest the digest's queries may take (once a day or an hour).
const DIGEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest the pipeline waits for one read of a PostgreSQL store.
const PIPELINE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

impl Notifier {
    /// `next_row` follows the largest outbox id stored.
    pub fn new(config: &crate::config::Config, next_row: i64) -> Notifier {
        let now = crate::timezone::now_ms();
        Notifier {
            channels: super::routes(&config.channel),
            digest: config.digest.clone(),
            next_digest_ms: (!config.digest.channels.is_empty())
                .then(|| crate::digest::next_due(now, config.digest.every, config.digest.hour)),
            repeat_ms: config.notify.repeat_critical.as_millis() as i64,
            last_notified: Default::default(),
            grouper: Grouper::new(
                config.notify.group_wait,
                config.parse.timezone.clone(),
                next_row,
            ),
            silences: Vec::new(),
            acks: Default::default(),
            acks_queued: Default::default(),
            windows: crate::maintenance::configured(config),
            stored_windows: Vec::new(),
            reload_windows: Vec::new(),
            reload_grace_ms: config.incidents.reload_grace.as_millis() as i64,
            zone: config.parse.timezone.clone(),
            conn: None,
            read_after_ms: i64::MIN,
        }
    }

    /// The next digest from `now_ms` on, when one is configured.
    pub fn schedule_digest(&mut self, now_ms: i64) {
        if self.next_digest_ms.is_some() {
            self.next_digest_ms = Some(crate::digest::next_due(
                now_ms,
                self.digest.every,
                self.digest.hour,
            ));
        }
    }

    /// Groups still waiting and firings already sent, read back at start.
    pub fn restore(&mut self, restored: Restored) {
        self.grouper.restore(restored);
    }

    /// Numbers new outbox rows in blocks from `source` (several nodes deciding at once).
    pub fn number_from(&mut self, source: hapwatch_engine::IdSource) {
        self.grouper.number_from(source);
    }

    /// A notifier for a node failing open after standing by: nothing owed
    /// yet, but the silences, windows and acks last read (and the connection
    /// to read them again once the store answers). No digest: it is a once-only job.
    pub fn fail_open(&mut self, config: &crate::config::Config, next_row: i64) -> Notifier {
        let mut n = Notifier::new(config, next_row);
        n.next_digest_ms = None;
        n.silences = std::mem::take(&mut self.silences);
        n.acks = std::mem::take(&mut self.acks);
        n.stored_windows = std::mem::take(&mut self.stored_windows);
        n.conn = self.conn.take();
        n.read_after_ms = self.read_after_ms;
        n
    }

    pub fn read_silences_from(&mut self, conn: Db) {
        conn.set_deadline(conn.deadline().map(|d| d.min(PIPELINE_DEADLINE)));
        self.conn = Some(conn);
        // Before the first line: a backlog replayed at start meets the silences and windows.
        self.refresh(crate::timezone::now_ms());
    }

    pub fn reconfigure(&mut self, config: &crate::config::Config) {
        self.channels = super::routes(&config.channel);
        self.repeat_ms = config.notify.repeat_critical.as_millis() as i64;
        self.windows = crate::maintenance::configured(config);
        self.reload_grace_ms = config.incidents.reload_grace.as_millis() as i64;
        self.zone = config.parse.timezone.clone();
        self.grouper
            .reconfigure(config.notify.group_wait, config.parse.timezone.clone());
    }

    /// Re-reads the active silences (once a second).
    pub fn refresh(&mut self, now_ms: i64) {
        if self.conn.is_some() && now_ms >= self.read_after_ms {
            if let Err(e) = self.read_store(now_ms) {
                // On this thread a store that does not answer would hold up
                // every line: go on with what was last read, and look again later.
                tracing::warn!(error = %e, "cannot read the silences, acknowledgements and maintenance windows; going on with those last read");
                self.read_after_ms = now_ms + STORE_BACKOFF_MS;
            }
        }
        self.silences.retain(|s| s.until_ms > now_ms);
    }

    fn read_store(&mut self, now_ms: i64) -> Result<(), crate::store::DbError> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let s = silences::list(conn, now_ms, false)?;
        let ids = |v: &[Silence]| v.iter().map(|s| s.id).collect::<Vec<_>>();
        if ids(&s) != ids(&self.silences) {
            tracing::info!(active = s.len(), "silences changed");
        }
        self.silences = s;
        let open = acks::open(conn)?;
        self.acks = open.into_iter().map(|a| (a.incident_id, a)).collect();
        let acks = &self.acks;
        self.acks_queued.retain(|(id, at)| {
            acks.get(id)
                .is_some_and(|a| a.ack.at_ms == *at && !a.notified)
        });
        let stored = crate::store::maintenance::list(conn, now_ms)?;
        self.stored_windows = stored
            .iter()
            .filter_map(|w| {
                crate::maintenance::window(
                    &w.name(),
                    &w.hosts,
                    &w.backends,
                    &w.schedule,
                    &self.zone,
                )
            })
            .collect();
        Ok(())
    }

    /// How many silences are in force, as last read.
    pub fn silences_active(&self) -> usize {
        self.silences.len()
    }

    /// The servers the active silences cover, for the engine's degraded share.
    pub fn muted(&self) -> Vec<ServerMatch> {
        self.silences.iter().map(|s| s.scope.clone()).collect()
    }

    /// The outbox rows these changes cause (most wait for their group).
    pub fn changes(&mut self, changes: &[Change], now_ms: i64) -> Vec<OutboxOp> {
        for c in changes {
            match c {
                Change::Opened(i) => {
                    self.last_notified.insert(i.id, now_ms);
                }
                // Its rollup ends on every channel, its resolve sent there or not.
                Change::Resolved { id, incident, .. }
                    if matches!(
                        incident.kind,
                        crate::incidents::Kind::HostDown | crate::incidents::Kind::Silence
                    ) =>
                {
                    self.grouper.host_resolved(*id);
                }
                _ => {}
            }
        }
        let wanted = items(&self.channels, changes);
        self.route(wanted, now_ms, true)
    }

    /// The superseding incident `by` resolved: what it held back and is still open is owed.
    pub fn release(
        &mut self,
        by: i64,
        still_open: &[crate::incidents::Incident],
        now_ms: i64,
    ) -> Vec<OutboxOp> {
        let items = self.grouper.release(&self.channels, by, still_open);
        self.route_released(items, now_ms)
    }

    /// Firings owed after all (their holder resolved or ended): routed again,
    /// since a silence or a window may hold them still, and counted as just
    /// notified, so that a reminder does not follow within seconds.
    fn route_released(&mut self, items: Vec<super::Item>, now_ms: i64) -> Vec<OutboxOp> {
        for it in &items {
            self.last_notified.insert(it.incident.id, now_ms);
        }
        self.route(items, now_ms, true)
    }

    /// Critical incidents open for another `repeat_critical` are notified again.
    pub fn reminders<'a>(
        &mut self,
        open: impl Iterator<Item = &'a crate::incidents::Incident>,
        now_ms: i64,
    ) -> Vec<OutboxOp> {
        if self.repeat_ms <= 0 {
            return Vec::new();
        }
        let mut due = Vec::new();
        let mut still_open = std::collections::HashSet::new();
        let acked = &self.acks;
        for i in open.filter(|i| {
            i.severity == crate::incidents::Severity::Critical && !acked.contains_key(&i.id)
        }) {
            still_open.insert(i.id);
            // An incident restored at start-up counts from now: a restart does not re-alert.
            let last = *self.last_notified.entry(i.id).or_insert(now_ms);
            if now_ms - last >= self.repeat_ms {
                self.last_notified.insert(i.id, now_ms);
                let mut reminder = i.clone();
                let hours = (now_ms - i.opened_ms) as f64 / 3_600_000.0;
                reminder.summary = format!("{} (still open after {hours:.1} h)", i.summary);
                reminder.reminder_ms = Some(now_ms);
                due.push(Change::Opened(reminder));
            }
        }
        self.last_notified.retain(|id, _| still_open.contains(id));
        let wanted = items(&self.channels, &due);
        self.route(wanted, now_ms, false)
    }

    /// Silenced items are recorded as such; reminders of silenced incidents are dropped.
    /// Each item says who acknowledged its incident, as the store has it now.
    fn route(&mut self, wanted: Vec<super::Item>, now_ms: i64, first: bool) -> Vec<OutboxOp> {
        let mut ops = Vec::new();
        let mut open = Vec::new();
        for mut it in wanted {
            it.incident.ack = self
                .acks
                .get(&it.incident.id)
                .map(|a| Box::new(a.ack.clone()));
            let Some(s) = self.silence_over(&it.incident) else {
                // A window holds firings; resolves go on to be paired (or not).
                let window = it
                    .resolved
                    .is_none()
                    .then(|| self.window_over(&it.incident, now_ms))
                    .flatten()
                    .map(str::to_owned);
                match window {
                    Some(name) if first => {
                        tracing::info!(
                            incident = it.incident.id,
                            channel = it.channel,
                            window = name,
                            "held by a maintenance window"
                        );
                        self.grouper.held(it, &name, now_ms, &mut ops);
                    }
                    // A reminder inside a window is not due.
                    Some(_) => {}
                    None => open.push(it),
                }
                continue;
            };
            if first {
                tracing::info!(
                    incident = it.incident.id,
                    channel = it.channel,
                    silence = s.id,
                    reason = s.reason,
                    "silenced: not notified"
                );
                let why = format!("silence #{}: {}", s.id, s.reason);
                self.grouper.silenced(it, why, now_ms, &mut ops);
            }
        }
        self.grouper.push(&self.channels, open, now_ms, &mut ops);
        ops
    }

    /// The digest mail, when it is due: one queued row per digest channel.
    /// A digest due that another node composes: only its schedule moves on.
    pub fn skip_digest(&mut self, now_ms: i64) {
        let _ = self.take_due_digest(now_ms);
    }

    /// When the digest due now was due, its schedule moved on to the next.
    fn take_due_digest(&mut self, now_ms: i64) -> Option<i64> {
        let due = self.next_digest_ms.filter(|due| now_ms >= *due)?;
        self.next_digest_ms = Some(crate::digest::next_due(
            now_ms,
            self.digest.every,
            self.digest.hour,
        ));
        Some(due)
    }

    pub fn digest(&mut self, now_ms: i64) -> Vec<OutboxOp> {
        // Without a store to build it from, a digest waits for one.
        if self.conn.is_none() {
            return Vec::new();
        }
        let Some(due) = self.take_due_digest(now_ms) else {
            return Vec::new();
        };
        let conn = self.conn.as_ref().expect("checked above");
        let span = match self.digest.every {
            crate::digest::Every::Hourly => 3_600_000,
            crate::digest::Every::Daily => 86_400_000,
        };
        // A day of windows takes longer than the pipeline's usual reads may.
        let built = conn.with_deadline_at_least(DIGEST_DEADLINE, |conn| {
            crate::digest::build(conn, due - span, due)
        });
        let digests = match built {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the digest");
                return Vec::new();
            }
        };
        let body = crate::digest::render(&digests, due - span, due);
        let mails: Vec<(String, String)> = self
            .channels
            .iter()
            .filter(|c| self.digest.channels.contains(&c.name))
            .map(|c| {
                let mail = crate::digest::mail(&c.mail_domain, &body, due, due);
                (c.name.clone(), mail)
            })
            .collect();
        mails
            .into_iter()
            .map(|(channel, payload)| {
                OutboxOp::Insert(NewRow {
                    id: self.grouper.alloc(),
                    incident_id: 0,
                    channel,
                    group_key: "digest".into(),
                    status: Status::Digest,
                    state: RowState::Queued,
                    item: None,
                    payload,
                    note: None,
                    created_ms: now_ms,
                    due_ms: now_ms,
                })
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

    /// Messages of the groups whose wait is over (`i64::MAX`: all of them).
    pub fn due(&mut self, now_ms: i64) -> Vec<OutboxOp> {
        let mut ops = Vec::new();
        self.grouper.due(&self.channels, now_ms, &mut ops);
        ops
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
        let mut n = Notifier::new(&config, 1);
        let i = Incident {
            id: 3,
            key: crate::incidents::IncidentKey::backend("lb1", "be"),
            kind: Kind::BackendDown,
            severity: Severity::Critical,
            host: "lb1".into(),
            backend: Some("be".into()),
            server: None,
            opened_ms: 0,
            reminder_ms: None,
            ack: None,
            summary: "backend be has no server available".into(),
            detail: Default::default(),
        };
        let sent = n.changes(&[Change::Opened(i.clone())], 0);
        assert_eq!(
            sent.iter()
                .filter(|o| matches!(o, OutboxOp::Compose { .. }))
                .count(),
            1
        );
        assert!(n.reminders([&i].into_iter(), 3_599_999).is_empty());
        let r = n.reminders([&i].into_iter(), 3_600_000);
        let payloads: Vec<&str> = r
            .iter()
            .filter_map(|o| match o {
                OutboxOp::Compose { payload, .. } => Some(payload.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(payloads.len(), 1, "{r:?}");
        assert!(
            payloads[0].contains("still open after 1h"),
            "{}",
            payloads[0]
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
        let mut n = Notifier::new(&config, 1);
        n.read_silences_from(crate::store::open_read(&path).unwrap());
        let due = n.next_digest_ms.unwrap();
        assert!(n.digest(due - 1).is_empty(), "not before it is due");
        let mails = n.digest(due);
        assert_eq!(mails.len(), 1, "the email channel only");
        let OutboxOp::Insert(row) = &mails[0] else {
            panic!("{mails:?}")
        };
        assert_eq!(row.channel, "mail");
        let mail: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
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
        assert!(matches!(
            config.validate(),
            Err(crate::config::ConfigError::DigestNotEmail(_))
        ));
    }
}
