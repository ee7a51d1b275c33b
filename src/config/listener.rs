//! `[[listen]]`: where syslog arrives. What a listener takes depends on its
//! URL's scheme, so it is one variant per scheme; a key of another scheme
//! (`sockets` on tcp://, `allow` on unix://) is an error at its table, in
//! `check-config` exactly as in `serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::ingest::listen::{Cidr, Listen};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawListener")]
pub enum ListenerConfig {
    Udp {
        addr: SocketAddr,
        /// Source networks allowed to send; empty allows everyone.
        allow: Vec<Cidr>,
        /// Requested SO_RCVBUF in bytes; the kernel may grant less.
        recv_buffer: usize,
        /// Sockets bound to the same address with SO_REUSEPORT.
        sockets: usize,
    },
    Tcp {
        addr: SocketAddr,
        allow: Vec<Cidr>,
    },
    Unix {
        path: PathBuf,
        recv_buffer: usize,
        /// Permissions of the socket file (default 0660).
        socket_mode: u32,
        /// The group that owns it (e.g. "haproxy"), so its writers need no more.
        socket_group: Option<String>,
    },
}

impl ListenerConfig {
    /// A listener with every default (`serve --listen URL`).
    pub fn new(url: Listen) -> Self {
        match url {
            Listen::Udp(addr) => ListenerConfig::Udp {
                addr,
                allow: Vec::new(),
                recv_buffer: DEFAULT_RECV_BUFFER,
                sockets: 1,
            },
            Listen::Tcp(addr) => ListenerConfig::Tcp {
                addr,
                allow: Vec::new(),
            },
            Listen::Unix(path) => ListenerConfig::Unix {
                path,
                recv_buffer: DEFAULT_RECV_BUFFER,
                socket_mode: DEFAULT_SOCKET_MODE,
                socket_group: None,
            },
        }
    }

    pub fn url(&self) -> Listen {
        match self {
            ListenerConfig::Udp { addr, .. } => Listen::Udp(*addr),
            ListenerConfig::Tcp { addr, .. } => Listen::Tcp(*addr),
            ListenerConfig::Unix { path, .. } => Listen::Unix(path.clone()),
        }
    }

    /// Who may send (a unix socket's file mode says that instead).
    pub fn allow(&self) -> &[Cidr] {
        match self {
            ListenerConfig::Udp { allow, .. } | ListenerConfig::Tcp { allow, .. } => allow,
            ListenerConfig::Unix { .. } => &[],
        }
    }
}

const DEFAULT_RECV_BUFFER: usize = 8 << 20;
/// Owner and group only: anyone who can write to it can forge DOWN and UP.
const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// A key given for a scheme it does not apply to.
#[derive(Debug, thiserror::Error)]
#[error("{url}: `{key}` applies to {applies} listeners only")]
pub struct WrongScheme {
    url: String,
    key: &'static str,
    applies: &'static str,
}

/// The table as written, before its scheme says which keys it may have.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    #[serde(deserialize_with = "listen_url")]
    url: Listen,
    #[serde(default, deserialize_with = "some_cidrs")]
    allow: Option<Vec<Cidr>>,
    recv_buffer: Option<usize>,
    #[serde(default, deserialize_with = "some_positive")]
    sockets: Option<usize>,
    #[serde(default, deserialize_with = "some_octal_mode")]
    socket_mode: Option<u32>,
    socket_group: Option<String>,
}

impl TryFrom<RawListener> for ListenerConfig {
    type Error = WrongScheme;

    fn try_from(r: RawListener) -> Result<Self, WrongScheme> {
        let refuse = |key, set: bool, applies| match set {
            true => Err(WrongScheme {
                url: r.url.to_string(),
                key,
                applies,
            }),
            false => Ok(()),
        };
        Ok(match &r.url {
            Listen::Udp(addr) => {
                refuse("socket_mode", r.socket_mode.is_some(), "unix://")?;
                refuse("socket_group", r.socket_group.is_some(), "unix://")?;
                ListenerConfig::Udp {
                    addr: *addr,
                    allow: r.allow.unwrap_or_default(),
                    recv_buffer: r.recv_buffer.unwrap_or(DEFAULT_RECV_BUFFER),
                    sockets: r.sockets.unwrap_or(1),
                }
            }
            Listen::Tcp(addr) => {
                refuse("recv_buffer", r.recv_buffer.is_some(), "udp:// and unix://")?;
                refuse("sockets", r.sockets.is_some(), "udp://")?;
                refuse("socket_mode", r.socket_mode.is_some(), "unix://")?;
                refuse("socket_group", r.socket_group.is_some(), "unix://")?;
                ListenerConfig::Tcp {
                    addr: *addr,
                    allow: r.allow.unwrap_or_default(),
                }
            }
            Listen::Unix(path) => {
                // Who may write to the socket is its file mode and group
                // (an empty list says nothing, and is accepted).
                let allows = r.allow.as_ref().is_some_and(|a| !a.is_empty());
                refuse("allow", allows, "udp:// and tcp://")?;
                refuse("sockets", r.sockets.is_some(), "udp://")?;
                ListenerConfig::Unix {
                    path: path.clone(),
                    recv_buffer: r.recv_buffer.unwrap_or(DEFAULT_RECV_BUFFER),
                    socket_mode: r.socket_mode.unwrap_or(DEFAULT_SOCKET_MODE),
                    socket_group: r.socket_group,
                }
            }
        })
    }
}

fn listen_url<'de, D: Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn some_cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cidr>>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn some_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    super::positive(d).map(Some)
}

fn some_octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let s = String::deserialize(d)?;
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a file mode like \"0660\"")))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_key_of_another_scheme_is_refused_at_its_table() {
        for (table, key) in [
            (
                "url = \"unix:///run/hapwatch/log.sock\"\nallow = [\"10.0.0.0/8\"]",
                "allow",
            ),
            ("url = \"tcp://127.0.0.1:5140\"\nsockets = 2", "sockets"),
            (
                "url = \"udp://127.0.0.1:5140\"\nsocket_mode = \"0600\"",
                "socket_mode",
            ),
        ] {
            let text = format!("[daemon]\nqueue = 10\n\n[[listen]]\n{table}\n");
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}` applies to")), "{e}");
            assert!(e.contains("line 4"), "the table's line: {e}");
        }
        let c = Config::from_toml(
            "[[listen]]\nurl = \"udp://127.0.0.1:0\"\nsockets = 2\nallow = [\"127.0.0.0/8\"]\n",
        )
        .unwrap();
        assert!(matches!(
            c.listen[0],
            super::ListenerConfig::Udp { sockets: 2, .. }
        ));
    }
}
