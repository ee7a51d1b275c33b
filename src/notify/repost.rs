//! Alertmanager forgets an alert that is not sent again within its
//! `resolve_timeout` (5 minutes by default), as Prometheus re-sends an alert
//! while its rule fires. So every `repost` the alerts of incidents still open
//! that an Alertmanager channel was sent are posted to it again, as they were
//! sent: the same labels on every node of an HA pair, which Alertmanager's
//! cluster keeps as one alert. Best effort, not through the outbox: the
//! firing and the resolve are the notifications owed; this keeps them alive.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{ChannelConfig, ChannelType};
use crate::counters::Stats;

/// How often the task looks whether a channel is due, at most.
const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    db: PathBuf,
    mut channels: watch::Receiver<Vec<ChannelConfig>>,
    stats: Arc<Stats>,
) {
    let client = match crate::delivery::http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: Alertmanager alerts are not posted again");
            return;
        }
    };
    // When each channel was last posted to, and whether its last post failed
    // (a failure is logged once until one succeeds).
    let mut last: HashMap<String, (Instant, bool)> = HashMap::new();
    loop {
        let due: Vec<ChannelConfig> = channels
            .borrow_and_update()
            .iter()
            .filter(|c| c.kind == ChannelType::Alertmanager)
            .filter(|c| {
                let every = c.http().and_then(|h| h.repost);
                every.is_some_and(|every| {
                    last.get(&c.name)
                        .is_none_or(|(at, _)| at.elapsed() >= every)
                })
            })
            .cloned()
            .collect();
        for ch in due {
            let failed_before = last.get(&ch.name).is_some_and(|(_, failed)| *failed);
            let Some(target) = ch.http() else { continue };
            let (db, name) = (db.clone(), ch.name.clone());
            let alerts = tokio::task::spawn_blocking(move || {
                let conn = crate::store::open_read(&db).map_err(|e| e.to_string())?;
                crate::store::outbox::open_alerts(&conn, &name).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let outcome = match alerts {
                Ok(alerts) if alerts.is_empty() => Ok(()),
                Ok(alerts) => {
                    let body = serde_json::Value::Array(alerts).to_string();
                    let sent = tokio::time::timeout(
                        ch.timeout,
                        crate::delivery::http::post(&client, target, &body),
                    )
                    .await;
                    match sent {
                        Ok(Ok(())) => {
                            stats.alertmanager_reposts.fetch_add(1, Relaxed);
                            Ok(())
                        }
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {:?}", ch.timeout)),
                    }
                }
                Err(e) => Err(format!("the store cannot be read: {e}")),
            };
            match &outcome {
                Err(why) => {
                    stats.alertmanager_repost_failures.fetch_add(1, Relaxed);
                    if !failed_before {
                        tracing::warn!(channel = ch.name, error = %why, "open alerts not posted again to Alertmanager; retried each repost");
                    }
                }
                Ok(()) if failed_before => {
                    tracing::info!(
                        channel = ch.name,
                        "open alerts posted to Alertmanager again"
                    );
                }
                Ok(()) => {}
            }
            last.insert(ch.name.clone(), (Instant::now(), outcome.is_err()));
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            changed = channels.changed() => if changed.is_err() { return },
        }
    }
}
