//! Delivery of the outbox: a task that sends due notifications, retries
//! failures with exponential backoff and jitter until they expire, and keeps
//! order per channel and backend (a resolve never overtakes its firing).
//! Rows live in SQLite, so a restart, even after SIGKILL, resumes delivery.

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Db;
use tokio::sync::Notify;

use super::{ChannelConfig, ChannelType, DeliveryError, NotifyConfig, SetupError};
use crate::delivery::{http_client, send, sender, Sender};
use crate::store::writer::WriteOp;

pub use crate::store::outbox::{due, next_due, Attempt, Pending};

/// Retry delay after `attempts` failures: doubling from `retry_min`, capped,
/// ±20 % jitter so that many rows failing together do not retry together.
pub fn backoff(cfg: &NotifyConfig, attempts: i64, id: i64) -> Duration {
    let jitter = {
        use std::hash::BuildHasher as _;
        let h = std::collections::hash_map::RandomState::new().hash_one((id, attempts));
        0.8 + 0.4 * (h % 1000) as f64 / 1000.0
    };
    base_backoff(cfg, attempts).mul_f64(jitter)
}

/// The delay after `attempts` failures before jitter: doubling from `retry_min`, capped.
fn base_backoff(cfg: &NotifyConfig, attempts: i64) -> Duration {
    let base = cfg.retry_min.as_millis() as f64 * 2f64.powi(attempts.clamp(0, 30) as i32 - 1);
    Duration::from_millis(base.min(cfg.retry_max.as_millis() as f64) as u64)
}

/// How long `attempts` failures have waited at least (each backoff at its
/// lowest jitter): a count the store keeps across restarts and no clock step moves.
pub fn retried_for(cfg: &NotifyConfig, attempts: i64) -> Duration {
    let mut total = Duration::ZERO;
    for n in 1..=attempts.clamp(0, 100_000) {
        total += base_backoff(cfg, n).mul_f64(0.8);
        if total >= cfg.expire_after {
            break;
        }
    }
    total
}

/// A mail's body ends with the timelines of its incidents as stored when it is sent.
fn with_timeline(conn: &Db, row: &Pending) -> String {
    let Ok(serde_json::Value::Object(mut mail)) = serde_json::from_str(&row.payload) else {
        return row.payload.clone();
    };
    let ids: Vec<i64> = mail
        .get("incidents")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
        .unwrap_or_else(|| vec![row.incident_id]);
    let zone: crate::timezone::Zone = mail
        .get("zone")
        .and_then(|z| z.as_str())
        .and_then(|z| z.parse().ok())
        .unwrap_or(crate::timezone::Zone::Utc);
    let mut body = mail
        .get("body")
        .and_then(|b| b.as_str())
        .unwrap_or_default()
        .to_owned();
    for id in ids {
        let timeline = crate::store::incidents::timeline(conn, id).unwrap_or_default();
        if timeline.is_empty() {
            continue;
        }
        body += &format!("\nTimeline of #{id}:\n");
        for (ts, text) in timeline {
            body += &format!("  {}  {text}\n", super::text::local_time(ts, &zone));
        }
    }
    mail.insert("body".into(), body.into());
    serde_json::Value::Object(mail).to_string()
}

/// A row this task attempted, as far as it knows before the store does.
enum Flight {
    Sending,
    /// Failed; retried from `next_ms` (the store may still hold the older count).
    Retry {
        attempts: i64,
        next_ms: i64,
    },
    /// Delivered or given up: never sent again, whatever the store still says.
    Done {
        at: std::time::Instant,
    },
}

impl Flight {
    fn after(a: &Attempt) -> Flight {
        if a.delivered_ms.is_some() || a.failed {
            Flight::Done {
                at: std::time::Instant::now(),
            }
        } else {
            Flight::Retry {
                attempts: a.attempts,
                next_ms: a.next_attempt_ms,
            }
        }
    }

    /// Whether to keep remembering it, given its row among the due ones.
    fn unsettled(&self, due: Option<&Pending>) -> bool {
        match self {
            Flight::Sending => true,
            // The store caught up once its count does (or the row is no longer due).
            Flight::Retry { attempts, .. } => due.is_some_and(|r| r.attempts < *attempts),
            // Still due in the store: not committed yet. Gone: kept a while, in
            // case it is only past the due query's limit.
            Flight::Done { at } => due.is_some() || at.elapsed() < Duration::from_secs(3600),
        }
    }
}

/// The channels delivery can use, rebuilt when a reload changes them.
struct Senders {
    usable: HashMap<String, (ChannelConfig, Sender)>,
    /// Configured but unusable (a bad CA file…): their rows wait for a fixed config.
    unusable: HashMap<String, SetupError>,
}

impl Senders {
    fn build(channels: &[ChannelConfig], client: &reqwest::Client) -> Senders {
        let mut s = Senders {
            usable: HashMap::new(),
            unusable: HashMap::new(),
        };
        for ch in channels {
            match sender(ch, client) {
                Ok(via) => {
                    s.usable.insert(ch.name.clone(), (ch.clone(), via));
                }
                Err(e) => {
                    tracing::error!(channel = ch.name, error = %e, "channel unusable; its notifications wait in the outbox for a fixed config");
                    s.unusable.insert(ch.name.clone(), e);
                }
            }
        }
        s
    }
}

/// A channel starts failing (`failing` says how) or works again (None):
/// the pipeline turns it into an incident, notified on the other channels.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelHealth {
    pub channel: String,
    pub failing: Option<String>,
}

/// Failed attempts in a row after which a channel counts as failing (one
/// permanent failure is enough), if they span at least `FAILING_FOR_MS`:
/// several rows failing on one blip are not "keeps failing".
const FAILING_AFTER: u32 = 3;
const FAILING_FOR_MS: i64 = 60_000;

/// Per channel: failed attempts in a row, since when, and whether it was
/// said to fail. The first delivery after a start says it works (resolving
/// an incident a previous run left open).
#[derive(Default)]
struct Streaks {
    by_channel: HashMap<String, (u32, i64)>,
    failing: std::collections::HashSet<String>,
    said_ok: std::collections::HashSet<String>,
}

impl Streaks {
    /// What to tell the pipeline after this attempt: Some(Some(why)) failing,
    /// Some(None) working again, None nothing new.
    fn note(
        &mut self,
        channel: &str,
        a: &Attempt,
        error: Option<&DeliveryError>,
        now_ms: i64,
    ) -> Option<Option<String>> {
        let (count, since) = self
            .by_channel
            .entry(channel.to_owned())
            .or_insert((0, now_ms));
        if a.delivered_ms.is_some() {
            *count = 0;
            let was_failing = self.failing.remove(channel);
            let first = self.said_ok.insert(channel.to_owned());
            return (was_failing || first).then_some(None);
        }
        if *count == 0 {
            *since = now_ms;
        }
        *count += 1;
        let bad = error.is_some_and(DeliveryError::is_permanent)
            || (*count >= FAILING_AFTER && now_ms - *since >= FAILING_FOR_MS);
        (bad && self.failing.insert(channel.to_owned())).then(|| a.error.clone())
    }
}

/// What the delivery task is connected to.
pub struct Wiring {
    pub location: crate::store::Location,
    pub cfg: NotifyConfig,
    /// Where attempts' outcomes go.
    pub store: SyncSender<WriteOp>,
    /// Signalled when rows are committed.
    pub wake: Arc<Notify>,
    /// Counts rows given up.
    pub failed: Arc<std::sync::atomic::AtomicU64>,
    /// Hears which channels fail and which work again.
    pub health: std::sync::mpsc::Sender<ChannelHealth>,
    pub wall: crate::timezone::WallClock,
    /// Stamped each time round the loop: the heartbeat's sign that delivery runs.
    pub ran: Arc<std::sync::atomic::AtomicI64>,
    /// `[cluster] node`: recorded with each attempt.
    pub node: Arc<str>,
    /// Several nodes on one store: a row is sent by the node that claims it.
    pub cluster: Option<Arc<crate::cluster::Role>>,
    /// The local spool a node on a shared store fails open to: delivered
    /// from while the store does not answer.
    pub spool: Option<std::path::PathBuf>,
}

/// Runs until the process stops; `channels` changes on a reload.
pub async fn run(wiring: Wiring, mut channels: tokio::sync::watch::Receiver<Vec<ChannelConfig>>) {
    let Wiring {
        location,
        cfg,
        store,
        wake,
        failed,
        health,
        wall,
        ran,
        node,
        cluster,
        spool,
    } = wiring;
    let mut spooled: Option<crate::store::Db> = None;
    let mut streaks = Streaks::default();
    let conn = match location.open_read() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the outbox cannot be read; notifications will not be sent");
            return;
        }
    };
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client; notifications will not be sent");
            return;
        }
    };
    let mut senders = Senders::build(&channels.borrow_and_update(), &client);
    // Channels whose TLS failure was logged in full: once each, until it works.
    let mut tls_reported = std::collections::HashSet::new();
    // Rows attempted whose outcome the store may not have yet: a full disk
    // holds the writer, and delivery goes on from what this task knows.
    let mut in_flight: HashMap<i64, Flight> = HashMap::new();
    // When this process first attempted each row still pending.
    let mut first_tried: HashMap<i64, std::time::Instant> = HashMap::new();
    let (done_tx, mut done_rx) =
        tokio::sync::mpsc::unbounded_channel::<(Attempt, Option<DeliveryError>, String)>();
    // Outcomes not yet handed to the writer.
    let mut outcomes: Vec<Attempt> = Vec::new();
    // The longest backoff, jitter included, and a second to spare.
    let horizon_ms = cfg.retry_max.as_millis() as i64 * 6 / 5 + 1000;
    loop {
        let now = wall.now_ms();
        ran.store(now, std::sync::atomic::Ordering::Relaxed);
        let failing_open = cluster.as_ref().is_some_and(|r| r.failing_open());
        let conn = match (&spool, failing_open) {
            (Some(path), true) => match &spooled {
                Some(db) => db,
                None => match crate::store::open_read(path) {
                    Ok(db) => spooled.insert(db),
                    Err(e) => {
                        tracing::error!(error = %e, "the local spool cannot be read");
                        &conn
                    }
                },
            },
            _ => &conn,
        };
        // The spool is this node's alone: nothing to claim from other nodes.
        let cluster = cluster.as_ref().filter(|_| !failing_open);
        let rows = due(conn, now, horizon_ms).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the outbox failed");
            Vec::new()
        });
        // Rows the CLI asked to send again: the store requeues them, and this
        // task forgets it had given them up.
        let retries = crate::store::outbox::retry_requests(conn).unwrap_or_default();
        if !retries.is_empty() {
            for id in &retries {
                // Only what was given up: a row being sent stays in flight.
                if matches!(in_flight.get(id), Some(Flight::Done { .. })) {
                    in_flight.remove(id);
                }
                first_tried.remove(id);
            }
            if store.try_send(WriteOp::Retry(retries.clone(), now)).is_ok() {
                tracing::info!(rows = ?retries, "retrying notifications on request");
            }
        }
        in_flight.retain(|id, f| f.unsettled(rows.iter().find(|r| r.id == *id)));
        for mut row in rows {
            if senders.unusable.contains_key(&row.channel) {
                continue;
            }
            match in_flight.get(&row.id) {
                Some(Flight::Sending | Flight::Done { .. }) => continue,
                Some(Flight::Retry { next_ms, .. }) if now < *next_ms => continue,
                Some(Flight::Retry { attempts, .. }) => row.attempts = *attempts,
                None => {}
            }
            if let Some(role) = cluster {
                // A channel this node does not have (a config mid-rollout) is
                // another node's to send, not this one's to give up.
                let Some((ch, _)) = senders.usable.get(&row.channel) else {
                    continue;
                };
                // Held past the send's own timeout: a slow send is not taken over.
                let hold_ms = (role.lease + ch.timeout).as_millis() as i64 + 1000;
                match crate::store::outbox::claim(conn, row.id, &role.holder, hold_ms) {
                    Ok(true) => {}
                    // Another node is sending it, or has.
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, row = row.id, "cannot claim a notification to send; trying again");
                        continue;
                    }
                }
            }
            in_flight.insert(row.id, Flight::Sending);
            // Age by the monotonic clock: a wall-clock step forward must not expire it.
            let born = *first_tried
                .entry(row.id)
                .or_insert_with(std::time::Instant::now);
            let Some((ch, via)) = senders.usable.get(&row.channel).cloned() else {
                tracing::warn!(
                    channel = row.channel,
                    "notification for a channel no longer configured; marked failed"
                );
                let attempt = Attempt {
                    id: row.id,
                    node: node.clone(),
                    at_ms: now,
                    // Recorded as an attempt, though nothing was sent: the history shows why.
                    attempts: row.attempts + 1,
                    delivered_ms: None,
                    next_attempt_ms: now,
                    failed: true,
                    error: Some(format!(
                        "channel {:?} is no longer in the config",
                        row.channel
                    )),
                };
                let _ = done_tx.send((attempt, None, row.channel.clone()));
                continue;
            };
            let (done_tx, cfg, wall, node) =
                (done_tx.clone(), cfg.clone(), wall.clone(), node.clone());
            let payload = match ch.kind {
                ChannelType::Email => with_timeline(conn, &row),
                _ => row.payload.clone(),
            };
            tokio::spawn(async move {
                let result = send(&via, &ch, &payload).await;
                let at = wall.now_ms();
                let attempts = row.attempts + 1;
                let (attempt, error) = match result {
                    Ok(()) => {
                        tracing::info!(
                            channel = ch.name,
                            incident = row.incident_id,
                            attempts,
                            "notification delivered"
                        );
                        let a = Attempt {
                            id: row.id,
                            node: node.clone(),
                            at_ms: at,
                            attempts,
                            delivered_ms: Some(at),
                            next_attempt_ms: at,
                            failed: false,
                            error: None,
                        };
                        (a, None)
                    }
                    Err(error) => {
                        // The wall clock says how long since it was queued, but a
                        // step can fake that; it must agree with the monotonic time
                        // since this process first tried it, or (across restarts)
                        // with the waits its stored attempts add up to.
                        let expired = at - row.created_ms >= cfg.expire_after.as_millis() as i64
                            && (born.elapsed() >= cfg.expire_after
                                || retried_for(&cfg, attempts) >= cfg.expire_after);
                        let next = at + backoff(&cfg, attempts, row.id).as_millis() as i64;
                        let a = Attempt {
                            id: row.id,
                            node: node.clone(),
                            at_ms: at,
                            attempts,
                            delivered_ms: None,
                            next_attempt_ms: next,
                            failed: expired || error.is_permanent(),
                            error: Some(error.to_string()),
                        };
                        if expired {
                            tracing::error!(channel = ch.name, incident = row.incident_id, attempts, %error, "notification expired undelivered");
                        }
                        (a, Some(error))
                    }
                };
                let _ = done_tx.send((attempt, error, ch.name.clone()));
            });
        }
        // The writer's queue is bounded and may be held by a full disk: keep
        // the outcomes here and keep delivering (in-flight rows are not resent).
        if !outcomes.is_empty() {
            match store.try_send(WriteOp::Deliveries(std::mem::take(&mut outcomes))) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(WriteOp::Deliveries(back))) => {
                    outcomes = back
                }
                Err(_) => return,
            }
        }
        let next = next_due(conn).ok().flatten();
        let sleep_ms = next.map_or(1000, |t| (t - wall.now_ms()).clamp(10, 1000));
        tokio::select! {
            _ = wake.notified() => {}
            changed = channels.changed() => {
                if changed.is_err() {
                    return;
                }
                senders = Senders::build(&channels.borrow_and_update(), &client);
                tls_reported.clear();
                tracing::info!(channels = senders.usable.len(), "delivery uses the reloaded channels");
            }
            Some(first) = done_rx.recv() => {
                let mut batch = vec![first];
                while let Ok(a) = done_rx.try_recv() {
                    batch.push(a);
                }
                for (attempt, error, channel) in batch {
                    report((&attempt, wall.now_ms()), error.as_ref(), &channel, &mut tls_reported, &failed);
                    // A channel no longer configured is not failing: it is gone.
                    if senders.usable.contains_key(&channel) {
                        let now = wall.now_ms();
                        if let Some(failing) = streaks.note(&channel, &attempt, error.as_ref(), now) {
                            let _ = health.send(ChannelHealth { channel: channel.clone(), failing });
                        }
                    }
                    in_flight.insert(attempt.id, Flight::after(&attempt));
                    if attempt.delivered_ms.is_some() || attempt.failed {
                        first_tried.remove(&attempt.id);
                    }
                    outcomes.push(attempt);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
        }
    }
}

/// Logs an attempt's failure: a TLS failure in full once per channel, a
/// permanent one as given up, a transient one as retried.
fn report(
    (a, now_ms): (&Attempt, i64),
    error: Option<&DeliveryError>,
    channel: &str,
    tls_reported: &mut std::collections::HashSet<String>,
    failed: &std::sync::atomic::AtomicU64,
) {
    if a.delivered_ms.is_some() {
        tls_reported.remove(channel);
        return;
    }
    if a.failed {
        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let text = a.error.as_deref().unwrap_or_default();
    match error {
        Some(DeliveryError::Tls(_)) if tls_reported.insert(channel.to_owned()) => {
            tracing::error!(
                channel,
                row = a.id,
                error = text,
                "notification failed: the server's certificate is not trusted; not retried"
            );
        }
        Some(DeliveryError::Tls(_)) => {
            tracing::warn!(
                channel,
                row = a.id,
                "notification failed: TLS, as reported above; not retried"
            );
        }
        Some(e) if e.is_permanent() => {
            tracing::error!(
                channel,
                row = a.id,
                error = text,
                "notification failed permanently; not retried"
            );
        }
        Some(_) if !a.failed => {
            let retry_in_ms = a.next_attempt_ms - now_ms;
            tracing::warn!(
                channel,
                row = a.id,
                attempts = a.attempts,
                error = text,
                retry_in_ms,
                "notification failed; will retry"
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retries from 1 s to 1 min, expiring after an hour.
    fn retries_1s_to_1m() -> NotifyConfig {
        NotifyConfig {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            expire_after: Duration::from_secs(3600),
            group_wait: Duration::ZERO,
            repeat_critical: Duration::ZERO,
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let cfg = retries_1s_to_1m();
        for (attempts, base) in [(1, 1000.0), (2, 2000.0), (3, 4000.0), (10, 60_000.0)] {
            let d = backoff(&cfg, attempts, 42).as_millis() as f64;
            assert!(
                d >= base * 0.8 && d <= base * 1.2,
                "attempt {attempts}: {d} ms"
            );
        }
    }

    #[test]
    fn retries_add_up_to_expiry_whatever_the_clock_says() {
        let cfg = retries_1s_to_1m();
        assert!(retried_for(&cfg, 10) < Duration::from_secs(300));
        assert!(retried_for(&cfg, 80) >= cfg.expire_after);
    }
}
