//! Parse stage: raw messages in, events out. Until the incident engine and
//! notification channels exist, alerts go to the log (the default channel).

use std::sync::Arc;

use hapwatch_parsers::{Event, Parser, ServerState};
use tokio::sync::mpsc;

use crate::ingest::udp::RawMessage;
use crate::stats::Stats;

/// Consumes messages until every sender is gone.
pub async fn run(parser: Arc<Parser>, mut rx: mpsc::Receiver<RawMessage>, stats: Arc<Stats>) {
    while let Some(msg) = rx.recv().await {
        handle(&parser, &msg, &stats);
    }
}

fn handle(parser: &Parser, msg: &RawMessage, stats: &Stats) {
    if msg.oversized {
        stats
            .oversized
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let peer = msg.peer.ip().to_string();
    let rec = match parser.parse(&msg.bytes) {
        Ok(r) => r,
        Err(e) => {
            stats.parse_error(e.kind, || {
                format!(
                    "from {peer}: {e}: {:?}",
                    String::from_utf8_lossy(&msg.bytes[..msg.bytes.len().min(300)])
                )
            });
            return;
        }
    };
    stats
        .parsed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let host = rec.envelope.hostname.filter(|h| *h != "-").unwrap_or(&peer);
    match &rec.event {
        Event::Traffic(_) => {
            stats
                .traffic
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Event::StateChange(s) => {
            stats
                .events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let state = s.new_state.map_or("?", |x| x.as_str());
            let losing = matches!(s.new_state, Some(ServerState::Down | ServerState::Maint));
            if losing && !s.is_operator_action() {
                tracing::warn!(
                    host,
                    backend = s.proxy,
                    server = s.server,
                    state,
                    reason = s.reason,
                    cause = s.cause,
                    active_left = s.active_servers,
                    backup_left = s.backup_servers,
                    "ALERT server {}/{} is {state}",
                    s.proxy,
                    s.server
                );
            } else {
                tracing::info!(
                    host,
                    backend = s.proxy,
                    server = s.server,
                    state,
                    cause = s.cause,
                    operator = s.is_operator_action(),
                    "server {}/{} is {state}",
                    s.proxy,
                    s.server
                );
            }
        }
        Event::BackendDown { proxy, proxy_type } => {
            stats
                .events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                host,
                backend = *proxy,
                proxy_type = *proxy_type,
                "ALERT {proxy_type} {proxy} has no server available"
            );
        }
        Event::HealthCheck(h) => {
            stats
                .events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                host,
                backend = h.proxy,
                server = h.server,
                result = h.result.as_str(),
                reason = h.reason,
                "check"
            );
        }
        Event::Other(o) => {
            stats
                .events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(host, template = o.template(), "{}", rec.message);
        }
    }
}
