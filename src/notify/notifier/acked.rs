//! What acknowledgements owe: PagerDuty's `acknowledge`, once per ack.

use super::{NewRow, Notifier, OpenAck, OutboxOp, RowState, Status};
use crate::incidents::Incident;

impl Notifier {
    /// What new acknowledgements owe: PagerDuty's `acknowledge` on each
    /// PagerDuty channel that was sent the incident's trigger, with the acks
    /// this settles, for one transaction. An ack whose trigger still waits in
    /// its group waits too (PagerDuty drops an acknowledge of an unknown key).
    /// None when no ack is due.
    pub fn acknowledgements<'a>(
        &mut self,
        open: impl Iterator<Item = &'a Incident>,
        now_ms: i64,
    ) -> Option<crate::store::writer::WriteOp> {
        use hapwatch_engine::notify::group::FiringState;
        let fresh: Vec<OpenAck> = self
            .acks
            .values()
            .filter(|a| !a.notified && !self.acks_queued.contains(&(a.incident_id, a.ack.at_ms)))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return None;
        }
        let open: std::collections::HashMap<i64, &Incident> = open.map(|i| (i.id, i)).collect();
        let (mut ops, mut settled) = (Vec::new(), Vec::new());
        for a in fresh {
            let paged: Vec<(crate::notify::Route, FiringState)> = match open.get(&a.incident_id) {
                Some(i) => self
                    .channels
                    .iter()
                    .filter(|c| c.kind == crate::notify::ChannelType::Pagerduty && c.wants(i))
                    .map(|c| (c.clone(), self.grouper.firing_state(&c.name, i.id)))
                    .collect(),
                // Another group's incident (several share the store): its
                // decider settles the ack, not this one.
                None => continue,
            };
            if paged.iter().any(|(_, s)| *s == FiringState::Waiting) {
                continue;
            }
            settled.push((a.incident_id, a.ack.at_ms));
            tracing::info!(
                incident = a.incident_id,
                by = a.ack.by,
                reason = a.ack.reason,
                "acknowledged"
            );
            let Some(incident) = open.get(&a.incident_id) else {
                continue;
            };
            let mut incident = (*incident).clone();
            incident.ack = Some(Box::new(a.ack.clone()));
            for (ch, _) in paged.iter().filter(|(_, s)| *s == FiringState::Sent) {
                ops.push(self.acknowledge_row(ch, &incident, now_ms));
            }
        }
        if settled.is_empty() {
            return None;
        }
        self.acks_queued.extend(settled.iter().copied());
        Some(crate::store::writer::WriteOp::Acked {
            notifications: ops,
            acks: settled,
            at_ms: now_ms,
        })
    }

    fn acknowledge_row(
        &mut self,
        ch: &crate::notify::Route,
        incident: &Incident,
        now_ms: i64,
    ) -> OutboxOp {
        let item = crate::notify::Item {
            channel: ch.name.clone(),
            incident: incident.clone(),
            resolved: None,
        };
        OutboxOp::Insert(NewRow {
            id: self.grouper.alloc(),
            incident_id: incident.id,
            channel: ch.name.clone(),
            group_key: item.group_key(),
            status: Status::Acknowledged,
            state: RowState::Queued,
            item: serde_json::to_string(&item).ok(),
            payload: hapwatch_engine::notify::payload::acknowledge(ch, incident).to_string(),
            note: None,
            created_ms: now_ms,
            due_ms: now_ms,
        })
    }
}
