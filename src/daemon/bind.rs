//! Every listener bound before the daemon starts, as std sockets: `serve`
//! binds the configured addresses, a test binds port 0, and `Daemon::start`
//! adopts whatever it is handed.

use crate::config::{Config, ListenerConfig};
use crate::ingest::listen::Listen;
use crate::ingest::{tcp, udp, unix};

pub enum Socket {
    /// One or more sockets on one port (SO_REUSEPORT).
    Udp(Vec<std::net::UdpSocket>),
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixDatagram, std::path::PathBuf),
}

pub struct BoundListener {
    pub config: ListenerConfig,
    /// Where it listens, with port 0 made real.
    pub url: Listen,
    pub socket: Socket,
}

/// What a daemon receives on.
pub struct Bound {
    pub listeners: Vec<BoundListener>,
    /// `[http] listen`, when set.
    pub http: Option<std::net::TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot bind {url}: {source}")]
    Listener { url: String, source: std::io::Error },
    #[error("{url}: socket_group {group:?} is not a group on this machine")]
    NoGroup { url: String, group: String },
    #[error("cannot bind the HTTP server on {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Binds every listener of `config` and its HTTP address.
pub fn bind(config: &Config) -> Result<Bound, BindError> {
    let mut listeners = Vec::new();
    for l in config.listeners() {
        listeners.push(bind_one(l)?);
    }
    let http = match config.http.listen {
        Some(addr) => {
            let l = crate::http::bind(addr).map_err(|source| BindError::Http { addr, source })?;
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "the HTTP endpoints are reachable from the network");
            }
            Some(l)
        }
        None => None,
    };
    Ok(Bound { listeners, http })
}

fn bind_one(l: ListenerConfig) -> Result<BoundListener, BindError> {
    let io = |source| BindError::Listener {
        url: l.url.to_string(),
        source,
    };
    if let Listen::Udp(addr) | Listen::Tcp(addr) = &l.url {
        if !addr.ip().is_loopback() && l.allow.is_empty() {
            tracing::warn!(listen = %l.url, "anyone who reaches this address can send logs (and forge DOWN/UP): set `allow` to HAProxy's networks");
        }
    }
    let (url, socket) = match &l.url {
        Listen::Udp(addr) => {
            let (sockets, granted) = udp::bind(*addr, l.sockets, l.recv_buffer).map_err(io)?;
            log_buffer(&l, granted);
            let bound = sockets[0].local_addr().map_err(io)?;
            (Listen::Udp(bound), Socket::Udp(sockets))
        }
        Listen::Tcp(addr) => {
            let listener = tcp::bind(*addr).map_err(io)?;
            let bound = listener.local_addr().map_err(io)?;
            (Listen::Tcp(bound), Socket::Tcp(listener))
        }
        Listen::Unix(path) => {
            let gid = match &l.socket_group {
                Some(g) => Some(unix::group_id(g).ok_or_else(|| BindError::NoGroup {
                    url: l.url.to_string(),
                    group: g.clone(),
                })?),
                None => None,
            };
            let (socket, granted) =
                unix::bind(path, l.socket_mode, gid, l.recv_buffer).map_err(io)?;
            log_buffer(&l, granted);
            (l.url.clone(), Socket::Unix(socket, path.clone()))
        }
    };
    Ok(BoundListener {
        config: l,
        url,
        socket,
    })
}

fn log_buffer(l: &ListenerConfig, granted: usize) {
    // Linux reports twice the usable size it granted.
    if granted / 2 < l.recv_buffer {
        tracing::warn!(
            listen = %l.url, requested = l.recv_buffer, granted = granted / 2,
            hint = %format!("sysctl -w net.core.rmem_max={}; to keep it, copy /usr/share/doc/hapwatch/examples/60-hapwatch-sysctl.conf into /etc/sysctl.d/", l.recv_buffer),
            "the kernel granted a smaller receive buffer than recv_buffer: raise net.core.rmem_max to avoid drops under bursts"
        );
    } else {
        tracing::info!(listen = %l.url, recv_buffer = granted / 2, "receive buffer");
    }
}
