//! The UDP syslog source: one datagram is one message.

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// One received datagram and who sent it (the host identity when the header has none).
#[derive(Debug)]
pub struct RawMessage {
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
    /// The datagram filled the receive buffer: it was probably cut by the kernel.
    pub oversized: bool,
}

/// Largest UDP payload; HAProxy's `len` tops out at 65535.
const MAX_DATAGRAM: usize = 65_535;

pub async fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(addr).await
}

/// Reads datagrams until the channel closes. When the pipeline falls behind,
/// datagrams are dropped and counted rather than blocking the socket.
pub async fn run(socket: UdpSocket, tx: mpsc::Sender<RawMessage>, stats: &crate::stats::Stats) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                continue;
            }
        };
        stats.datagram(n);
        let msg = RawMessage {
            peer,
            bytes: buf[..n.min(MAX_DATAGRAM)].to_vec(),
            oversized: n > MAX_DATAGRAM,
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => stats.queue_drop(),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
