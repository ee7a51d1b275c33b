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
        crate::config::HttpListen::Off => None,
        crate::config::HttpListen::Default => {
            match crate::http::bind(crate::config::DEFAULT_HTTP) {
                Ok(l) => Some(l),
                Err(e) => {
                    // Not asked for: another daemon (or anything) may hold it; alerting goes on.
                    tracing::warn!(addr = %crate::config::DEFAULT_HTTP, error = %e, "the console's default address cannot be bound: no console; set [http] listen");
                    None
                }
            }
        }
        crate::config::HttpListen::At(addr) => {
            let l = crate::http::bind(addr).map_err(|source| BindError::Http { addr, source })?;
            if !addr.ip().is_loopback() && !config.http.auth().required() {
                tracing::warn!(%addr, "the console and HTTP endpoints are reachable from the network with no [http] token or user/password");
            }
            Some(l)
        }
    };
    Ok(Bound { listeners, http })
}

fn bind_one(l: ListenerConfig) -> Result<BoundListener, BindError> {
    let configured = l.url();
    let io = |source| BindError::Listener {
        url: configured.to_string(),
        source,
    };
    if let Listen::Udp(addr) | Listen::Tcp(addr) = &configured {
        if !addr.ip().is_loopback() && l.allow().is_empty() {
            tracing::warn!(listen = %configured, "anyone who reaches this address can send logs (and forge DOWN/UP): set `allow` to HAProxy's networks");
        }
    }
    let (url, socket) = match &l {
        ListenerConfig::Udp {
            addr,
            recv_buffer,
            sockets,
            ..
        } => {
            let (sockets, granted) = udp::bind(*addr, *sockets, *recv_buffer).map_err(io)?;
            log_buffer(&configured, *recv_buffer, granted);
            let bound = sockets[0].local_addr().map_err(io)?;
            (Listen::Udp(bound), Socket::Udp(sockets))
        }
        ListenerConfig::Tcp { addr, .. } => {
            let listener = tcp::bind(*addr).map_err(io)?;
            let bound = listener.local_addr().map_err(io)?;
            (Listen::Tcp(bound), Socket::Tcp(listener))
        }
        ListenerConfig::Unix {
            path,
            recv_buffer,
            socket_mode,
            socket_group,
        } => {
            let gid = match socket_group {
                Some(g) => Some(unix::group_id(g).ok_or_else(|| BindError::NoGroup {
                    url: configured.to_string(),
                    group: g.clone(),
                })?),
                None => None,
            };
            let (socket, granted) =
                unix::bind(path, *socket_mode, gid, *recv_buffer).map_err(io)?;
            log_buffer(&configured, *recv_buffer, granted);
            (configured.clone(), Socket::Unix(socket, path.clone()))
        }
    };
    Ok(BoundListener {
        config: l,
        url,
        socket,
    })
}

fn log_buffer(url: &Listen, requested: usize, granted: usize) {
    // Linux reports twice the usable size it granted.
    if granted / 2 < requested {
        tracing::warn!(
            listen = %url, requested, granted = granted / 2,
            hint = %format!("sysctl -w net.core.rmem_max={requested}; to keep it, copy /usr/share/doc/hapwatch/examples/60-hapwatch-sysctl.conf into /etc/sysctl.d/"),
            "the kernel granted a smaller receive buffer than recv_buffer: raise net.core.rmem_max to avoid drops under bursts"
        );
    } else {
        tracing::info!(listen = %url, recv_buffer = granted / 2, "receive buffer");
    }
}
