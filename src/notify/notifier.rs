//! The daemon's side of notifications: routing to channels, silences,
//! grouping. It turns incident changes into outbox rows.

use rusqlite::Connection;

use super::group::Grouper;
use super::{items, ChannelConfig, Notification};
use crate::incidents::Change;
use crate::store::silences::{self, Silence};

pub struct Notifier {
    channels: Vec<ChannelConfig>,
    grouper: Grouper,
    silences: Vec<Silence>,
    /// Reads the silences the CLI adds.
    conn: Option<Connection>,
}

impl Notifier {
    pub fn new(config: &crate::config::Config) -> Notifier {
        Notifier {
            channels: config.channel.clone(),
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
        let mut wanted = items(&self.channels, changes);
        wanted.retain(|it| {
            let Some(s) = self.silences.iter().find(|s| s.matches(&it.incident)) else {
                return true;
            };
            if it.resolved.is_none() {
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

    pub fn next_deadline(&self) -> Option<i64> {
        self.grouper.next_deadline()
    }

    pub fn due(&mut self, now_ms: i64) -> Vec<Notification> {
        self.grouper.due(&self.channels, now_ms)
    }
}
