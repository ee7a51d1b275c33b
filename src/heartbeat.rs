//! The dead-man's switch: while the daemon is healthy, it requests a URL
//! every `every` (Healthchecks.io, Dead Man's Snitch, Cronitor, an uptime
//! monitor's push URL), so that something outside pages when hapwatch dies
//! or wedges. A beat is withheld, not sent, when the pipeline has stopped
//! ticking, the store refuses writes, or the outbox task has stopped.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::counters::Stats;
use crate::timezone::WallClock;
use crate::view::{Observed, STALE_MS};

/// `[heartbeat]` in the config; without `url` there is none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatConfig {
    #[serde(deserialize_with = "crate::config::http_url")]
    pub url: Option<String>,
    #[serde(deserialize_with = "crate::config::duration")]
    pub every: Duration,
    #[serde(deserialize_with = "crate::config::duration")]
    pub timeout: Duration,
    pub method: Method,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            url: None,
            every: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            method: Method::Get,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
}

/// Why a beat is withheld.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    #[error("the pipeline has not ticked for {0} ms")]
    PipelineStuck(i64),
    #[error("the store cannot be used: {0}")]
    StoreFailed(String),
    #[error("the store refuses writes (a batch is held and retried)")]
    StoreRetrying,
    #[error("the outbox task has not run for {0} ms")]
    OutboxStalled(i64),
}

impl Unhealthy {
    /// Which of them, whatever its figures: a change of this is logged.
    fn kind(&self) -> &'static str {
        match self {
            Unhealthy::PipelineStuck(_) => "pipeline",
            Unhealthy::StoreFailed(_) => "store failed",
            Unhealthy::StoreRetrying => "store retrying",
            Unhealthy::OutboxStalled(_) => "outbox",
        }
    }
}

/// Whether the daemon is well enough to say so: its pipeline ticks, its
/// store takes writes, its outbox task runs.
pub fn check(stats: &Stats, observed: &Observed, now_ms: i64) -> Result<(), Unhealthy> {
    let ticked = observed.updated_ms();
    if ticked == 0 || now_ms - ticked > STALE_MS {
        return Err(Unhealthy::PipelineStuck(now_ms - ticked));
    }
    if let Some(e) = stats.store_error() {
        return Err(Unhealthy::StoreFailed(e));
    }
    if stats.store_retrying.load(Relaxed) {
        return Err(Unhealthy::StoreRetrying);
    }
    let ran = stats.outbox_ran_ms.load(Relaxed);
    if now_ms - ran > STALE_MS {
        return Err(Unhealthy::OutboxStalled(now_ms - ran));
    }
    Ok(())
}

/// Beats until the runtime stops. The first waits one `every`, so that a
/// daemon restarting in a loop does not look alive.
pub async fn run(
    cfg: HeartbeatConfig,
    stats: Arc<Stats>,
    observed: Arc<Observed>,
    wall: WallClock,
) {
    let Some(url) = cfg.url.clone() else {
        return;
    };
    let client = match crate::delivery::http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: no heartbeat");
            return;
        }
    };
    let method = match cfg.method {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
    };
    tracing::info!(every = ?cfg.every, "heartbeat on");
    // What the last beat was (sent, or why not), so a change is logged once.
    let mut last: Option<String> = None;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + cfg.every, cfg.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // (what is logged, what is compared with the last beat)
        let (said, kind) = match check(&stats, &observed, wall.now_ms()) {
            Err(why) => {
                stats.heartbeats_withheld.fetch_add(1, Relaxed);
                (Some(format!("withheld: {why}")), why.kind().to_owned())
            }
            Ok(()) => match beat(&client, method.clone(), &url, cfg.timeout).await {
                Ok(()) => {
                    stats.heartbeats_sent.fetch_add(1, Relaxed);
                    (None, "sent".to_owned())
                }
                Err(why) => {
                    stats.heartbeats_failed.fetch_add(1, Relaxed);
                    let why = format!("failed: {why}");
                    (Some(why.clone()), why)
                }
            },
        };
        if last.as_deref() != Some(kind.as_str()) {
            match &said {
                None => tracing::info!("heartbeat sent"),
                Some(why) => tracing::warn!(%why, "heartbeat not sent"),
            }
        }
        last = Some(kind);
    }
}

/// One request: only a 2xx answer is a beat (redirects are not followed).
async fn beat(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    timeout: Duration,
) -> Result<(), String> {
    let resp = client
        .request(method, url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| crate::delivery::error_chain(&e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn its_table_is_checked_with_the_key_and_line() {
        let c =
            Config::from_toml("[heartbeat]\nurl = \"https://hc-ping.com/x\"\nevery = \"30s\"\n")
                .unwrap();
        assert_eq!(
            (
                c.heartbeat.url.as_deref(),
                c.heartbeat.every,
                c.heartbeat.method
            ),
            (
                Some("https://hc-ping.com/x"),
                Duration::from_secs(30),
                Method::Get
            )
        );
        let zero = Config::from_toml("[heartbeat]\nurl = \"http://x/\"\nevery = \"0s\"\n").unwrap();
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "[heartbeat] every must be more than 0"
        );
        for (text, line, says) in [
            ("[heartbeat]\n\nurl = \"ftp://x\"\n", "line 3", "http://"),
            ("[heartbeat]\nmethod = \"PUT\"\n", "line 2", "GET"),
            ("[heartbeat]\nevry = \"1m\"\n", "line 2", "every"),
        ] {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(line) && e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_beat_needs_a_ticking_pipeline_a_writable_store_and_a_running_outbox() {
        let (stats, observed) = (Stats::default(), Observed::default());
        let now = 1_000_000;
        assert!(matches!(
            check(&stats, &observed, now),
            Err(Unhealthy::PipelineStuck(_))
        ));
        observed.publish(crate::view::View {
            updated_ms: now - 1000,
            ..Default::default()
        });
        stats.outbox_ran_ms.store(now - 500, Relaxed);
        assert_eq!(check(&stats, &observed, now), Ok(()));
        assert!(matches!(
            check(&stats, &observed, now + STALE_MS),
            Err(Unhealthy::PipelineStuck(_))
        ));
        stats.store_retrying.store(true, Relaxed);
        assert_eq!(check(&stats, &observed, now), Err(Unhealthy::StoreRetrying));
        stats.store_retrying.store(false, Relaxed);
        stats.outbox_ran_ms.store(now - STALE_MS - 1, Relaxed);
        assert!(matches!(
            check(&stats, &observed, now),
            Err(Unhealthy::OutboxStalled(_))
        ));
        stats.outbox_ran_ms.store(now, Relaxed);
        stats.set_store_error("gone".into());
        assert_eq!(
            check(&stats, &observed, now),
            Err(Unhealthy::StoreFailed("gone".into()))
        );
    }
}
