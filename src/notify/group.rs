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
    mail_domain, render, sort_items, ChannelConfig, ChannelType, Item, Message, NewRow, OutboxOp,
    RowState, Status,
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
    pub next_row: i64,
    pub waiting: Vec<WaitingRow>,
    pub sent: Vec<SentFiring>,
    pub withheld: Vec<Withheld>,
}

/// A firing a channel was not sent, and why, read back at start.
#[derive(Debug, Clone)]
pub struct Withheld {
    pub channel: String,
    pub incident_id: i64,
    pub why: String,
}

/// A firing a channel was sent (or is being sent), read back at start.
#[derive(Debug, Clone)]
pub struct SentFiring {
    pub channel: String,
    pub incident_id: i64,
    /// The Message-ID of the mail that carried it ("" for other channels).
    pub message_id: String,
}

type Pair = (String, i64);

pub struct Grouper {
    wait_ms: i64,
    next_row: i64,
    zone: Zone,
    /// (channel, group key) → the group in its wait.
    groups: BTreeMap<(String, String), Group>,
    /// (channel, incident) whose firing went out → its Message-ID.
    sent: HashMap<Pair, String>,
    /// (channel, incident) whose firing was not sent → why.
    withheld: HashMap<Pair, String>,
}

impl Grouper {
    /// `next_row` follows the largest outbox id stored.
    pub fn new(wait: std::time::Duration, zone: Zone, next_row: i64) -> Grouper {
        Grouper {
            wait_ms: wait.as_millis() as i64,
            next_row,
            zone,
            groups: BTreeMap::new(),
            sent: HashMap::new(),
            withheld: HashMap::new(),
        }
    }

    /// Carries on after a restart: groups still waiting, firings already sent.
    pub fn restore(&mut self, r: Restored) {
        self.next_row = self.next_row.max(r.next_row);
        for w in r.waiting {
            self.next_row = self.next_row.max(w.id + 1);
            let key = (w.item.channel.clone(), w.item.group_key());
            let group = self.groups.entry(key).or_insert(Group {
                deadline_ms: w.due_ms,
                items: Vec::new(),
            });
            group.deadline_ms = group.deadline_ms.min(w.due_ms);
            group.items.push((w.id, w.item));
        }
        for w in r.withheld {
            self.withheld.insert((w.channel, w.incident_id), w.why);
        }
        for s in r.sent {
            self.sent.insert((s.channel, s.incident_id), s.message_id);
        }
    }

    /// A reloaded config's wait and zone (groups already waiting keep their deadline).
    pub fn reconfigure(&mut self, wait: std::time::Duration, zone: Zone) {
        self.wait_ms = wait.as_millis() as i64;
        self.zone = zone;
    }

    /// An id for a row of the outbox.
    pub fn alloc(&mut self) -> i64 {
        let id = self.next_row;
        self.next_row += 1;
        id
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
            self.withheld.insert(
                (it.channel.clone(), it.incident.id),
                format!("its firing was silenced ({why})"),
            );
        }
        ops.push(self.settled(&it, RowState::Silenced, why, now_ms));
    }

    /// Items join their groups as waiting rows; with no wait, what arrives
    /// together is one group, composed at once.
    pub fn push(
        &mut self,
        channels: &[ChannelConfig],
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
        let key = (it.channel.clone(), it.group_key());
        let pair = (it.channel.clone(), it.incident.id);
        if it.resolved.is_some() {
            let undone = self.groups.get_mut(&key).and_then(|g| {
                let pos = g
                    .items
                    .iter()
                    .position(|(_, p)| p.incident.id == it.incident.id && p.resolved.is_none())?;
                Some(g.items.remove(pos).0)
            });
            if let Some(row) = undone {
                ops.push(OutboxOp::Settle {
                    id: row,
                    state: RowState::Cancelled,
                    note: "resolved within the group wait".into(),
                    message: None,
                });
                let op = self.settled(
                    &it,
                    RowState::Cancelled,
                    "undone within the group wait: neither is sent".into(),
                    now_ms,
                );
                ops.push(op);
                self.withheld.remove(&pair);
                return;
            }
            if !self.sent.contains_key(&pair) {
                let why = self
                    .withheld
                    .remove(&pair)
                    .unwrap_or_else(|| "its firing was not sent to this channel".into());
                ops.push(self.settled(&it, RowState::Cancelled, why, now_ms));
                return;
            }
        } else if let Some(why) = self.superseded_by_group(&key, &it) {
            self.withheld.insert(pair, format!("its firing was {why}"));
            ops.push(self.settled(&it, RowState::Superseded, why, now_ms));
            return;
        } else {
            self.supersede_in_group(&key, &it, ops);
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

    /// Why a new firing adds nothing to what its group will say, if so.
    fn superseded_by_group(&self, key: &(String, String), it: &Item) -> Option<String> {
        let group = self.groups.get(key)?;
        let firing = |kind: Kind| {
            group
                .items
                .iter()
                .find(|(_, p)| p.incident.kind == kind && p.resolved.is_none())
        };
        match it.incident.kind {
            Kind::ServerDown | Kind::BackendDegraded => {
                if let Some((_, b)) = firing(Kind::BackendDown) {
                    return Some(format!(
                        "superseded by incident #{} (no server available)",
                        b.incident.id
                    ));
                }
                if it.incident.kind == Kind::BackendDegraded {
                    if let Some((_, d)) = firing(Kind::ServerDown) {
                        return Some(folded(d));
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// A new firing makes earlier ones of its group redundant.
    fn supersede_in_group(&mut self, key: &(String, String), it: &Item, ops: &mut Vec<OutboxOp>) {
        let absorbs: &[Kind] = match it.incident.kind {
            Kind::BackendDown => &[Kind::ServerDown, Kind::BackendDegraded],
            Kind::ServerDown => &[Kind::BackendDegraded],
            _ => return,
        };
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        let why = match it.incident.kind {
            Kind::BackendDown => format!(
                "superseded by incident #{} (no server available)",
                it.incident.id
            ),
            _ => folded(it),
        };
        let (gone, kept): (Vec<_>, Vec<_>) = group
            .items
            .drain(..)
            .partition(|(_, p)| p.resolved.is_none() && absorbs.contains(&p.incident.kind));
        group.items = kept;
        for (row, p) in gone {
            self.withheld.insert(
                (p.channel.clone(), p.incident.id),
                format!("its firing was {why}"),
            );
            ops.push(OutboxOp::Settle {
                id: row,
                state: RowState::Superseded,
                note: why.clone(),
                message: None,
            });
        }
    }

    /// Groups whose wait is over become messages (all of them with `i64::MAX`).
    pub fn due(&mut self, channels: &[ChannelConfig], now_ms: i64, ops: &mut Vec<OutboxOp>) {
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
            let mut rows = group.items;
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
    fn compose(
        &mut self,
        ch: &ChannelConfig,
        rows: &[(i64, Item)],
        at_ms: i64,
        ops: &mut Vec<OutboxOp>,
    ) {
        let carrier = rows[0].0;
        let mut items: Vec<Item> = rows.iter().map(|(_, it)| it.clone()).collect();
        sort_items(&mut items);
        let domain = mail_domain(ch);
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
                key: format!("k{id}"),
                kind,
                severity,
                host: "lb1".into(),
                backend: Some("be_api".into()),
                server: server.map(Into::into),
                opened_ms: 0,
                summary: format!("incident {id}"),
                detail: Default::default(),
            },
            resolved: resolved.then(|| Resolution {
                ts_ms: 5000,
                note: "UP again".into(),
            }),
        }
    }

    fn channels() -> Vec<ChannelConfig> {
        vec![toml::from_str("name = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n").unwrap()]
    }

    /// One item pushed alone; its operations.
    fn push_one(g: &mut Grouper, it: Item, at_ms: i64) -> Vec<OutboxOp> {
        let mut ops = Vec::new();
        g.push(&channels(), vec![it], at_ms, &mut ops);
        ops
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

    #[test]
    fn changes_within_the_wait_are_rows_at_once_and_one_message_at_the_deadline() {
        let ch = channels();
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_one(
            &mut g,
            item(1, Kind::ServerDown, Some("s1"), false),
            0,
        ));
        ops.extend(push_one(
            &mut g,
            item(2, Kind::ServerDown, Some("s2"), false),
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
        g.due(&ch, 1999, &mut due);
        assert!(due.is_empty());
        g.due(&ch, 2000, &mut due);
        let m = messages(&due);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, 1, "the first row carries the message");
        assert_eq!(m[0].1["incidents"].as_array().unwrap().len(), 2);
        assert_eq!(settled(&due), [(2, RowState::Grouped)]);
    }

    #[test]
    fn backend_down_supersedes_and_their_resolves_are_not_sent() {
        let ch = channels();
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_one(
            &mut g,
            item(1, Kind::ServerDown, Some("s1"), false),
            0,
        ));
        ops.extend(push_one(
            &mut g,
            item(2, Kind::BackendDegraded, None, false),
            10,
        ));
        ops.extend(push_one(
            &mut g,
            item(3, Kind::BackendDown, None, false),
            100,
        ));
        ops.extend(push_one(
            &mut g,
            item(4, Kind::ServerDown, Some("s2"), false),
            200,
        ));
        assert_eq!(
            settled(&ops),
            [
                (2, RowState::Superseded),
                (1, RowState::Superseded),
                (4, RowState::Superseded)
            ]
        );
        let mut due = Vec::new();
        g.due(&ch, 2000, &mut due);
        let m = messages(&due);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1["incident"]["id"], 3);
        // The superseded incidents resolve silently; the critical one's resolve goes.
        let mut later = Vec::new();
        g.push(
            &ch,
            vec![
                item(1, Kind::ServerDown, Some("s1"), true),
                item(2, Kind::BackendDegraded, None, true),
                item(3, Kind::BackendDown, None, true),
            ],
            3000,
            &mut later,
        );
        let states = settled(&later);
        assert_eq!(states, [(5, RowState::Cancelled), (6, RowState::Cancelled)]);
        g.due(&ch, 9000, &mut later);
        let m = messages(&later);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1["status"], "resolved");
        assert_eq!(m[0].1["incident"]["id"], 3);
    }

    #[test]
    fn a_degraded_notice_is_folded_into_the_down_it_counts() {
        let ch = channels();
        let mut g = grouper(2);
        let mut ops = Vec::new();
        g.push(
            &ch,
            vec![
                item(1, Kind::ServerDown, Some("s1"), false),
                item(2, Kind::BackendDegraded, None, false),
            ],
            0,
            &mut ops,
        );
        assert_eq!(settled(&ops), [(2, RowState::Superseded)]);
        g.due(&ch, 2000, &mut ops);
        let m = messages(&ops);
        assert_eq!(m[0].1["incidents"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_change_undone_within_the_wait_sends_nothing() {
        let ch = channels();
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_one(
            &mut g,
            item(4, Kind::ServerDown, Some("s4"), false),
            0,
        ));
        ops.extend(push_one(
            &mut g,
            item(4, Kind::ServerDown, Some("s4"), true),
            500,
        ));
        g.due(&ch, 2000, &mut ops);
        assert!(messages(&ops).is_empty());
        assert_eq!(
            settled(&ops),
            [(1, RowState::Cancelled), (2, RowState::Cancelled)]
        );
    }

    #[test]
    fn a_restart_inside_the_wait_sends_the_group_once() {
        let ch = channels();
        let mut g = grouper(2);
        let mut ops = Vec::new();
        ops.extend(push_one(
            &mut g,
            item(1, Kind::ServerDown, Some("s1"), false),
            0,
        ));
        let OutboxOp::Insert(row) = &ops[0] else {
            panic!("{ops:?}")
        };
        // A new process reads the waiting row back.
        let mut after = grouper(2);
        after.restore(Restored {
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
        after.due(&ch, 5000, &mut due);
        assert_eq!(messages(&due).len(), 1);
        // Its resolve pairs with the firing sent after the restart.
        let mut later = Vec::new();
        later.extend(push_one(
            &mut after,
            item(1, Kind::ServerDown, Some("s1"), true),
            6000,
        ));
        after.due(&ch, 9000, &mut later);
        assert_eq!(messages(&later)[0].1["status"], "resolved");
    }

    #[test]
    fn a_resolve_whose_firing_never_went_to_the_channel_is_not_sent() {
        let mut g = grouper(0);
        let mut ops = Vec::new();
        ops.extend(push_one(
            &mut g,
            item(9, Kind::ServerDown, Some("s9"), true),
            0,
        ));
        assert!(messages(&ops).is_empty());
        assert_eq!(settled(&ops), [(1, RowState::Cancelled)]);
    }

    #[test]
    fn without_a_wait_what_arrives_together_is_one_message() {
        let ch = channels();
        let mut g = grouper(0);
        let mut ops = Vec::new();
        g.push(
            &ch,
            vec![
                item(1, Kind::ServerDown, Some("s1"), false),
                item(2, Kind::BackendDegraded, None, false),
            ],
            0,
            &mut ops,
        );
        assert_eq!(messages(&ops).len(), 1);
        assert_eq!(g.next_deadline(), None);
    }
}
