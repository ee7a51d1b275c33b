//! The pipeline thread: parse and aggregate each message; once a second,
//! close due windows, run the incident engine and pick up a reload; every
//! stats interval, log and store the daemon's own counters.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::counters::{Snapshot, Stats};
use crate::ingest::Batch;
use crate::pipeline::Processor;
use crate::store::writer::{IngestRow, WriteOp};

/// A reloaded parser and config, waiting for the pipeline thread to pick up.
pub type Reload = Arc<Mutex<Option<(Arc<hapwatch_parsers::Parser>, Config)>>>;

/// The pipeline thread: parse and aggregate each message; once a second,
/// close due windows; every stats interval, log and store the counters.
/// What the pipeline thread shares with the rest of the daemon.
pub struct Shared<'a> {
    pub stats: &'a Stats,
    pub store: &'a mpsc::SyncSender<WriteOp>,
    pub reload: &'a Mutex<Option<(Arc<hapwatch_parsers::Parser>, Config)>>,
    pub wall: &'a crate::timezone::WallClock,
}

pub fn run(
    p: &mut Processor,
    rx: mpsc::Receiver<Batch>,
    shared: Shared<'_>,
    stats_interval: Duration,
    baseline: (Snapshot, i64),
) {
    let Shared {
        stats,
        store,
        reload,
        wall,
    } = shared;
    const TICK: Duration = Duration::from_secs(1);
    // The pipeline thread pets systemd's watchdog: a stuck pipeline gets restarted.
    let watchdog = super::os::watchdog_interval();
    let mut next_pet = Instant::now();
    let mut next_tick = Instant::now() + TICK;
    let mut next_stats = Instant::now() + stats_interval;
    let mut steps = crate::timezone::StepWatch::new(wall.now_ms(), Instant::now());
    // Taken before any socket is bound, so the first interval misses nothing.
    let (mut prev, mut prev_at) = baseline;
    let mut handled = 0u32;
    loop {
        // Grouped notifications are due between ticks: wake for them too.
        let group_due = p
            .next_group_deadline()
            .map(|t| Duration::from_millis((t - wall.now_ms()).max(0) as u64));
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(group_due.map_or(wait, |g| g.min(wait))) {
            Ok(batch) => {
                for m in batch.iter() {
                    p.handle(m.bytes, m.peer, batch.received_ms, m.oversized);
                }
                handled += 1;
                // Reading the clock costs; under load, look at it every 16 batches.
                if !handled.is_multiple_of(16) {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if p.next_group_deadline().is_some_and(|t| t <= wall.now_ms()) {
            p.flush_groups(wall.now_ms());
        }
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        next_tick = now + TICK;
        if let Some(delta_ms) = steps.check(wall.now_ms(), now) {
            tracing::warn!(
                step = %humantime::format_duration(Duration::from_secs((delta_ms.unsigned_abs() + 500) / 1000)),
                direction = %if delta_ms > 0 { "forward" } else { "back" },
                "system clock stepped; timers moved with it"
            );
            p.clock_stepped(delta_ms);
            stats
                .clock_steps
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(every) = watchdog {
            if now >= next_pet {
                super::os::notify(b"WATCHDOG=1");
                next_pet = now + every;
            }
        }
        if let Some((parser, config)) = reload.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.reconfigure(parser, &config);
            stats
                .reloads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("reloaded config applied to the pipeline");
        }
        p.tick(wall.now_ms());
        if now >= next_stats {
            next_stats = now + stats_interval;
            let at = wall.now_ms();
            let snap = stats.snapshot();
            report(&prev, &snap, (at, at - prev_at), store, stats);
            (prev, prev_at) = (snap, at);
        }
    }
    p.finish();
    let at = wall.now_ms();
    report(&prev, &stats.snapshot(), (at, at - prev_at), store, stats);
}

/// Logs one interval's counters and stores them as a row of `ingest_stats`.
/// `at`: (when, the interval's length), in wall-clock ms.
fn report(
    prev: &Snapshot,
    now: &Snapshot,
    (at_ms, interval_ms): (i64, i64),
    store: &mpsc::SyncSender<WriteOp>,
    stats: &Stats,
) {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let by_reason: serde_json::Map<String, serde_json::Value> = now
        .parse_errors
        .iter()
        .zip(&prev.parse_errors)
        .filter(|((_, n), (_, p))| n > p)
        .map(|((k, n), (_, p))| ((*k).to_owned(), (n - p).into()))
        .collect();
    let listeners: Vec<serde_json::Value> = now
        .listeners
        .iter()
        .map(|l| {
            let before = prev
                .listeners
                .iter()
                .find(|p| p.name == l.name)
                .cloned()
                .unwrap_or_default();
            serde_json::json!({
                "listener": l.name,
                "received": d(l.received, before.received),
                "bytes": d(l.bytes, before.bytes),
                "denied": d(l.denied, before.denied),
                "socket_drops": d(l.socket_drops, before.socket_drops),
            })
        })
        .collect();
    let row = IngestRow {
        ts_ms: at_ms,
        interval_ms,
        received: d(now.received, prev.received),
        bytes: d(now.bytes, prev.bytes),
        parsed: d(now.parsed, prev.parsed),
        traffic: d(now.traffic, prev.traffic),
        events: d(now.events, prev.events),
        parse_errors: d(now.parse_errors_total(), prev.parse_errors_total()),
        oversized: d(now.oversized, prev.oversized),
        denied: d(now.denied, prev.denied),
        queue_drops: d(now.queue_drops, prev.queue_drops),
        socket_drops: d(now.socket_drops, prev.socket_drops),
        rows_written: d(now.rows_written, prev.rows_written),
        detail: serde_json::json!({ "parse_errors": by_reason, "listeners": listeners })
            .to_string(),
    };
    tracing::info!(
        received = row.received, bytes = row.bytes, parsed = row.parsed, traffic = row.traffic,
        events = row.events, parse_errors = row.parse_errors, queue_drops = row.queue_drops,
        socket_drops = row.socket_drops, denied = row.denied, oversized = row.oversized,
        rows_written = row.rows_written, by_reason = %serde_json::Value::Object(by_reason),
        "ingest"
    );
    if let Some(sample) = stats.take_sample() {
        tracing::warn!(%sample, "a message hapwatch could not parse (one sample per interval)");
    }
    let _ = store.send(WriteOp::Ingest(row));
}

pub fn log_totals(s: &Snapshot) {
    tracing::info!(
        received = s.received, bytes = s.bytes, parsed = s.parsed, traffic = s.traffic,
        events = s.events, parse_errors = s.parse_errors_total(), queue_drops = s.queue_drops,
        socket_drops = s.socket_drops, denied = s.denied, oversized = s.oversized,
        rows_written = s.rows_written, write_errors = s.write_errors, rows_rejected = s.rows_rejected,
        tcp_refused = s.refused,
        notifications_failed = s.notifications_failed, by_reason = %s.parse_errors_text(","),
        "totals"
    );
}
