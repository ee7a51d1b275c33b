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

use crate::stats::{ListenerStats, Stats};

/// One received message and who sent it (the host identity when the header has none).
#[derive(Debug)]
pub struct RawMessage {
    /// None for a local unix socket.
    pub peer: Option<IpAddr>,
    pub bytes: Vec<u8>,
    /// The message was cut: it filled the receive buffer or passed the frame limit.
    pub oversized: bool,
    pub received_ms: i64,
}

/// Largest message: a UDP payload, and the TCP frame limit.
pub const MAX_MESSAGE: usize = 65_535;

/// What a source does with each message it accepted from the network.
#[derive(Clone)]
pub struct Sink {
    pub tx: SyncSender<RawMessage>,
    pub stats: std::sync::Arc<Stats>,
    pub listener: std::sync::Arc<ListenerStats>,
}

impl Sink {
    /// Counts and queues one message; false once the pipeline is gone.
    pub fn deliver(&self, peer: Option<IpAddr>, bytes: &[u8], oversized: bool) -> bool {
        self.stats.datagram(&self.listener, bytes.len());
        let msg = RawMessage {
            peer,
            bytes: bytes.to_vec(),
            oversized,
            received_ms: crate::timezone::now_ms(),
        };
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.stats.queue_drop();
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn deny(&self) {
        self.stats.denied(&self.listener);
    }
}
