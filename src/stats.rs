//! The daemon's own counters, shared by the ingest and parse stages.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use hapwatch_parsers::ErrorKind;

#[derive(Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub bytes: AtomicU64,
    pub queue_drops: AtomicU64,
    pub parsed: AtomicU64,
    pub traffic: AtomicU64,
    pub events: AtomicU64,
    pub oversized: AtomicU64,
    parse_errors: [AtomicU64; ErrorKind::ALL.len()],
    /// One bad message per interval, kept to show the operator what was refused.
    sample: Mutex<Option<String>>,
}

/// A point-in-time copy, for logging and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub received: u64,
    pub bytes: u64,
    pub queue_drops: u64,
    pub parsed: u64,
    pub traffic: u64,
    pub events: u64,
    pub oversized: u64,
    pub parse_errors: Vec<(&'static str, u64)>,
}

impl Snapshot {
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.iter().map(|(_, n)| n).sum()
    }
}

impl Stats {
    pub fn datagram(&self, len: usize) {
        self.received.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len as u64, Relaxed);
    }

    pub fn queue_drop(&self) {
        self.queue_drops.fetch_add(1, Relaxed);
    }

    pub fn oversized(&self) {
        self.oversized.fetch_add(1, Relaxed);
    }

    /// A message that parsed: traffic lines and events are counted apart.
    pub fn parsed(&self, traffic: bool) {
        self.parsed.fetch_add(1, Relaxed);
        let counter = if traffic { &self.traffic } else { &self.events };
        counter.fetch_add(1, Relaxed);
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
        Snapshot {
            received: self.received.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            queue_drops: self.queue_drops.load(Relaxed),
            parsed: self.parsed.load(Relaxed),
            traffic: self.traffic.load(Relaxed),
            events: self.events.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            parse_errors: ErrorKind::ALL
                .iter()
                .zip(&self.parse_errors)
                .map(|(k, n)| (k.as_str(), n.load(Relaxed)))
                .collect(),
        }
    }
}
