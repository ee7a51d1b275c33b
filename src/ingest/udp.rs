//! The UDP syslog source: one datagram is one message. Several sockets can
//! share a port with SO_REUSEPORT so the kernel spreads senders across them.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::listen::{allowed, Cidr};
use super::{Sink, MAX_MESSAGE};

/// Binds `count` sockets to `addr` (port 0: one free port for all) with the
/// requested receive buffer. Returns them with the buffer the kernel granted.
/// They are std sockets, bound before any runtime exists; `run` adopts them.
pub fn bind(
    addr: SocketAddr,
    count: usize,
    recv_buffer: usize,
) -> std::io::Result<(Vec<std::net::UdpSocket>, usize)> {
    let mut sockets = Vec::new();
    let mut addr = addr;
    let mut granted = 0;
    for _ in 0..count {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if count > 1 {
            s.set_reuse_port(true)?;
        }
        // The kernel caps this at net.core.rmem_max; the caller logs what it got.
        let _ = s.set_recv_buffer_size(recv_buffer);
        granted = s.recv_buffer_size()?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        addr = std.local_addr()?;
        sockets.push(std);
    }
    Ok((sockets, granted))
}

/// Reads datagrams until the pipeline is gone: everything the socket holds
/// is read before the batch is queued.
pub async fn run(socket: std::net::UdpSocket, allow: Vec<Cidr>, mut sink: Sink) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "UDP socket cannot be used");
            return;
        }
    };
    // One byte more than the largest datagram tells a cut one from a full one.
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        if let Err(e) = socket.readable().await {
            tracing::warn!(error = %e, "UDP socket failed");
            return;
        }
        // Under sustained load the socket is never empty: give other tasks a turn now and then.
        for _ in 0..4096 {
            let (n, peer) = match socket.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "UDP receive failed");
                    break;
                }
            };
            if !allowed(&allow, peer.ip()) {
                sink.deny();
                continue;
            }
            if !sink.push(Some(peer.ip()), &buf[..n.min(MAX_MESSAGE)], n > MAX_MESSAGE) {
                return;
            }
        }
        if !sink.flush() {
            return;
        }
    }
}
