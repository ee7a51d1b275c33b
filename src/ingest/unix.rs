//! A unix datagram socket, as HAProxy's `log /path/to/sock` writes to it.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;

use tokio::net::UnixDatagram;

use super::{Sink, MAX_MESSAGE};

/// Binds `path`, replacing a stale socket file (but never another kind of file).
/// The id of a group named in /etc/group.
pub fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Binds the socket file with `mode` (and `gid`). Its directory is created
/// 0750 when missing, and refused when anyone may replace the socket in it.
pub fn bind(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
    recv_buffer: usize,
) -> std::io::Result<(std::os::unix::net::UnixDatagram, usize)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
        }
        let dmode = std::fs::metadata(dir)?.permissions().mode();
        // World-writable without the sticky bit: anyone could swap the socket.
        if dmode & 0o002 != 0 && dmode & 0o1000 == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is writable by everyone (mode {:o}): put the socket in a directory of its own",
                    dir.display(),
                    dmode & 0o7777
                ),
            ));
        }
    }
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
    let sock = std::os::unix::net::UnixDatagram::bind(path)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let sref = socket2::SockRef::from(&sock);
    let _ = sref.set_recv_buffer_size(recv_buffer);
    let granted = sref.recv_buffer_size()?;
    sock.set_nonblocking(true)?;
    Ok((sock, granted))
}

pub async fn run(socket: std::os::unix::net::UnixDatagram, mut sink: Sink) {
    let socket = match UnixDatagram::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "unix socket cannot be used");
            return;
        }
    };
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
