//! TCP syslog (rsyslog's `omfwd` with `protocol="tcp"`, HAProxy's `log tcp@`).

use std::net::SocketAddr;

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::framing::Framer;
use super::listen::{allowed, Cidr};
use super::{Sink, MAX_MESSAGE};

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections until the pipeline is gone; one task per connection.
pub async fn run(listener: TcpListener, allow: Vec<Cidr>, sink: Sink) {
    let mut conns = tokio::task::JoinSet::new();
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
        conns.spawn(connection(stream, peer, sink.clone()));
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, mut sink: Sink) {
    tracing::debug!(%peer, "TCP sender connected");
    let mut framer = Framer::new(MAX_MESSAGE);
    let mut buf = vec![0u8; 64 * 1024];
    let mut frames = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TCP read failed");
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
