//! A unix datagram socket, as HAProxy's `log /path/to/sock` writes to it.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;

use tokio::net::UnixDatagram;

use super::{Sink, MAX_MESSAGE};

/// Binds `path`, replacing a stale socket file (but never another kind of file).
pub fn bind(path: &Path, mode: u32, recv_buffer: usize) -> std::io::Result<(UnixDatagram, usize)> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let sock = std::os::unix::net::UnixDatagram::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let sref = socket2::SockRef::from(&sock);
    let _ = sref.set_recv_buffer_size(recv_buffer);
    let granted = sref.recv_buffer_size()?;
    sock.set_nonblocking(true)?;
    Ok((UnixDatagram::from_std(sock)?, granted))
}

pub async fn run(socket: UnixDatagram, mut sink: Sink) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        if let Err(e) = socket.readable().await {
            tracing::warn!(error = %e, "unix socket failed");
            return;
        }
        for _ in 0..4096 {
            let n = match socket.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "unix socket receive failed");
                    break;
                }
            };
            if !sink.push(None, &buf[..n.min(MAX_MESSAGE)], n > MAX_MESSAGE) {
                return;
            }
        }
        if !sink.flush() {
            return;
        }
    }
}
