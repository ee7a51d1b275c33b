//! TCP syslog (rsyslog's `omfwd` with `protocol="tcp"`, HAProxy's `log tcp@`).

use std::net::SocketAddr;

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::framing::Framer;
use super::listen::{allowed, Cidr};
use super::{Sink, MAX_MESSAGE};

/// Binds before any runtime exists; `run` adopts the listener.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What one listener lets its peers hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; more are refused (closed at once) and counted.
    pub connections: usize,
    /// A connection that sends nothing this long is closed.
    pub idle: std::time::Duration,
}

/// A connection's read buffer: small, since thousands may be open.
const READ_BUF: usize = 16 * 1024;

/// Accepts connections until the pipeline is gone; one task per connection.
pub async fn run(listener: std::net::TcpListener, allow: Vec<Cidr>, sink: Sink, limits: Limits) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "TCP listener cannot be used");
            return;
        }
    };
    let mut conns = tokio::task::JoinSet::new();
    let mut refused = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !allowed(&allow, peer.ip()) {
            sink.deny();
            continue;
        }
        while conns.try_join_next().is_some() {}
        if conns.len() >= limits.connections {
            if refused == 0 {
                tracing::warn!(limit = limits.connections, %peer, "too many TCP connections ([limits] tcp_connections): refusing new ones");
            }
            refused += 1;
            sink.refuse();
            continue;
        }
        conns.spawn(connection(stream, peer, sink.clone(), limits.idle));
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    mut sink: Sink,
    idle: std::time::Duration,
) {
    tracing::debug!(%peer, "TCP sender connected");
    let mut framer = Framer::new(MAX_MESSAGE);
    let mut buf = vec![0u8; READ_BUF];
    let mut frames = Vec::new();
    loop {
        let n = match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TCP read failed");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, "TCP sender idle too long; closed");
                break;
            }
        };
        framer.push(&buf[..n], &mut frames);
        for f in frames.drain(..) {
            if !sink.push(Some(peer.ip()), &f.bytes, f.oversized) {
                return;
            }
        }
        if !sink.flush() {
            return;
        }
    }
    framer.finish(&mut frames);
    for f in frames.drain(..) {
        sink.push(Some(peer.ip()), &f.bytes, f.oversized);
    }
    sink.flush();
    tracing::debug!(%peer, "TCP sender disconnected");
}
