//! A reload (SIGHUP): formats, the timezone, routing and channels apply at
//! once; listeners, the database path and the window size need a restart,
//! which is said in the log.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::config::Config;
use crate::notify::ChannelConfig;
use crate::store::writer::WriteOp;

/// Where a reloaded config goes: the pipeline (formats, zone, routing) and
/// delivery (the channels' senders).
pub struct Reloads {
    pub pipeline: super::tick::Reload,
    pub store: SyncSender<WriteOp>,
    pub channels: tokio::sync::watch::Sender<Vec<ChannelConfig>>,
    pub wall: crate::timezone::WallClock,
}

/// Applies `next` over `running`; the config now running.
pub fn apply(running: Config, next: Config, reloads: &Reloads) -> Config {
    let parser = match crate::parser::parser_for(&next.parse) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; keeping the running config");
            return running;
        }
    };
    if format!("{:?}", next.store()) != format!("{:?}", running.store())
        || format!("{:?}", next.listeners()) != format!("{:?}", running.listeners())
        || next.storage.window != running.storage.window
        || next.heartbeat != running.heartbeat
        || next.http.listen != running.http.listen
        || next.http.auth() != running.http.auth()
    {
        tracing::warn!(
            "listeners, storage path, window size, [http] and [heartbeat] change only on restart"
        );
    }
    let diff = crate::notify::ChannelDiff::against(
        &crate::notify::fingerprints(&running.channel),
        &next.channel,
    );
    tracing::info!(
        formats = parser.custom_formats().len(),
        channels = next.channel.len(),
        added = %diff.added.join(","),
        removed = %diff.removed.join(","),
        changed = %diff.changed.join(","),
        "config reloaded"
    );
    reloads.channels.send_replace(next.channel.clone());
    record_channels(&reloads.store, &next, reloads.wall.now_ms());
    *reloads.pipeline.lock().unwrap_or_else(|p| p.into_inner()) = Some((parser, next.clone()));
    next
}

/// Stores which channels delivery now uses, so `check-config` can say what a
/// reload would change.
pub fn record_channels(store: &SyncSender<WriteOp>, config: &Config, now_ms: i64) {
    let channels = crate::notify::fingerprints(&config.channel);
    let _ = store.send(WriteOp::Channels(channels, now_ms));
}
