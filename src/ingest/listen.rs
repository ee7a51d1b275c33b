//! `--listen` URLs: `udp://HOST:PORT` today; `tcp://` and `unix://` are parsed so
//! the error says plainly that they are not served yet.

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Udp(SocketAddr),
}

pub const DEFAULT_LISTEN: &str = "udp://127.0.0.1:5140";

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?}: expected udp://HOST:PORT"))?;
        match scheme {
            "udp" => rest
                .parse()
                .map(Listen::Udp)
                .map_err(|e| format!("{s:?}: {e} (expected udp://HOST:PORT, IPv6 as [::1]:5140)")),
            "tcp" | "unix" => Err(format!(
                "{s:?}: {scheme} listeners are not implemented yet; use udp://"
            )),
            _ => Err(format!(
                "{s:?}: unknown scheme {scheme:?} (expected udp://)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udp_and_rejects_others_clearly() {
        assert_eq!(
            "udp://127.0.0.1:5140".parse::<Listen>(),
            Ok(Listen::Udp("127.0.0.1:5140".parse().unwrap()))
        );
        assert!("udp://[::1]:5140".parse::<Listen>().is_ok());
        assert!("tcp://127.0.0.1:5140"
            .parse::<Listen>()
            .unwrap_err()
            .contains("not implemented"));
        assert!("127.0.0.1:5140".parse::<Listen>().is_err());
        assert!("udp://localhost".parse::<Listen>().is_err());
    }
}
