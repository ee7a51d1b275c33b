//! Listener addresses (`udp://`, `tcp://`, `unix://`) and source allow-lists.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    /// A unix datagram socket, as HAProxy's `log /path/to/sock`.
    Unix(PathBuf),
}

pub const DEFAULT_LISTEN: &str = "udp://127.0.0.1:5140";

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Udp(a) => write!(f, "udp://{a}"),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
            Listen::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

const LISTEN_USAGE: &str = "expected udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH";

/// Why a listener URL is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenUrlError {
    #[error("{url:?}: {LISTEN_USAGE}")]
    NoScheme { url: String },
    #[error("{url:?}: {source} ({LISTEN_USAGE}; IPv6 as [::1]:5140)")]
    BadAddress {
        url: String,
        source: std::net::AddrParseError,
    },
    #[error("{url:?}: the socket path must be absolute ({LISTEN_USAGE})")]
    RelativePath { url: String },
    #[error("{url:?}: unknown scheme {scheme:?} ({LISTEN_USAGE})")]
    UnknownScheme { url: String, scheme: String },
}

impl std::str::FromStr for Listen {
    type Err = ListenUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = || s.to_owned();
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| ListenUrlError::NoScheme { url: url() })?;
        let addr = || {
            rest.parse::<SocketAddr>()
                .map_err(|source| ListenUrlError::BadAddress { url: url(), source })
        };
        match scheme {
            "udp" => addr().map(Listen::Udp),
            "tcp" => addr().map(Listen::Tcp),
            "unix" if rest.starts_with('/') => Ok(Listen::Unix(PathBuf::from(rest))),
            "unix" => Err(ListenUrlError::RelativePath { url: url() }),
            _ => Err(ListenUrlError::UnknownScheme {
                url: url(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// A source network such as `10.0.0.0/8` or `::1` (a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 sender on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why an `allow` entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not a network like 10.0.0.0/8 or ::1")]
    NotANetwork(String),
    #[error("{net:?}: the prefix length must be 0 to {max}")]
    Prefix { net: String, max: u8 },
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::NotANetwork(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| CidrError::Prefix {
                        net: s.to_owned(),
                        max,
                    })?
            }
        };
        Ok(Cidr { addr, prefix })
    }
}

/// An empty list allows every sender.
pub fn allowed(allow: &[Cidr], ip: IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            "udp://127.0.0.1:5140".parse::<Listen>(),
            Ok(Listen::Udp("127.0.0.1:5140".parse().unwrap()))
        );
        assert!(matches!(
            "tcp://[::1]:5140".parse::<Listen>(),
            Ok(Listen::Tcp(_))
        ));
        assert_eq!(
            "unix:///run/hapwatch/log.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/hapwatch/log.sock".into()))
        );
        assert!("unix://relative.sock".parse::<Listen>().is_err());
        assert!("127.0.0.1:5140".parse::<Listen>().is_err());
        assert!("udp://localhost".parse::<Listen>().is_err());
        let e = "http://127.0.0.1:1".parse::<Listen>().unwrap_err();
        assert!(matches!(&e, ListenUrlError::UnknownScheme { scheme, .. } if scheme == "http"));
        assert!(e.to_string().contains("unknown scheme"), "{e}");
    }

    #[test]
    fn allow_lists_match_networks() {
        let lan: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(lan.contains("10.1.200.3".parse().unwrap()));
        assert!(!lan.contains("10.2.0.1".parse().unwrap()));
        assert!(lan.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!(allowed(&[], "192.0.2.1".parse().unwrap()));
        assert!(!allowed(&[lan], "192.0.2.1".parse().unwrap()));
    }
}
