//! Grouping, superseding, cancelling and pairing, as decisions on outbox rows.
//!
//! Every item a channel is owed becomes a row the moment it is decided
//! (committed with the incident change), waiting until its group's deadline:
//! the first change of a backend starts the clock, so nothing waits longer
//! than `group_wait`, and a crash inside the wait loses nothing. Within a
//! group, "no server available" supersedes its servers' DOWN notices and the
//! degraded notice, a degraded notice is folded into the DOWN notice it only
//! counts, and a change undone within the wait (DOWN then UP) is cancelled.
//! A resolve goes to a channel only if that channel was sent the firing.

use std::collections::{BTreeMap, HashMap};

use super::{
    render, sort_items, ChannelType, Item, Message, NewRow, OutboxOp, Route, RowState, Status,
};
use crate::incidents::Kind;
use crate::timezone::Zone;

struct Group {
    deadline_ms: i64,
    /// (row id, item), in order of arrival.
    items: Vec<(i64, Item)>,
}

/// A row read back at start: still in its group wait.
#[derive(Debug, Clone)]
pub struct WaitingRow {
    pub id: i64,
    pub item: Item,
    pub due_ms: i64,
}

/// What a restart carries on from: the next row id, groups still waiting,
/// firings already sent.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Now, when restored: no deadline lies further ahead than one wait.
    pub now_ms: i64,
    /// Incidents up to this id predate rows per change.
    pub legacy_max: i64,
    pub next_row: i64,
    pub waiting: Vec<WaitingRow>,
    pub sent: Vec<SentFiring>,
    pub withheld: Vec<Withheld>,
}

/// A firing a channel was not sent, and why.
#[derive(Debug, Clone)]
pub struct Withheld {
    pub channel: String,
    pub incident_id: i64,
    pub why: String,
    /// What sends it after all, if anything does.
    pub release: Release,
}

/// What makes a withheld firing owed again while its incident is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Nothing (a silence, a cancellation): its resolve is withheld too.
    Never,
    /// The resolve of the incident that superseded it (as Alertmanager un-inhibits).
    Resolve(i64),
    /// The end of the maintenance window of this name.
    WindowEnd(String),
}

/// A firing a channel was sent (or is being sent), read back at start.
#[derive(Debug, Clone)]
pub struct SentFiring {
    pub channel: String,
    pub incident_id: i64,
    /// The Message-ID of the mail that carried it ("" for other channels).
    pub message_id: String,
}

mod rollup;

type Pair = (String, i64);

/// Where an incident's firing stands on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringState {
    /// Sent, or composed into a message being sent.
    Sent,
    /// In its group wait.
    Waiting,
    /// Never (filtered, silenced, superseded, held).
    NotSent,
}

/// How a held row's note begins: `maintenance NAME: …` (read back at start).
pub const MAINTENANCE: &str = "maintenance ";

pub struct Grouper {
    wait_ms: i64,
    rows: crate::Numbering,
    zone: Zone,
    /// (channel, group key) → the group in its wait.
    groups: BTreeMap<(String, String), Group>,
    /// (channel, incident) whose firing went out → its Message-ID.
    sent: HashMap<Pair, String>,
    /// (channel, incident) whose firing was not sent → why.
    withheld: HashMap<Pair, Withheld>,
    /// Incidents up to this id predate rows per change (schema 4): pair them as sent.
    legacy_max: i64,
    /// (channel, host) → the host-level incident (host DOWN, silent) whose
    /// firing stands for the host's other notices while it is open.
    rollups: HashMap<(String, String), i64>,
}

impl Grouper {
    /// `next_row` follows the largest outbox id stored.
    pub fn new(wait: std::time::Duration, zone: Zone, next_row: i64) -> Grouper {
        Grouper {
            wait_ms: wait.as_millis() as i64,
            rows: crate::Numbering::new(next_row),
            zone,
            groups: BTreeMap::new(),
            sent: HashMap::new(),
            withheld: HashMap::new(),
            legacy_max: 0,
            rollups: HashMap::new(),
        }
    }

    /// Carries on after a restart: groups still waiting, firings already sent.
    pub fn restore(&mut self, r: Restored) {
        self.rows.at_least(r.next_row);
        self.legacy_max = r.legacy_max;
        for w in r.waiting {
            self.rows.at_least(w.id + 1);
            // A clock stepped back while stopped must not stretch the wait.
            let due = w.due_ms.min(r.now_ms + self.wait_ms);
            let key = (w.item.channel.clone(), w.item.group_key());
            let group = self.groups.entry(key).or_insert(Group {
                deadline_ms: due,
                items: Vec::new(),
            });
            group.deadline_ms = group.deadline_ms.min(due);
            group.items.push((w.id, w.item));
        }
        for w in r.withheld {
            self.withheld.insert((w.channel.clone(), w.incident_id), w);
        }
        // The first mail that carried a firing is what its resolve threads under.
        for s in r.sent {
            self.sent
                .entry((s.channel, s.incident_id))
                .or_insert(s.message_id);
        }
        // A channel that had the firing is owed nothing more for it (a
        // reminder superseded later is not a firing withheld).
        let sent = &self.sent;
        self.withheld.retain(|pair, _| !sent.contains_key(pair));
    }

    /// A reloaded config's wait and zone (groups already waiting keep their deadline).
    pub fn reconfigure(&mut self, wait: std::time::Duration, zone: Zone) {
        self.wait_ms = wait.as_millis() as i64;
        self.zone = zone;
    }

    /// Numbers new rows in blocks from `source` (several nodes deciding at once).
    pub fn number_from(&mut self, source: crate::IdSource) {
        self.rows.blocks_from(source);
    }

    /// An id for a row of the outbox.
    pub fn alloc(&mut self) -> i64 {
        self.rows.take()
    }

    /// The system clock was stepped: groups still wait `group_wait`, no more.
    pub fn shift_clock(&mut self, delta_ms: i64) {
        for g in self.groups.values_mut() {
            g.deadline_ms += delta_ms;
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().map(|g| g.deadline_ms).min()
    }

    fn settled(&mut self, it: &Item, state: RowState, note: String, now_ms: i64) -> OutboxOp {
        OutboxOp::Insert(NewRow {
            id: self.alloc(),
            incident_id: it.incident.id,
            channel: it.channel.clone(),
            group_key: it.group_key(),
            status: it.status(),
            state,
            item: serde_json::to_string(it).ok(),
            payload: String::new(),
            note: Some(note),
            created_ms: now_ms,
            due_ms: now_ms,
        })
    }

    /// An item a silence covers: recorded, never sent, and its resolve neither.
    pub fn silenced(&mut self, it: Item, why: String, now_ms: i64, ops: &mut Vec<OutboxOp>) {
        if it.resolved.is_none() {
            self.withhold(&it, format!("silenced ({why})"), Release::Never);
        }
        ops.push(self.settled(&it, RowState::Silenced, why, now_ms));
    }

    /// Records that this firing was not sent, why (`its firing was …`, its
    /// resolve's note) and what would send it after all.
    fn withhold(&mut self, it: &Item, why: String, release: Release) {
        self.withheld.insert(
            (it.channel.clone(), it.incident.id),
            Withheld {
                channel: it.channel.clone(),
                incident_id: it.incident.id,
                why: format!("its firing was {why}"),
                release,
            },
        );
    }

    /// A firing a maintenance window holds: recorded as silenced, and owed
    /// when the window ends if its incident is still open (`release_windows`).
    pub fn held(&mut self, it: Item, window: &str, now_ms: i64, ops: &mut Vec<OutboxOp>) {
        let why = format!("{MAINTENANCE}{window}: notified when it ends, if still open");
        self.withhold(
            &it,
            format!("held by maintenance {window}, which it did not outlast"),
            Release::WindowEnd(window.to_owned()),
        );
        ops.push(self.settled(&it, RowState::Silenced, why, now_ms));
    }

    /// Where an incident's firing stands on a channel.
    pub fn firing_state(&self, channel: &str, incident_id: i64) -> FiringState {
        if self.sent.contains_key(&(channel.to_owned(), incident_id)) {
            return FiringState::Sent;
        }
        let waiting = self.groups.iter().any(|((ch, _), g)| {
            ch == channel
                && g.items
                    .iter()
                    .any(|(_, it)| it.incident.id == incident_id && it.resolved.is_none())
        });
        if waiting {
            FiringState::Waiting
        } else {
            FiringState::NotSent
        }
    }

    /// Whether some firing waits for a window's end.
    pub fn holds_for_windows(&self) -> bool {
        self.withheld
            .values()
            .any(|w| matches!(w.release, Release::WindowEnd(_)))
    }

    /// Firings held by windows no longer `active` whose incidents are still
    /// open: owed now, once. Those that recovered inside stay unsent.
    /// The caller routes them (a silence or another window may hold them
    /// still). Those of incidents no longer open are forgotten.
    pub fn release_windows(
        &mut self,
        active: &dyn Fn(&str) -> bool,
        open: &HashMap<i64, crate::incidents::Incident>,
    ) -> Vec<Item> {
        let ended: Vec<Pair> = self
            .withheld
            .iter()
            .filter(|(_, w)| matches!(&w.release, Release::WindowEnd(name) if !active(name)))
            .map(|(pair, _)| pair.clone())
            .collect();
        let mut items = Vec::new();
        for pair in ended {
            self.withheld.remove(&pair);
            if let Some(i) = open.get(&pair.1) {
                items.push(Item {
                    channel: pair.0,
                    incident: i.clone(),
                    resolved: None,
                });
            }
        }
        items
    }

    /// Items join their groups as waiting rows; with no wait, what arrives
    /// together is one group, composed at once.
    pub fn push(
        &mut self,
        channels: &[Route],
        items: Vec<Item>,
        now_ms: i64,
        ops: &mut Vec<OutboxOp>,
    ) {
        for it in items {
            self.push_one(it, now_ms, ops);
        }
        if self.wait_ms == 0 {
            self.due(channels, now_ms, ops);
        }
    }

    fn push_one(&mut self, it: Item, now_ms: i64, ops: &mut Vec<OutboxOp>) {
        if self.rolled_up(&it, now_ms, ops) {
            return;
        }
        let key = (it.channel.clone(), it.group_key());
        let pair = (it.channel.clone(), it.incident.id);
        if it.resolved.is_some() {
            if self.undo(&key, &it, now_ms, ops) {
                return;
            }
            if !self.paired(&pair) {
                let why = self.withheld.remove(&pair).map_or_else(
                    || "its firing was not sent to this channel".into(),
                    |w| w.why,
                );
                ops.push(self.settled(&it, RowState::Cancelled, why, now_ms));
                return;
            }
        }
        let id = self.alloc();
        let deadline = now_ms + self.wait_ms;
        let group = self.groups.entry(key).or_insert(Group {
            deadline_ms: deadline,
            items: Vec::new(),
        });
        ops.push(OutboxOp::Insert(NewRow {
            id,
            incident_id: it.incident.id,
            channel: it.channel.clone(),
            group_key: it.group_key(),
            status: it.status(),
            state: RowState::Waiting,
            item: serde_json::to_string(&it).ok(),
            payload: String::new(),
            note: None,
            created_ms: now_ms,
            due_ms: group.deadline_ms,
        }));
        group.items.push((id, it));
    }

    /// A resolve whose firing still waits in the group: neither is sent. A
    /// waiting reminder of a firing already sent is dropped, and the resolve goes.
    fn undo(
        &mut self,
        key: &(String, String),
        it: &Item,
        now_ms: i64,
        ops: &mut Vec<OutboxOp>,
    ) -> bool {
        let Some(group) = self.groups.get_mut(key) else {
            return false;
        };
        let firing = |p: &Item, reminder: bool| {
            p.incident.id == it.incident.id
                && p.resolved.is_none()
                && super::text::reminder_ms(&p.incident).is_some() == reminder
        };
        if let Some(pos) = group.items.iter().position(|(_, p)| firing(p, true)) {
            let (row, _) = group.items.remove(pos);
            ops.push(OutboxOp::Settle {
                id: row,
                state: RowState::Cancelled,
                note: "a reminder of an incident resolved within the group wait".into(),
                message: None,
            });
        }
        let Some(pos) = group.items.iter().position(|(_, p)| firing(p, false)) else {
            return false;
        };
        let (row, _) = group.items.remove(pos);
        ops.push(OutboxOp::Settle {
            id: row,
            state: RowState::Cancelled,
            note: "resolved within the group wait".into(),
            message: None,
        });
        let op = self.settled(
            it,
            RowState::Cancelled,
            "undone within the group wait: neither is sent".into(),
            now_ms,
        );
        ops.push(op);
        self.withheld.remove(&(it.channel.clone(), it.incident.id));
        true
    }

    /// Whether this channel was sent the incident's firing (incidents older
    /// than the row-per-change outbox count as sent: their rows do not say).
    fn paired(&self, pair: &Pair) -> bool {
        self.sent.contains_key(pair)
            || (pair.1 <= self.legacy_max && !self.withheld.contains_key(pair))
    }

    /// The superseding incident `by` resolved: what it superseded and is
    /// still open is owed again (as Alertmanager un-inhibits), so no server
    /// stays DOWN unannounced and its recovery is not withheld.
    /// The caller routes them (a silence or a window may hold them still).
    pub fn release(
        &mut self,
        channels: &[Route],
        by: i64,
        still_open: &[crate::incidents::Incident],
    ) -> Vec<Item> {
        let mut items = Vec::new();
        for i in still_open {
            for ch in channels {
                let pair = (ch.name.clone(), i.id);
                if self
                    .withheld
                    .get(&pair)
                    .is_some_and(|w| w.release == Release::Resolve(by))
                {
                    self.withheld.remove(&pair);
                    items.push(Item {
                        channel: ch.name.clone(),
                        incident: i.clone(),
                        resolved: None,
                    });
                }
            }
        }
        items
    }

    /// Decides, when a group is due, which firings a worse one of the same
    /// backend says already: "no server available" supersedes DOWN and
    /// degraded; degraded folds into a DOWN. Returns the rows that remain.
    fn supersede(&mut self, rows: Vec<(i64, Item)>, ops: &mut Vec<OutboxOp>) -> Vec<(i64, Item)> {
        let firing = |kind: Kind| {
            rows.iter()
                .find(|(_, p)| p.incident.kind == kind && p.resolved.is_none())
                .map(|(_, p)| p.clone())
        };
        let (backend_down, a_down) = (firing(Kind::BackendDown), firing(Kind::ServerDown));
        let mut kept = Vec::with_capacity(rows.len());
        for (row, it) in rows {
            let by = match (&it.resolved, it.incident.kind) {
                (None, Kind::ServerDown | Kind::BackendDegraded) if backend_down.is_some() => {
                    let b = backend_down.as_ref().map(|b| b.incident.id);
                    b.map(|id| {
                        (
                            format!("superseded by incident #{id} (no server available)"),
                            Some(id),
                        )
                    })
                }
                (None, Kind::BackendDegraded) => a_down.as_ref().map(|d| (folded(d), None)),
                _ => None,
            };
            match by {
                Some((why, by)) => {
                    self.withhold(
                        &it,
                        why.clone(),
                        by.map_or(Release::Never, Release::Resolve),
                    );
                    ops.push(OutboxOp::Settle {
                        id: row,
                        state: RowState::Superseded,
                        note: why,
                        message: None,
                    });
                }
                None => kept.push((row, it)),
            }
        }
        kept
    }

    /// Groups whose wait is over become messages (all of them with `i64::MAX`).
    pub fn due(&mut self, channels: &[Route], now_ms: i64, ops: &mut Vec<OutboxOp>) {
        let keys: Vec<(String, String)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.deadline_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(group) = self.groups.remove(&key) else {
                continue;
            };
            if group.items.is_empty() {
                continue;
            }
            let Some(ch) = channels.iter().find(|c| c.name == key.0) else {
                for (row, _) in group.items {
                    ops.push(OutboxOp::Settle {
                        id: row,
                        state: RowState::Cancelled,
                        note: format!("channel {:?} was removed from the config", key.0),
                        message: None,
                    });
                }
                continue;
            };
            let at = now_ms.min(group.deadline_ms.max(0));
            let mut rows = self.supersede(group.items, ops);
            if rows.is_empty() {
                continue;
            }
            rows.sort_by_key(|(row, _)| *row);
            if ch.kind == ChannelType::Pagerduty {
                // Each PagerDuty event carries one incident's dedup key.
                for (row, it) in rows {
                    self.compose(ch, &[(row, it)], at, ops);
                }
            } else {
                self.compose(ch, &rows, at, ops);
            }
        }
    }

    /// One message from rows of one group: the lowest row carries it, so
    /// delivery order within the group is arrival order.
    fn compose(&mut self, ch: &Route, rows: &[(i64, Item)], at_ms: i64, ops: &mut Vec<OutboxOp>) {
        let carrier = rows[0].0;
        let mut items: Vec<Item> = rows.iter().map(|(_, it)| it.clone()).collect();
        sort_items(&mut items);
        let domain = &ch.mail_domain;
        let message_id = match items.as_slice() {
            [one] => {
                let i = &one.incident;
                match (super::text::reminder_ms(i), one.status()) {
                    (Some(at), _) => format!("<hapwatch-{}-reminder-{at}@{domain}>", i.id),
                    (None, status) => format!("<hapwatch-{}-{}@{domain}>", i.id, status.as_str()),
                }
            }
            _ => format!("<hapwatch-n{carrier}@{domain}>"),
        };
        let mut parents: Vec<String> = Vec::new();
        for it in &items {
            let answers = it.resolved.is_some() || super::text::reminder_ms(&it.incident).is_some();
            if let Some(p) = self
                .sent
                .get(&(ch.name.clone(), it.incident.id))
                .filter(|p| answers && !p.is_empty() && !parents.contains(p))
            {
                parents.push(p.clone());
            }
        }
        let payload = render(
            ch,
            &Message {
                items: &items,
                message_id: message_id.clone(),
                parents,
                zone: &self.zone,
            },
        );
        ops.push(OutboxOp::Compose {
            id: carrier,
            payload,
            at_ms,
        });
        for (row, _) in &rows[1..] {
            ops.push(OutboxOp::Settle {
                id: *row,
                state: RowState::Grouped,
                note: format!("sent in the notification of row #{carrier}"),
                message: Some(carrier),
            });
        }
        let mail_id = if ch.kind == ChannelType::Email {
            message_id
        } else {
            String::new()
        };
        for it in &items {
            let pair = (it.channel.clone(), it.incident.id);
            match it.status() {
                Status::Resolved => {
                    self.sent.remove(&pair);
                    self.withheld.remove(&pair);
                }
                _ => {
                    self.sent.entry(pair).or_insert_with(|| mail_id.clone());
                }
            }
        }
    }
}

fn folded(down: &Item) -> String {
    let i = &down.incident;
    format!(
        "folded into the DOWN notice of {}/{} (incident #{})",
        i.backend.as_deref().unwrap_or_default(),
        i.server.as_deref().unwrap_or_default(),
        i.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Incident, Severity};
    use crate::notify::Resolution;
    use std::time::Duration;

    fn item(id: i64, kind: Kind, server: Option<&str>, resolved: bool) -> Item {
        let severity = if kind == Kind::BackendDown {
            Severity::Critical
        } else {
            Severity::Warning
        };
        Item {
            channel: "a".into(),
            incident: Incident {
                id,
                key: crate::incidents::IncidentKey::stored(format!("k{id}")),
                kind,
                severity,
                host: "lb1".into(),
                backend: Some("be_api".into()),
                server: server.map(Into::into),
                opened_ms: 0,
                reminder_ms: None,
                ack: None,
                summary: format!("incident {id}"),
                detail: Default::default(),
            },
            resolved: resolved.then(|| Resolution {
                ts_ms: 5000,
                note: "UP again".into(),
            }),
        }
    }

    fn channels() -> Vec<Route> {
        vec![Route::new("a", ChannelType::Webhook)]
    }

    fn grouper(wait_s: u64) -> Grouper {
        Grouper::new(Duration::from_secs(wait_s), Zone::Utc, 1)
    }

    /// (row, state, note) of every settle, and (row, payload) of every message.
    fn settled(ops: &[OutboxOp]) -> Vec<(i64, RowState)> {
        ops.iter()
            .filter_map(|o| match o {
                OutboxOp::Settle { id, state, .. } => Some((*id, *state)),
                OutboxOp::Insert(r) if r.state != RowState::Waiting => Some((r.id, r.state)),
                _ => None,
            })
            .collect()
    }

    fn messages(ops: &[OutboxOp]) -> Vec<(i64, serde_json::Value)> {
        ops.iter()
            .filter_map(|o| match o {
                OutboxOp::Compose { id, payload, .. } => {
                    Some((*id, serde_json::from_str(payload).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    /// Pushes (id, kind, server, resolved) items at `at_ms`.
    fn push_all(
        g: &mut Grouper,
        items: &[(i64, Kind, Option<&str>, bool)],
        at_ms: i64,
    ) -> Vec<OutboxOp> {
        let mut ops = Vec::new();
        let items = items
            .iter()
            .map(|(id, k, s, r)| item(*id, *k, *s, *r))
            .collect();
        g.push(&channels(), items, at_ms, &mut ops);
        ops
    }

    fn due_at(g: &mut Grouper, at_ms: i64) -> Vec<OutboxOp> {
        let mut ops = Vec::new();
        g.due(&channels(), at_ms, &mut ops);
        ops
    }

    #[test]
    fn a_silent_host_supersedes_its_waiting_and_later_notices_and_owes_them_when_it_resolves() {
        let mut g = grouper(2);
        let waiting = push_all(&mut g, &[(1, Kind::ServerDown, Some("s1"), false)], 0);
        let row = match &waiting[0] {
            OutboxOp::Insert(r) => r.id,
            other => panic!("{other:?}"),
        };
        let mut silent = item(2, Kind::Silence, None, false);
        silent.incident.backend = None;
        let mut ops = Vec::new();
        g.push(&channels(), vec![silent.clone()], 500, &mut ops);
        assert!(
            settled(&ops).contains(&(row, RowState::Superseded)),
            "{ops:?}"
        );
        // A notice of that host while it is silent: superseded at once.
        let later = push_all(&mut g, &[(3, Kind::ServerDown, Some("s2"), false)], 700);
        assert_eq!(settled(&later).len(), 1);
        assert_eq!(settled(&later)[0].1, RowState::Superseded);
        // The host speaks again: what it stood for and is still open is owed.
        silent.resolved = Some(Resolution {
            ts_ms: 9000,
            note: "it sends again".into(),
        });
        let mut ops = Vec::new();
        g.push(&channels(), vec![silent], 9000, &mut ops);
        let still_open = [item(1, Kind::ServerDown, Some("s1"), false).incident];
        let owed = g.release(&channels(), 2, &still_open);
        g.push(&channels(), owed, 9000, &mut ops);
        let owed: Vec<i64> = ops
            .iter()
            .filter_map(|o| match o {
                OutboxOp::Insert(r) if r.state == RowState::Waiting => Some(r.incident_id),
                _ => None,
            })
            .collect();
        assert_eq!(
            owed,
            [1],
            "s1 still down; s2's resolve would be withheld: {ops:?}"
        );
    }

    #[test]
    fn changes_within_the_wait_are_rows_at_once_and_one_message_at_the_deadline() {
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_all(
            &mut g,
            &[(1, Kind::ServerDown, Some("s1"), false)],
            0,
        ));
        ops.extend(push_all(
            &mut g,
            &[(2, Kind::ServerDown, Some("s2"), false)],
            1500,
        ));
        let waiting: Vec<i64> = ops
            .iter()
            .filter_map(|o| match o {
                OutboxOp::Insert(r) if r.state == RowState::Waiting => Some(r.due_ms),
                _ => None,
            })
            .collect();
        assert_eq!(waiting, [2000, 2000], "the first change starts the clock");
        assert_eq!(g.next_deadline(), Some(2000));
        let mut due = Vec::new();
        due.extend(due_at(&mut g, 1999));
        assert!(due.is_empty());
        due.extend(due_at(&mut g, 2000));
        let m = messages(&due);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, 1, "the first row carries the message");
        assert_eq!(m[0].1["incidents"].as_array().unwrap().len(), 2);
        assert_eq!(settled(&due), [(2, RowState::Grouped)]);
    }

    #[test]
    fn backend_down_supersedes_and_their_resolves_are_not_sent() {
        let mut g = grouper(2);
        push_all(&mut g, &[(1, Kind::ServerDown, Some("s1"), false)], 0);
        push_all(&mut g, &[(2, Kind::BackendDegraded, None, false)], 10);
        push_all(&mut g, &[(3, Kind::BackendDown, None, false)], 100);
        push_all(&mut g, &[(4, Kind::ServerDown, Some("s2"), false)], 200);
        // Decided when the group is due, from all it holds.
        let ops = due_at(&mut g, 2000);
        let mut states = settled(&ops);
        states.sort();
        assert_eq!(
            states,
            [
                (1, RowState::Superseded),
                (2, RowState::Superseded),
                (4, RowState::Superseded)
            ]
        );
        let m = messages(&ops);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1["incident"]["id"], 3);
        // The superseded incidents resolve silently; the critical one's resolve goes.
        let mut later = push_all(
            &mut g,
            &[
                (1, Kind::ServerDown, Some("s1"), true),
                (3, Kind::BackendDown, None, true),
            ],
            3000,
        );
        assert_eq!(settled(&later), [(5, RowState::Cancelled)]);
        later.extend(due_at(&mut g, 9000));
        let m = messages(&later);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1["status"], "resolved");
        assert_eq!(m[0].1["incident"]["id"], 3);
        // What it superseded and is still open is owed again: s2 DOWN and the
        // degraded notice, folded into it.
        let open: Vec<_> = [
            item(2, Kind::BackendDegraded, None, false),
            item(4, Kind::ServerDown, Some("s2"), false),
        ]
        .into_iter()
        .map(|it| it.incident)
        .collect();
        let mut released = Vec::new();
        let owed = g.release(&channels(), 3, &open);
        g.push(&channels(), owed, 9500, &mut released);
        released.extend(due_at(&mut g, 20_000));
        let m = messages(&released);
        assert_eq!(m.len(), 1, "{released:?}");
        assert_eq!(m[0].1["incident"]["id"], 4);
        assert_eq!(m[0].1["incidents"].as_array().unwrap().len(), 1);
        // And so s2's recovery is sent, paired with the released firing.
        let mut back = push_all(&mut g, &[(4, Kind::ServerDown, Some("s2"), true)], 30_000);
        back.extend(due_at(&mut g, 40_000));
        assert_eq!(messages(&back)[0].1["status"], "resolved");
    }

    #[test]
    fn a_superseding_change_undone_within_the_wait_leaves_the_downs_it_superseded() {
        let mut g = grouper(2);
        push_all(&mut g, &[(1, Kind::ServerDown, Some("s1"), false)], 0);
        push_all(&mut g, &[(2, Kind::BackendDown, None, false)], 100);
        // s2 blipped: the backend is back before the group is due; s1 is still DOWN.
        push_all(&mut g, &[(2, Kind::BackendDown, None, true)], 500);
        let ops = due_at(&mut g, 2000);
        let m = messages(&ops);
        assert_eq!(m.len(), 1, "{ops:?}");
        assert_eq!(m[0].1["incident"]["id"], 1);
    }

    #[test]
    fn a_resolve_arriving_during_a_reminders_wait_is_still_sent() {
        let mut g = grouper(2);
        push_all(&mut g, &[(3, Kind::BackendDown, None, false)], 0);
        assert_eq!(messages(&due_at(&mut g, 2000)).len(), 1);
        let mut reminder = item(3, Kind::BackendDown, None, false);
        reminder.incident.reminder_ms = Some(3000);
        let mut ops = Vec::new();
        g.push(&channels(), vec![reminder], 3000, &mut ops);
        ops.extend(push_all(
            &mut g,
            &[(3, Kind::BackendDown, None, true)],
            3500,
        ));
        ops.extend(due_at(&mut g, 6000));
        let m = messages(&ops);
        assert_eq!(m.len(), 1, "{ops:?}");
        assert_eq!(m[0].1["status"], "resolved");
        assert_eq!(
            settled(&ops),
            [(2, RowState::Cancelled)],
            "only the reminder is dropped"
        );
    }

    #[test]
    fn incidents_notified_before_rows_per_change_still_get_their_resolve() {
        let mut g = grouper(0);
        g.restore(Restored {
            now_ms: 0,
            legacy_max: 7,
            next_row: 10,
            waiting: vec![],
            sent: vec![],
            withheld: vec![],
        });
        let ops = push_all(&mut g, &[(7, Kind::ServerDown, Some("s1"), true)], 0);
        assert_eq!(messages(&ops)[0].1["status"], "resolved");
        let ops = push_all(&mut g, &[(8, Kind::ServerDown, Some("s1"), true)], 0);
        assert!(
            messages(&ops).is_empty(),
            "a newer one's firing was never sent"
        );
    }

    #[test]
    fn a_degraded_notice_is_folded_into_the_down_it_counts() {
        let mut g = grouper(2);
        push_all(
            &mut g,
            &[
                (1, Kind::ServerDown, Some("s1"), false),
                (2, Kind::BackendDegraded, None, false),
            ],
            0,
        );
        let ops = due_at(&mut g, 2000);
        assert_eq!(settled(&ops), [(2, RowState::Superseded)]);
        let m = messages(&ops);
        assert_eq!(m[0].1["incidents"].as_array().unwrap().len(), 1);
        // Its resolve is not sent either; the DOWN's is.
        let mut back = push_all(
            &mut g,
            &[
                (1, Kind::ServerDown, Some("s1"), true),
                (2, Kind::BackendDegraded, None, true),
            ],
            3000,
        );
        back.extend(due_at(&mut g, 9000));
        assert_eq!(
            messages(&back)[0].1["incidents"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn a_change_undone_within_the_wait_sends_nothing() {
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_all(
            &mut g,
            &[(4, Kind::ServerDown, Some("s4"), false)],
            0,
        ));
        ops.extend(push_all(
            &mut g,
            &[(4, Kind::ServerDown, Some("s4"), true)],
            500,
        ));
        ops.extend(due_at(&mut g, 2000));
        assert!(messages(&ops).is_empty());
        assert_eq!(
            settled(&ops),
            [(1, RowState::Cancelled), (2, RowState::Cancelled)]
        );
    }

    #[test]
    fn a_restart_inside_the_wait_sends_the_group_once() {
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_all(
            &mut g,
            &[(1, Kind::ServerDown, Some("s1"), false)],
            0,
        ));
        let OutboxOp::Insert(row) = &ops[0] else {
            panic!("{ops:?}")
        };
        // A new process reads the waiting row back.
        let mut after = grouper(2);
        after.restore(Restored {
            now_ms: 1000,
            legacy_max: 0,
            next_row: 2,
            waiting: vec![WaitingRow {
                id: row.id,
                item: serde_json::from_str(row.item.as_deref().unwrap()).unwrap(),
                due_ms: row.due_ms,
            }],
            sent: vec![],
            withheld: vec![],
        });
        assert_eq!(after.alloc(), 2, "new rows follow the restored ones");
        let mut due = Vec::new();
        due.extend(due_at(&mut after, 5000));
        assert_eq!(messages(&due).len(), 1);
        // Its resolve pairs with the firing sent after the restart.
        let mut later = Vec::new();
        later.extend(push_all(
            &mut after,
            &[(1, Kind::ServerDown, Some("s1"), true)],
            6000,
        ));
        later.extend(due_at(&mut after, 9000));
        assert_eq!(messages(&later)[0].1["status"], "resolved");
    }

    #[test]
    fn a_resolve_whose_firing_never_went_to_the_channel_is_not_sent() {
        let mut g = grouper(0);
        let mut ops = Vec::new();
        ops.extend(push_all(
            &mut g,
            &[(9, Kind::ServerDown, Some("s9"), true)],
            0,
        ));
        assert!(messages(&ops).is_empty());
        assert_eq!(settled(&ops), [(1, RowState::Cancelled)]);
    }

    #[test]
    fn without_a_wait_what_arrives_together_is_one_message() {
        let mut g = grouper(0);
        let mut ops = Vec::new();
        ops.extend(push_all(
            &mut g,
            &[
                (1, Kind::ServerDown, Some("s1"), false),
                (2, Kind::BackendDegraded, None, false),
            ],
            0,
        ));
        assert_eq!(messages(&ops).len(), 1);
        assert_eq!(g.next_deadline(), None);
    }
}
