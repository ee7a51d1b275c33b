//! Grouping: the changes of one backend within `group_wait` become one
//! notification per channel. The first change of a group starts its clock, so
//! no change waits longer than `group_wait`. Within a group, "backend has no
//! server available" supersedes its servers' DOWN notices (and their later
//! resolves), and a change undone within the wait (DOWN then UP) is not sent.

use std::collections::{HashMap, HashSet};

use super::{render, ChannelConfig, Item, Notification};
use crate::incidents::Kind;

struct Pending {
    deadline_ms: i64,
    items: Vec<Item>,
}

#[derive(Default)]
pub struct Grouper {
    wait_ms: i64,
    /// (channel, group key) → items waiting.
    pending: HashMap<(usize, String), Pending>,
    /// (channel, incident) whose firing was superseded: its resolve is not sent either.
    suppressed: HashSet<(usize, i64)>,
}

impl Grouper {
    pub fn new(wait: std::time::Duration) -> Grouper {
        Grouper {
            wait_ms: wait.as_millis() as i64,
            ..Default::default()
        }
    }

    /// The system clock was stepped: groups still wait `group_wait`, no more.
    pub fn shift_clock(&mut self, delta_ms: i64) {
        for p in self.pending.values_mut() {
            p.deadline_ms += delta_ms;
        }
    }

    /// Queues items; with no wait, returns their notifications at once.
    pub fn push(
        &mut self,
        channels: &[ChannelConfig],
        items: Vec<Item>,
        now_ms: i64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for it in items {
            if self.suppressed.contains(&(it.channel, it.incident.id)) {
                if it.resolved.is_some() {
                    self.suppressed.remove(&(it.channel, it.incident.id));
                }
                continue;
            }
            if self.wait_ms == 0 {
                out.extend(render(
                    &channels[it.channel],
                    std::slice::from_ref(&it),
                    now_ms,
                ));
                continue;
            }
            let key = (it.channel, it.group_key());
            let group = self.pending.entry(key).or_insert_with(|| Pending {
                deadline_ms: now_ms + self.wait_ms,
                items: Vec::new(),
            });
            // Undone within the wait: neither is sent.
            if it.resolved.is_some() {
                if let Some(pos) = group
                    .items
                    .iter()
                    .position(|p| p.incident.id == it.incident.id && p.resolved.is_none())
                {
                    group.items.remove(pos);
                    continue;
                }
            }
            let backend_down =
                |i: &Item| i.incident.kind == Kind::BackendDown && i.resolved.is_none();
            let server_down =
                |i: &Item| i.incident.kind == Kind::ServerDown && i.resolved.is_none();
            if backend_down(&it) {
                let (gone, kept): (Vec<Item>, Vec<Item>) =
                    group.items.drain(..).partition(server_down);
                group.items = kept;
                self.suppressed
                    .extend(gone.iter().map(|g| (g.channel, g.incident.id)));
            } else if server_down(&it) && group.items.iter().any(backend_down) {
                self.suppressed.insert((it.channel, it.incident.id));
                continue;
            }
            group.items.push(it);
        }
        out
    }

    /// Neither this incident's firing nor its resolve goes to this channel.
    pub fn suppress(&mut self, channel: usize, incident: i64) {
        self.suppressed.insert((channel, incident));
    }

    /// When the next group is due.
    pub fn next_deadline(&self) -> Option<i64> {
        self.pending.values().map(|p| p.deadline_ms).min()
    }

    /// The notifications of groups whose wait is over (all of them with `i64::MAX`).
    pub fn due(&mut self, channels: &[ChannelConfig], now_ms: i64) -> Vec<Notification> {
        let keys: Vec<(usize, String)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(p) = self.pending.remove(&k) {
                if let Some(ch) = channels.get(k.0) {
                    out.extend(render(ch, &p.items, now_ms.min(p.deadline_ms)));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Incident, Severity};

    fn item(id: i64, kind: Kind, server: Option<&str>, resolved: bool) -> Item {
        Item {
            channel: 0,
            incident: Incident {
                id,
                key: format!("k{id}"),
                kind,
                severity: Severity::Warning,
                host: "lb1".into(),
                backend: Some("be_api".into()),
                server: server.map(Into::into),
                opened_ms: 0,
                summary: format!("incident {id}"),
                detail: Default::default(),
            },
            resolved: resolved.then(|| (5, "UP again".to_owned())),
        }
    }

    fn channels() -> Vec<ChannelConfig> {
        vec![toml::from_str("name = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n").unwrap()]
    }

    #[test]
    fn changes_within_the_wait_become_one_notification() {
        let ch = channels();
        let mut g = Grouper::new(std::time::Duration::from_secs(2));
        assert!(g
            .push(&ch, vec![item(1, Kind::ServerDown, Some("s1"), false)], 0)
            .is_empty());
        assert!(g
            .push(
                &ch,
                vec![item(2, Kind::ServerDown, Some("s2"), false)],
                1500
            )
            .is_empty());
        assert_eq!(
            g.next_deadline(),
            Some(2000),
            "the first change starts the clock"
        );
        assert!(g.due(&ch, 1999).is_empty());
        let n = g.due(&ch, 2000);
        assert_eq!(n.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&n[0].payload).unwrap();
        assert_eq!(body["title"], "[hapwatch] DOWN 2 of be_api on lb1: s1, s2");
        assert_eq!(body["incidents"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn backend_down_supersedes_its_servers_and_undone_changes_vanish() {
        let ch = channels();
        let mut g = Grouper::new(std::time::Duration::from_secs(2));
        g.push(&ch, vec![item(1, Kind::ServerDown, Some("s1"), false)], 0);
        g.push(&ch, vec![item(2, Kind::BackendDown, None, false)], 100);
        g.push(&ch, vec![item(3, Kind::ServerDown, Some("s2"), false)], 200);
        let n = g.due(&ch, 2000);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].incident_id, 2);
        // The superseded servers' resolves are not sent either.
        assert!(g
            .push(&ch, vec![item(1, Kind::ServerDown, Some("s1"), true)], 3000)
            .is_empty());
        assert!(g.due(&ch, 9000).is_empty());
        // DOWN then UP within the wait: nothing.
        g.push(
            &ch,
            vec![item(4, Kind::ServerDown, Some("s4"), false)],
            10_000,
        );
        g.push(
            &ch,
            vec![item(4, Kind::ServerDown, Some("s4"), true)],
            10_500,
        );
        assert!(g.due(&ch, 12_000).is_empty());
    }

    #[test]
    fn without_a_wait_nothing_is_held() {
        let ch = channels();
        let mut g = Grouper::new(std::time::Duration::ZERO);
        assert_eq!(
            g.push(&ch, vec![item(1, Kind::ServerDown, Some("s1"), false)], 0)
                .len(),
            1
        );
        assert_eq!(g.next_deadline(), None);
    }
}
