//! Reconciliation: HAProxy's stats socket read beside its logs, and what
//! the logs missed put right.

use hapwatch_parsers::{Event, ServerState};

use super::decide::{add_evidence, apply};
use super::Processor;
use crate::incidents::fleet::StateSeen;
use crate::store::writer::EventRow;

impl Processor {
    /// Corrects the fleet state from HAProxy's stats readings.
    pub fn with_reconcile(
        mut self,
        latest: crate::reconcile::Latest,
        health: std::sync::mpsc::Receiver<(String, Option<String>)>,
    ) -> Self {
        self.reconcile = Some(latest);
        self.stats_health = Some(health);
        self
    }

    /// The newest reading of each HAProxy, against what its logs said.
    pub(super) fn reconcile(&mut self, now_ms: i64) {
        let (Some(latest), Some(engine)) = (&self.reconcile, &mut self.engine) else {
            return;
        };
        if let Some(health) = &self.stats_health {
            for (host, failing) in health.try_iter() {
                let changes = engine.on_stats(&host, failing.as_deref(), now_ms);
                apply(
                    &self.decisions,
                    &mut self.notifier,
                    changes,
                    engine,
                    self.wall.now_ms(),
                );
            }
        }
        let newest = std::mem::take(&mut *latest.lock().unwrap_or_else(|p| p.into_inner()));
        for (host, rows) in &newest {
            self.reconcile_host(host, rows, now_ms);
        }
    }

    fn reconcile_host(&mut self, host: &str, rows: &[crate::reconcile::StatRow], now_ms: i64) {
        // The node deciding reconciles; another keeps its engine as the logs say.
        let (Some(engine), true) = (&mut self.engine, self.decisions.deciding()) else {
            return;
        };
        for row in rows {
            let (be, srv) = (&row.backend, &row.server);
            let state = row.state.as_str();
            let known = engine.known_state(host, be, srv);
            match known {
                StateSeen::Is(k) if k == row.state => continue,
                StateSeen::Never if row.state == ServerState::Up => {
                    engine.note_state(host, be, srv, row.state, now_ms);
                    continue;
                }
                _ => {}
            }
            // As stored in `old_state`: what the logs last said, if anything.
            let known = (known != StateSeen::Never).then(|| known.to_string());
            let said = known.as_deref().unwrap_or("nothing");
            let message = format!(
                "reconciliation: HAProxy's stats say {be}/{srv} is {state} (the logs said {said})"
            );
            tracing::info!(host = %crate::escape::escape(host), backend = ?be, server = ?srv, state, logs_said = said, "reconciled from HAProxy's stats");
            let change = crate::reconcile::state_change(row);
            let mut changes = engine.on_event(host, &Event::StateChange(change), now_ms, &message);
            add_evidence(&self.rates, &mut changes);
            apply(
                &self.decisions,
                &mut self.notifier,
                changes,
                engine,
                self.wall.now_ms(),
            );
            let json = serde_json::json!({
                "kind": "other", "template": "reconciliation", "message": message,
                "proxy": be, "server": srv, "new_state": state, "old_state": known,
            });
            let mut row = EventRow::bare(
                now_ms,
                host.to_owned(),
                "other",
                "reconciliation".into(),
                json.to_string(),
                message,
            );
            row.proxy = Some(be.clone());
            row.server = Some(srv.clone());
            row.new_state = Some(state.into());
            row.old_state = known.clone();
            row.reason = Some("reconciled from HAProxy's stats".into());
            self.events.push(row);
        }
    }
}
