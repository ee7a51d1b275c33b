//! Sources: sockets in, raw messages out, with drop accounting. A source
//! never blocks on the pipeline: when the queue is full, it counts and drops.

pub mod framing;
pub mod kernel;
pub mod listen;
pub mod tcp;
pub mod udp;
pub mod unix;

use std::net::IpAddr;
use std::sync::mpsc::{SyncSender, TrySendError};

use std::sync::Arc;

use crate::counters::{ListenerStats, Stats};

/// Messages received together: one buffer, one clock reading and one queue
/// slot per batch rather than per message, which is what lets a socket task
/// keep up with ~190k datagrams/s without waking the parser for each.
#[derive(Debug, Default)]
pub struct Batch {
    pub received_ms: i64,
    data: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    /// None for a local unix socket.
    peer: Option<IpAddr>,
    start: usize,
    len: usize,
    /// The message was cut: it filled the receive buffer or passed the frame limit.
    oversized: bool,
}

/// One message of a batch: who sent it (the host identity when the header has
/// none), its bytes, and whether it was cut.
pub struct Message<'a> {
    pub peer: Option<IpAddr>,
    pub bytes: &'a [u8],
    pub oversized: bool,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a message; the first of a batch sets its receive time from `wall`.
    pub fn push(
        &mut self,
        peer: Option<IpAddr>,
        bytes: &[u8],
        oversized: bool,
        wall: &crate::timezone::WallClock,
    ) {
        if self.entries.is_empty() {
            self.received_ms = wall.now_ms();
        }
        self.entries.push(Entry {
            peer,
            start: self.data.len(),
            len: bytes.len(),
            oversized,
        });
        self.data.extend_from_slice(bytes);
    }

    pub fn iter(&self) -> impl Iterator<Item = Message<'_>> {
        self.entries.iter().map(|e| Message {
            peer: e.peer,
            bytes: &self.data[e.start..e.start + e.len],
            oversized: e.oversized,
        })
    }
}

/// Largest message: a UDP payload, and the TCP frame limit.
pub const MAX_MESSAGE: usize = 65_535;
/// A batch is sent when it holds this many messages or bytes, or the socket has nothing more.
pub const BATCH_MESSAGES: usize = 64;
const BATCH_BYTES: usize = 256 * 1024;

/// Where a source puts what it accepted from the network; one per task.
pub struct Sink {
    tx: SyncSender<Batch>,
    stats: Arc<Stats>,
    pub listener: Arc<ListenerStats>,
    batch: Batch,
    wall: crate::timezone::WallClock,
}

impl Clone for Sink {
    fn clone(&self) -> Self {
        Sink::new(
            self.tx.clone(),
            self.stats.clone(),
            self.listener.clone(),
            self.wall.clone(),
        )
    }
}

impl Sink {
    pub fn new(
        tx: SyncSender<Batch>,
        stats: Arc<Stats>,
        listener: Arc<ListenerStats>,
        wall: crate::timezone::WallClock,
    ) -> Sink {
        Sink {
            tx,
            stats,
            listener,
            batch: Batch::default(),
            wall,
        }
    }

    /// Counts and batches one message; false once the pipeline is gone.
    pub fn push(&mut self, peer: Option<IpAddr>, bytes: &[u8], oversized: bool) -> bool {
        self.stats.datagram(&self.listener, bytes.len());
        self.batch.push(peer, bytes, oversized, &self.wall);
        if self.batch.len() >= BATCH_MESSAGES || self.batch.data.len() >= BATCH_BYTES {
            return self.flush();
        }
        true
    }

    /// Queues the batch without waiting: when the queue is full, its messages
    /// are dropped and counted. False once the pipeline is gone.
    pub fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        match self.tx.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.stats.queue_drops(n);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn deny(&self) {
        self.stats.denied(&self.listener);
    }

    /// A connection refused over the listener's limit.
    pub fn refuse(&self) {
        self.stats
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
