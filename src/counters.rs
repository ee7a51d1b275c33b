//! The daemon's own counters, shared by the ingest, parse and store stages.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hapwatch_parsers::ErrorKind;

/// Counters of one listener.
#[derive(Default)]
pub struct ListenerStats {
    pub name: String,
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    /// From senders outside the allow-list.
    pub denied: AtomicU64,
    /// Inodes of this listener's UDP sockets, to read the kernel's drop counts.
    pub udp_inodes: Mutex<Vec<u64>>,
    /// The highest drop count read: the kernel forgets it when the socket closes.
    drops_seen: AtomicU64,
}

#[derive(Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    pub queue_drops: AtomicU64,
    pub denied: AtomicU64,
    pub parsed: AtomicU64,
    pub traffic: AtomicU64,
    pub events: AtomicU64,
    pub oversized: AtomicU64,
    pub rows_written: Arc<AtomicU64>,
    pub write_errors: Arc<AtomicU64>,
    /// TCP connections refused over `[limits] tcp_connections`.
    pub refused: AtomicU64,
    /// Rows SQLite refused on their own (the rest of their batch was kept).
    pub rows_rejected: Arc<AtomicU64>,
    /// Why the store cannot be used any more (corrupt, read-only, deleted…).
    pub store_error: Arc<Mutex<Option<String>>>,
    /// Notifications given up: a permanent error, expiry, or a removed channel.
    pub notifications_failed: Arc<AtomicU64>,
    /// System clock steps the pipeline noticed (and moved its timers by).
    pub clock_steps: AtomicU64,
    /// Traffic lines counted under `_overflow`: more names or routes than
    /// `[limits] routes` allows.
    pub over_limits: AtomicU64,
    /// Silences in force now, as the pipeline last read them.
    pub silences_active: AtomicU64,
    /// Maintenance windows on now (the config's and the CLI's).
    pub maintenance_active: AtomicU64,
    /// Reloaded configs the pipeline has applied (SIGHUP).
    pub reloads: AtomicU64,
    /// A batch failed to write and is held for a retry (locked, disk full).
    pub store_retrying: Arc<AtomicBool>,
    /// When the outbox task last went round its loop (wall ms): at least each second.
    pub outbox_ran_ms: Arc<AtomicI64>,
    /// `[heartbeat]` requests answered 2xx, failed, and withheld (unhealthy).
    pub heartbeats_sent: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    pub heartbeats_withheld: AtomicU64,
    /// Open alerts posted again to Alertmanager channels, and posts that failed.
    pub alertmanager_reposts: AtomicU64,
    pub alertmanager_repost_failures: AtomicU64,
    /// Nodes sharing a store: decisions not committed because another node
    /// had taken the lease, events another node had stored already, and
    /// windows another node counted.
    pub decisions_fenced: Arc<AtomicU64>,
    pub events_duplicate: Arc<AtomicU64>,
    pub windows_peer: Arc<AtomicU64>,
    /// Failing open: writes kept in the local spool while the shared store
    /// did not answer, and what merging them back found.
    pub spool: Arc<crate::store::spool::SpoolCounters>,
    parse_errors: [AtomicU64; ErrorKind::ALL.len()],
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
    /// One bad message per interval, kept to show the operator what was refused.
    sample: Mutex<Option<String>>,
}

impl Stats {
    /// What the writer thread counts into.
    pub fn writer_counters(&self) -> crate::store::writer::WriterCounters {
        crate::store::writer::WriterCounters {
            rows_written: self.rows_written.clone(),
            write_errors: self.write_errors.clone(),
            rows_rejected: self.rows_rejected.clone(),
            store_error: self.store_error.clone(),
            retrying: self.store_retrying.clone(),
            stop_by: Default::default(),
            cluster: None,
            decisions_fenced: self.decisions_fenced.clone(),
            events_duplicate: self.events_duplicate.clone(),
            windows_peer: self.windows_peer.clone(),
            spool: self.spool.clone(),
        }
    }

    pub fn store_error(&self) -> Option<String> {
        self.store_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_store_error(&self, error: String) {
        *self.store_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }
}

/// A point-in-time copy, for logging, storing and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub received: u64,
    pub bytes: u64,
    pub queue_drops: u64,
    pub denied: u64,
    pub socket_drops: u64,
    pub parsed: u64,
    pub traffic: u64,
    pub events: u64,
    pub oversized: u64,
    pub rows_written: u64,
    pub write_errors: u64,
    pub refused: u64,
    pub rows_rejected: u64,
    pub notifications_failed: u64,
    pub clock_steps: u64,
    pub reloads: u64,
    pub store_retrying: bool,
    /// Open alerts posted again to Alertmanager (sent, failed).
    pub alertmanager_reposts: (u64, u64),
    pub parse_errors: Vec<(&'static str, u64)>,
    pub listeners: Vec<ListenerSnapshot>,
}

/// One listener's counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    /// Its URL as configured.
    pub name: String,
    pub received: u64,
    pub bytes: u64,
    pub denied: u64,
    /// What the kernel dropped on its UDP sockets.
    pub socket_drops: u64,
}

impl Snapshot {
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.iter().map(|(_, n)| n).sum()
    }

    /// `reason:count` of the reasons seen, joined by `sep`.
    pub fn parse_errors_text(&self, sep: &str) -> String {
        let seen: Vec<String> = self
            .parse_errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        seen.join(sep)
    }
}

impl Stats {
    pub fn listener(&self, name: String) -> Arc<ListenerStats> {
        let l = Arc::new(ListenerStats {
            name,
            ..Default::default()
        });
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(l.clone());
        l
    }

    pub fn datagram(&self, listener: &ListenerStats, len: usize) {
        self.received.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len as u64, Relaxed);
        listener.received.fetch_add(1, Relaxed);
        listener.bytes.fetch_add(len as u64, Relaxed);
    }

    pub fn denied(&self, listener: &ListenerStats) {
        self.denied.fetch_add(1, Relaxed);
        listener.denied.fetch_add(1, Relaxed);
    }

    pub fn queue_drops(&self, n: u64) {
        self.queue_drops.fetch_add(n, Relaxed);
    }

    pub fn oversized(&self) {
        self.oversized.fetch_add(1, Relaxed);
    }

    /// Messages that parsed, traffic lines and events apart. The parse stage
    /// adds them in batches: per-message atomics shared with the socket
    /// tasks cost more than the parse.
    pub fn add_parsed(&self, traffic: u64, events: u64) {
        self.parsed.fetch_add(traffic + events, Relaxed);
        self.traffic.fetch_add(traffic, Relaxed);
        self.events.fetch_add(events, Relaxed);
    }

    pub fn parse_error(&self, kind: ErrorKind, sample: impl FnOnce() -> String) {
        let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.parse_errors[i].fetch_add(1, Relaxed);
        let mut s = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some(sample());
        }
    }

    pub fn take_sample(&self) -> Option<String> {
        self.sample.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn snapshot(&self) -> Snapshot {
        let listeners: Vec<ListenerSnapshot> = self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| {
                let inodes = l
                    .udp_inodes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let drops = crate::ingest::kernel::udp_drops(&inodes);
                ListenerSnapshot {
                    name: l.name.clone(),
                    received: l.received.load(Relaxed),
                    bytes: l.bytes.load(Relaxed),
                    denied: l.denied.load(Relaxed),
                    socket_drops: l.drops_seen.fetch_max(drops, Relaxed).max(drops),
                }
            })
            .collect();
        Snapshot {
            received: self.received.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            queue_drops: self.queue_drops.load(Relaxed),
            denied: self.denied.load(Relaxed),
            socket_drops: listeners.iter().map(|l| l.socket_drops).sum(),
            parsed: self.parsed.load(Relaxed),
            traffic: self.traffic.load(Relaxed),
            events: self.events.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            rows_written: self.rows_written.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            rows_rejected: self.rows_rejected.load(Relaxed),
            refused: self.refused.load(Relaxed),
            notifications_failed: self.notifications_failed.load(Relaxed),
            clock_steps: self.clock_steps.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            store_retrying: self.store_retrying.load(Relaxed),
            alertmanager_reposts: (
                self.alertmanager_reposts.load(Relaxed),
                self.alertmanager_repost_failures.load(Relaxed),
            ),
            parse_errors: ErrorKind::ALL
                .iter()
                .zip(&self.parse_errors)
                .map(|(k, n)| (k.as_str(), n.load(Relaxed)))
                .collect(),
            listeners,
        }
    }
}
