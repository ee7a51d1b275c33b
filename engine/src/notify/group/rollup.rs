//! Host rollups in the outbox: while a host's own incident (host DOWN, or
//! silent) is being notified, its backends' and servers' firings are
//! superseded by it, those waiting in their groups included, and owed
//! again when it resolves if they are still open.

use super::{Grouper, Item, OutboxOp, Release, RowState};
use crate::incidents::Kind;

/// Whether an incident speaks for its whole host.
pub(super) fn host_level(kind: Kind) -> bool {
    matches!(kind, Kind::HostDown | Kind::Silence)
}

impl Grouper {
    /// Applies the host rollups to an item before it joins its group: true
    /// when it is settled here (superseded by its host's notice).
    pub(super) fn rolled_up(&mut self, it: &Item, now_ms: i64, ops: &mut Vec<OutboxOp>) -> bool {
        let host = (it.channel.clone(), it.incident.host.clone());
        let i = &it.incident;
        if host_level(i.kind) {
            match it.resolved {
                None => {
                    self.rollups.insert(host, i.id);
                    self.supersede_waiting(it, ops);
                }
                Some(_) => {
                    self.rollups.remove(&host);
                }
            }
            return false;
        }
        let Some(by) = self.rollups.get(&host).copied() else {
            return false;
        };
        if it.resolved.is_some() {
            // Its firing was superseded (or sent before): pairing decides.
            return false;
        }
        let why = format!("superseded by incident #{by} (its host {})", i.host);
        self.withhold_unsent(it, &why, by);
        ops.push(self.settled(it, RowState::Superseded, why, now_ms));
        true
    }

    /// Records a superseded firing as owed when the host resolves, unless the
    /// channel already had it (a reminder, or one sent before): that one is
    /// not owed again.
    fn withhold_unsent(&mut self, it: &Item, why: &str, by: i64) {
        let sent = self
            .sent
            .contains_key(&(it.channel.clone(), it.incident.id));
        if !sent && crate::notify::text::reminder_ms(&it.incident).is_none() {
            self.withhold(it, why.to_owned(), Release::Resolve(by));
        }
    }

    /// A host-level incident resolved: its rollup ends on every channel,
    /// whether or not its resolve is sent there.
    pub fn host_resolved(&mut self, id: i64) {
        self.rollups.retain(|_, by| *by != id);
    }

    /// The host's firings still in their group wait on this channel: said by
    /// the host's notice instead.
    fn supersede_waiting(&mut self, host_item: &Item, ops: &mut Vec<OutboxOp>) {
        let (channel, host, by) = (
            host_item.channel.as_str(),
            host_item.incident.host.as_str(),
            host_item.incident.id,
        );
        let why = format!("superseded by incident #{by} (its host {host})");
        let mut taken = Vec::new();
        for ((ch, _), group) in self.groups.iter_mut() {
            if ch != channel {
                continue;
            }
            group.items.retain(|(row, p)| {
                let theirs =
                    p.incident.host == host && !host_level(p.incident.kind) && p.resolved.is_none();
                if theirs {
                    taken.push((*row, p.clone()));
                }
                !theirs
            });
        }
        self.groups.retain(|_, g| !g.items.is_empty());
        for (row, p) in taken {
            self.withhold_unsent(&p, &why, by);
            ops.push(OutboxOp::Settle {
                id: row,
                state: RowState::Superseded,
                note: why.clone(),
                message: None,
            });
        }
    }
}
