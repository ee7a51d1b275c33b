//! Reconciliation: HAProxy's own view of its servers (`show stat` on the
//! stats socket, or the stats page's CSV) polled at an interval, so a state
//! change whose UDP datagram was lost still reaches the fleet state. A
//! difference becomes a `reconciliation` event and the state change it
//! stands for; an agreement changes nothing, so nothing is alerted twice.

use std::path::PathBuf;
use std::time::Duration;

use hapwatch_parsers::{ServerState, StateChange, StateTemplate};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `[reconcile]` in the config: off unless a socket or URL is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// HAProxy's stats socket (`stats socket … level user` is enough).
    pub stats_socket: Option<PathBuf>,
    /// Or its stats page as CSV, e.g. "http://127.0.0.1:8404/stats;csv".
    pub stats_url: Option<String>,
    #[serde(deserialize_with = "crate::config::duration")]
    pub interval: Duration,
    /// The host under which this HAProxy's logs arrive: its syslog hostname,
    /// or its address when the header has none (127.0.0.1 for a local one).
    pub host: Option<String>,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            stats_socket: None,
            stats_url: None,
            interval: Duration::from_secs(30),
            host: None,
        }
    }
}

impl ReconcileConfig {
    pub fn enabled(&self) -> bool {
        self.stats_socket.is_some() || self.stats_url.is_some()
    }

    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if self.enabled() && self.host.is_none() {
            return Err(ConfigError::ReconcileNeedsHost);
        }
        if self.stats_socket.is_some() && self.stats_url.is_some() {
            return Err(ConfigError::ReconcileBoth);
        }
        Ok(())
    }
}

/// One server as HAProxy reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub backend: String,
    pub server: String,
    pub state: ServerState,
}

/// Reads `show stat` CSV: the server rows whose status is a state
/// ("UP 1/3" is still UP; "no check" says nothing).
pub fn parse_csv(text: &str) -> Vec<StatRow> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status)) = (col("pxname"), col("svname"), col("status")) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let server = *f.get(sv)?;
            if server == "FRONTEND" || server == "BACKEND" {
                return None;
            }
            let s = *f.get(status)?;
            let state = if s.starts_with("UP") {
                ServerState::Up
            } else if s.starts_with("DOWN") {
                ServerState::Down
            } else if s.starts_with("MAINT") {
                ServerState::Maint
            } else if s.starts_with("DRAIN") {
                ServerState::Drain
            } else if s.starts_with("NOLB") {
                ServerState::Stopping
            } else {
                return None;
            };
            Some(StatRow {
                backend: f.get(px)?.to_string(),
                server: server.to_owned(),
                state,
            })
        })
        .collect()
}

/// The state change a difference stands for, as if HAProxy had logged it.
pub fn state_change<'a>(row: &'a StatRow) -> StateChange<'a> {
    let template = match row.state {
        ServerState::Up => StateTemplate::Up,
        ServerState::Down => StateTemplate::Down,
        ServerState::Stopping => StateTemplate::Stopping,
        ServerState::Maint => StateTemplate::GoingMaint,
        ServerState::Drain => StateTemplate::EntersDrain,
    };
    let mut change = StateChange::new(template, &row.backend, &row.server);
    change.new_state = Some(row.state);
    change.reason = Some("reconciled from HAProxy's stats");
    change
}

/// Why HAProxy's stats could not be read this poll.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{url}: HTTP {status}")]
    Status {
        url: String,
        status: crate::notify::http_status::Status,
    },
}

async fn fetch(cfg: &ReconcileConfig, client: &reqwest::Client) -> Result<String, FetchError> {
    if let Some(path) = &cfg.stats_socket {
        let socket = |source| FetchError::Socket {
            path: path.display().to_string(),
            source,
        };
        let mut s = tokio::net::UnixStream::connect(path)
            .await
            .map_err(socket)?;
        s.write_all(b"show stat\n").await.map_err(socket)?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.map_err(socket)?;
        return Ok(out);
    }
    let url = cfg.stats_url.as_deref().unwrap_or_default();
    let http = |e: reqwest::Error| FetchError::Http(crate::notify::error_chain(&e));
    let resp = client.get(url).send().await.map_err(http)?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: crate::notify::http_status::Status(resp.status().as_u16()),
        });
    }
    resp.text().await.map_err(http)
}

/// Polls until the pipeline is gone, sending each reading to it.
/// Polls in a row that fail before it is an incident (one refused poll is not).
const UNREADABLE_AFTER: u32 = 3;

/// The newest reading of each HAProxy, by host, until the pipeline takes
/// them: one slot each, so a HAProxy polled often cannot crowd out the rest.
pub type Latest = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<StatRow>>>>;

/// A poll that takes longer than this (or than the interval) failed: a
/// wedged HAProxy must count as unreadable, not hold its task forever.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `health` hears when the stats stay unreadable (`Some(why)`) and when they
/// answer again (`None`): an incident, not only a warning. Each configured
/// HAProxy has a task of its own, so a slow one does not delay the others.
pub async fn run(
    cfg: ReconcileConfig,
    latest: Latest,
    health: std::sync::mpsc::Sender<(String, Option<String>)>,
) {
    let host = cfg.host.clone().unwrap_or_default();
    // A stats page over https needs the TLS provider, as delivery does.
    crate::delivery::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let every = cfg.interval.max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(every);
    // A poll may take the interval, and never more than FETCH_TIMEOUT.
    let limit = every.min(FETCH_TIMEOUT);
    let mut failing = false;
    let mut failures = 0u32;
    loop {
        ticker.tick().await;
        let result = match tokio::time::timeout(limit, fetch(&cfg, &client)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(limit)),
        };
        match &result {
            Ok(_) if failures >= UNREADABLE_AFTER => {
                let _ = health.send((host.clone(), None));
                failures = 0;
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures == UNREADABLE_AFTER {
                    let _ = health.send((host.clone(), Some(e.to_string())));
                }
            }
        }
        match result {
            Ok(text) => {
                failing = false;
                // A reading the pipeline has not taken yet is replaced: the newest says it all.
                latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.clone(), parse_csv(&text));
            }
            // Said once per outage, not at every poll.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(host = %crate::escape::escape(&host), error = %e, "cannot read HAProxy's stats for reconciliation");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_states_from_show_stat() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
                   fe,FRONTEND,,,0,0,100,0,0,0,0,0,0,,,,,OPEN,\n\
                   be_app,app1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1\n\
                   be_app,app2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/2,1\n\
                   be_app,app3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1\n\
                   be_app,app4,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1\n\
                   be_app,BACKEND,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,3\n";
        let rows = parse_csv(csv);
        let got: Vec<(&str, ServerState)> =
            rows.iter().map(|r| (r.server.as_str(), r.state)).collect();
        assert_eq!(
            got,
            [
                ("app1", ServerState::Up),
                ("app2", ServerState::Down),
                ("app3", ServerState::Maint)
            ]
        );
        assert!(parse_csv("").is_empty());
        assert!(parse_csv("not,a,stats,header\n").is_empty());
    }
}
