//! Delivery of the outbox: a task that sends due notifications, retries
//! failures with exponential backoff and jitter until they expire, and keeps
//! order per channel and backend (a resolve never overtakes its firing).
//! Rows live in SQLite, so a restart, even after SIGKILL, resumes delivery.

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use super::{ChannelConfig, ChannelType, NotifyConfig};
use crate::store::writer::WriteOp;

/// One pending row, as the delivery task reads it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub incident_id: i64,
    pub channel: String,
    pub payload: String,
    pub attempts: i64,
    pub created_ms: i64,
}

/// What an attempt did, for the writer to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: i64,
    pub attempts: i64,
    pub delivered_ms: Option<i64>,
    pub next_attempt_ms: i64,
    /// Given up: expired.
    pub failed: bool,
    pub error: Option<String>,
}

/// The oldest undelivered row of each (channel, backend) that is due.
///
/// A row due later than `now + horizon` (the longest backoff) was scheduled
/// before the clock was stepped back: it is due now, not hours from now.
pub fn due(conn: &Connection, now_ms: i64, horizon_ms: i64) -> rusqlite::Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.incident_id, o.channel, o.payload, o.attempts, o.created_at FROM outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL
           AND (o.next_attempt_at <= ?1 OR o.next_attempt_at > ?1 + ?2)
           AND o.id = (SELECT min(p.id) FROM outbox p
                       WHERE p.channel = o.channel AND p.group_key = o.group_key
                         AND p.delivered_at IS NULL AND p.failed_at IS NULL)
         ORDER BY o.id LIMIT 256",
    )?;
    let rows = stmt.query_map([now_ms, horizon_ms], |r| {
        Ok(Pending {
            id: r.get(0)?,
            incident_id: r.get(1)?,
            channel: r.get(2)?,
            payload: r.get(3)?,
            attempts: r.get(4)?,
            created_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// When the next undelivered row is due, if any.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT min(next_attempt_at) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        [],
        |r| r.get(0),
    )
}

/// Retry delay after `attempts` failures: doubling from `retry_min`, capped,
/// ±20 % jitter so that many rows failing together do not retry together.
pub fn backoff(cfg: &NotifyConfig, attempts: i64, id: i64) -> Duration {
    let base = cfg.retry_min.as_millis() as f64 * 2f64.powi(attempts.clamp(0, 30) as i32 - 1);
    let capped = base.min(cfg.retry_max.as_millis() as f64);
    let jitter = {
        use std::hash::BuildHasher as _;
        let h = std::collections::hash_map::RandomState::new().hash_one((id, attempts));
        0.8 + 0.4 * (h % 1000) as f64 / 1000.0
    };
    Duration::from_millis((capped * jitter) as u64)
}

/// HMAC-SHA256 of the body, hex, as `X-Hapwatch-Signature: sha256=…` carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// How a channel is reached.
#[derive(Clone)]
enum Sender {
    Http(reqwest::Client),
    Smtp(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
}

/// One attempt, bounded by the channel's `timeout` as a whole: lettre's async
/// transport times out only its connect, so a server that stalls mid-dialogue
/// would otherwise hold the notification (and those queued behind it) for good.
async fn send(via: &Sender, ch: &ChannelConfig, payload: &str) -> Result<(), String> {
    let attempt = async {
        match via {
            Sender::Http(client) => post(client, ch, payload).await,
            Sender::Smtp(transport) => super::email::send(transport, ch, payload).await,
        }
    };
    tokio::time::timeout(ch.timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}",
                humantime::format_duration(ch.timeout)
            ))
        })
}

async fn post(client: &reqwest::Client, ch: &ChannelConfig, payload: &str) -> Result<(), String> {
    let mut req = client
        .post(ch.url.as_deref().unwrap_or_default())
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("hapwatch/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(secret) = &ch.secret {
        req = req.header(
            "x-hapwatch-signature",
            signature(secret.expose(), payload.as_bytes()),
        );
    }
    let resp = req
        .body(payload.to_owned())
        .send()
        .await
        // A webhook URL is often the secret itself (Slack, Teams): never log it.
        .map_err(|e| super::error_chain(&e.without_url()))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        ))
    }
}

/// A mail's body ends with the incident's timeline as stored when it is sent.
fn with_timeline(conn: &Connection, row: &Pending) -> String {
    let Ok(serde_json::Value::Object(mut mail)) = serde_json::from_str(&row.payload) else {
        return row.payload.clone();
    };
    let timeline = crate::store::incidents::timeline(conn, row.incident_id).unwrap_or_default();
    if timeline.is_empty() {
        return row.payload.clone();
    }
    let mut body = mail
        .get("body")
        .and_then(|b| b.as_str())
        .unwrap_or_default()
        .to_owned();
    body += "\nTimeline:\n";
    for (ts, text) in timeline {
        body += &format!("  {}  {text}\n", crate::timezone::rfc3339(ts));
    }
    mail.insert("body".into(), body.into());
    serde_json::Value::Object(mail).to_string()
}

/// Sends one payload now, outside the outbox (`hapwatch test-alert`).
pub async fn send_now(ch: &ChannelConfig, payload: &str) -> Result<(), String> {
    let via = match ch.kind {
        ChannelType::Email => Sender::Smtp(super::email::transport(ch)?),
        _ => Sender::Http(
            reqwest::Client::builder()
                .build()
                .map_err(|e| e.to_string())?,
        ),
    };
    send(&via, ch, payload).await
}

/// Runs until the process stops. `wake` is signalled when rows are committed.
pub async fn run(
    db: std::path::PathBuf,
    channels: Vec<ChannelConfig>,
    cfg: NotifyConfig,
    store: SyncSender<WriteOp>,
    wake: Arc<Notify>,
) {
    if channels.is_empty() {
        return;
    }
    let conn = match crate::store::open_read(&db) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the outbox cannot be read; notifications will not be sent");
            return;
        }
    };
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client; notifications will not be sent");
            return;
        }
    };
    let mut senders: HashMap<String, (ChannelConfig, Sender)> = HashMap::new();
    // Configured but unusable (a bad CA file…): rows wait for a fixed config and restart.
    let mut unusable = std::collections::HashSet::new();
    for ch in channels {
        let sender = match ch.kind {
            ChannelType::Email => match super::email::transport(&ch) {
                Ok(t) => Sender::Smtp(t),
                Err(e) => {
                    tracing::error!(channel = ch.name, error = %e, "email channel unusable; its notifications wait in the outbox");
                    unusable.insert(ch.name.clone());
                    continue;
                }
            },
            _ => Sender::Http(client.clone()),
        };
        senders.insert(ch.name.clone(), (ch, sender));
    }
    // Rows attempted whose outcome the writer has not committed yet: (id → attempts recorded).
    let mut in_flight: HashMap<i64, i64> = HashMap::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Attempt>();
    // The longest backoff, jitter included, and a second to spare.
    let horizon_ms = cfg.retry_max.as_millis() as i64 * 6 / 5 + 1000;
    loop {
        let now = crate::timezone::now_ms();
        let rows = due(&conn, now, horizon_ms).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the outbox failed");
            Vec::new()
        });
        in_flight.retain(|id, recorded| rows.iter().any(|r| r.id == *id && r.attempts < *recorded));
        for row in rows {
            if in_flight.contains_key(&row.id) || unusable.contains(&row.channel) {
                continue;
            }
            in_flight.insert(row.id, row.attempts + 1);
            let Some((ch, via)) = senders.get(&row.channel).cloned() else {
                tracing::warn!(
                    channel = row.channel,
                    "notification for a channel no longer configured; giving it up"
                );
                let _ = done_tx.send(Attempt {
                    id: row.id,
                    attempts: row.attempts + 1,
                    delivered_ms: None,
                    next_attempt_ms: now,
                    failed: true,
                    error: Some("channel not configured".into()),
                });
                continue;
            };
            let (done_tx, cfg) = (done_tx.clone(), cfg.clone());
            let payload = match ch.kind {
                ChannelType::Email => with_timeline(&conn, &row),
                _ => row.payload.clone(),
            };
            tokio::spawn(async move {
                let result = send(&via, &ch, &payload).await;
                let at = crate::timezone::now_ms();
                let attempts = row.attempts + 1;
                let attempt = match result {
                    Ok(()) => {
                        tracing::info!(
                            channel = ch.name,
                            incident = row.incident_id,
                            attempts,
                            "notification delivered"
                        );
                        Attempt {
                            id: row.id,
                            attempts,
                            delivered_ms: Some(at),
                            next_attempt_ms: at,
                            failed: false,
                            error: None,
                        }
                    }
                    Err(error) => {
                        let expired = at - row.created_ms >= cfg.expire_after.as_millis() as i64;
                        let next = at + backoff(&cfg, attempts, row.id).as_millis() as i64;
                        if expired {
                            tracing::error!(channel = ch.name, incident = row.incident_id, attempts, %error, "notification expired undelivered");
                        } else {
                            tracing::warn!(channel = ch.name, incident = row.incident_id, attempts, %error, retry_in_ms = next - at, "notification failed; will retry");
                        }
                        Attempt {
                            id: row.id,
                            attempts,
                            delivered_ms: None,
                            next_attempt_ms: next,
                            failed: expired,
                            error: Some(error),
                        }
                    }
                };
                let _ = done_tx.send(attempt);
            });
        }
        let next = next_due(&conn).ok().flatten();
        let sleep_ms = next.map_or(1000, |t| (t - crate::timezone::now_ms()).clamp(10, 1000));
        tokio::select! {
            _ = wake.notified() => {}
            Some(attempt) = done_rx.recv() => {
                let mut batch = vec![attempt];
                while let Ok(a) = done_rx.try_recv() {
                    batch.push(a);
                }
                let store = store.clone();
                // The writer's queue is bounded: never block the runtime on it.
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = store.send(WriteOp::Deliveries(batch));
                }).await;
            }
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let cfg = NotifyConfig {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            expire_after: Duration::from_secs(3600),
            group_wait: Duration::ZERO,
            repeat_critical: Duration::ZERO,
        };
        for (attempts, base) in [(1, 1000.0), (2, 2000.0), (3, 4000.0), (10, 60_000.0)] {
            let d = backoff(&cfg, attempts, 42).as_millis() as f64;
            assert!(
                d >= base * 0.8 && d <= base * 1.2,
                "attempt {attempts}: {d} ms"
            );
        }
    }

    #[test]
    fn signatures_match_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
