//! Alertmanager forgets an alert that is not sent again, as Prometheus
//! re-sends an alert while its rule fires. So every `repost` the alerts of
//! incidents still open that an Alertmanager channel was sent are posted to
//! it again, as they were sent, with an `endsAt` a few reposts ahead (as
//! Prometheus sets it): the same labels on every node of an HA pair, which
//! Alertmanager's cluster keeps as one alert. Best effort, not through the
//! outbox: the firing and the resolve are the notifications owed; this keeps
//! the firing alive while the node is healthy, and no longer.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{ChannelConfig, ChannelType, HttpTarget};
use crate::counters::Stats;
use crate::timezone::WallClock;
use crate::view::Observed;

/// How often the task looks whether a channel is due.
const TICK: Duration = Duration::from_millis(100);
/// A re-posted alert ends this many reposts ahead unless posted again.
const ENDS_AFTER: u32 = 4;

/// What the task reads and counts.
pub struct Wiring {
    pub location: crate::store::Location,
    pub stats: Arc<Stats>,
    pub observed: Arc<Observed>,
    pub wall: WallClock,
}

pub async fn run(w: Wiring, mut channels: watch::Receiver<Vec<ChannelConfig>>) {
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
        // An unhealthy node (a stuck pipeline, a store that refuses writes)
        // may hold resolves it has not stored: it says nothing rather than
        // keep alive what may be over. The other node speaks for the pair.
        let healthy = crate::heartbeat::check(&w.stats, &w.observed, w.wall.now_ms()).is_ok();
        for ch in due.into_iter().filter(|_| healthy) {
            let failed_before = last.get(&ch.name).is_some_and(|(_, failed)| *failed);
            let outcome = repost(&w, &client, &ch).await;
            match &outcome {
                Err(why) => {
                    w.stats.alertmanager_repost_failures.fetch_add(1, Relaxed);
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

/// One channel's round: its open alerts, then the end of any that resolved
/// while they were in flight (or the re-post would bring them back).
async fn repost(w: &Wiring, client: &reqwest::Client, ch: &ChannelConfig) -> Result<(), String> {
    let (Some(target), Some(every)) = (ch.http(), ch.http().and_then(|h| h.repost)) else {
        return Ok(());
    };
    let (location, name) = (w.location.clone(), ch.name.clone());
    let alerts = read(&w.location, move |conn| {
        crate::store::outbox::open_alerts(conn, &name)
    })
    .await?;
    if alerts.is_empty() {
        return Ok(());
    }
    let ends = crate::timezone::rfc3339(w.wall.now_ms() + (every * ENDS_AFTER).as_millis() as i64);
    let ids: Vec<i64> = alerts.iter().map(|(id, _)| *id).collect();
    let body: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(_, a)| {
            let mut a = a.clone();
            a["endsAt"] = ends.clone().into();
            a
        })
        .collect();
    post(client, target, ch.timeout, &body).await?;
    w.stats.alertmanager_reposts.fetch_add(1, Relaxed);
    let resolved = read(&location, move |conn| {
        crate::store::outbox::resolved_of(conn, &ids)
    })
    .await?;
    if resolved.is_empty() {
        return Ok(());
    }
    let ended: Vec<serde_json::Value> = alerts
        .into_iter()
        .filter_map(|(id, mut a)| {
            let (_, at) = resolved.iter().find(|(r, _)| *r == id)?;
            a["endsAt"] = crate::timezone::rfc3339(*at).into();
            Some(a)
        })
        .collect();
    post(client, target, ch.timeout, &ended).await
}

async fn read<T: Send + 'static>(
    location: &crate::store::Location,
    query: impl FnOnce(&crate::store::Db) -> crate::store::DbResult<T> + Send + 'static,
) -> Result<T, String> {
    let location = location.clone();
    tokio::task::spawn_blocking(move || {
        let conn = location.open_read().map_err(|e| e.to_string())?;
        query(&conn).map_err(|e| format!("the store cannot be read: {e}"))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}

async fn post(
    client: &reqwest::Client,
    target: &HttpTarget,
    timeout: Duration,
    alerts: &[serde_json::Value],
) -> Result<(), String> {
    let body = serde_json::Value::Array(alerts.to_vec()).to_string();
    match tokio::time::timeout(timeout, crate::delivery::http::post(client, target, &body)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
