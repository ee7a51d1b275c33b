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
        stats.oversized();
    }
    let rec = match parser.parse(&msg.bytes) {
        Ok(r) => r,
        Err(e) => {
            stats.parse_error(e.kind, || {
                format!(
                    "from {}: {e}: {:?}",
                    msg.peer.ip(),
                    String::from_utf8_lossy(&msg.bytes[..msg.bytes.len().min(300)])
                )
            });
            return;
        }
    };
    stats.parsed(matches!(rec.event, Event::Traffic(_)));
    // The sender's address stands in for a header without a hostname; it is
    // only formatted when a line is actually logged.
    let peer = msg.peer.ip();
    let hostname = rec.envelope.hostname.filter(|h| *h != "-");
    let host: &dyn std::fmt::Display = match &hostname {
        Some(h) => h,
        None => &peer,
    };
    match &rec.event {
        Event::Traffic(_) => {}
        Event::StateChange(s) => {
            let state = s.new_state.map_or("?", |x| x.as_str());
            let losing = matches!(s.new_state, Some(ServerState::Down | ServerState::Maint));
            if losing && !s.is_operator_action() {
                tracing::warn!(
                    host = %host,
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
                    host = %host,
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
            tracing::error!(
                host = %host,
                backend = *proxy,
                proxy_type = *proxy_type,
                "ALERT {proxy_type} {proxy} has no server available"
            );
        }
        Event::HealthCheck(h) => {
            tracing::debug!(
                host = %host,
                backend = h.proxy,
                server = h.server,
                result = h.result.as_str(),
                reason = h.reason,
                "check"
            );
        }
        Event::Other(o) => {
            tracing::debug!(host = %host, template = o.template(), "{}", rec.message);
        }
    }
}
