//! Notification planning, pure: which channel is owed which incident change
//! (routing), how changes are grouped and superseded into messages
//! (`group`), and the body every channel type is sent (`text`, `payload`,
//! `mail`). Delivery (SMTP, HTTP, the outbox) is the daemon's.

pub mod group;
pub mod mail;
pub mod payload;
pub mod text;

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

/// What planning needs of a channel: who it is, what it takes, and the two
/// values its messages carry (the sender's domain, PagerDuty's key).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub kind: ChannelType,
    /// Incidents below this severity are not sent.
    pub min_severity: Severity,
    /// Only incidents of these backends; empty: all.
    pub backends: Vec<String>,
    /// Resolved notices are sent.
    pub resolved: bool,
    /// The domain of the sender's address, for Message-IDs.
    pub mail_domain: String,
    /// PagerDuty's integration key, carried in each event.
    pub routing_key: Option<String>,
}

impl Route {
    /// A webhook to every backend at every severity (tests, `test-alert`).
    pub fn new(name: &str, kind: ChannelType) -> Route {
        Route {
            name: name.to_owned(),
            kind,
            min_severity: Severity::Info,
            backends: Vec::new(),
            resolved: true,
            mail_domain: "hapwatch.invalid".to_owned(),
            routing_key: None,
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Firing,
    Resolved,
    Digest,
    /// Someone acknowledged an incident (PagerDuty is told).
    Acknowledged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
            Status::Digest => "digest",
            Status::Acknowledged => "acknowledged",
        }
    }
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Route {
    pub fn wants(&self, i: &Incident) -> bool {
        i.severity >= self.min_severity
            && (self.backends.is_empty()
                || i.backend
                    .as_ref()
                    .is_some_and(|b| self.backends.contains(b)))
    }
}

/// Which channels hear about which changes.
pub fn items(channels: &[Route], changes: &[Change]) -> Vec<Item> {
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
        HostDown => 0,
        BackendDown => 1,
        ServerDown => 2,
        Flapping => 3,
        BackendDegraded => 4,
        Rule => 5,
        Channel => 6,
        Reconcile => 7,
        Silence => 8,
        Operator => 9,
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
pub fn render(ch: &Route, m: &Message<'_>) -> String {
    let v = match ch.kind {
        ChannelType::Email => mail::render(m),
        _ => payload::build(ch, m),
    };
    v.to_string()
}
