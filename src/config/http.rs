//! `[http]`: the console and the status endpoints. On by default on
//! loopback, so the first run has a page to open; `listen = ""` turns it off.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer};

use crate::notify::secret::Secret;

/// Where the console listens when the config does not say.
pub const DEFAULT_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9140);

/// `[http] listen`: not written, an address, or `""`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpListen {
    /// Not in the config: 127.0.0.1:9140, given up with a warning if taken
    /// (a second daemon on the box should still alert).
    #[default]
    Default,
    /// Written: a failure to bind it stops the daemon.
    At(SocketAddr),
    Off,
}

impl HttpListen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            HttpListen::Default => Some(DEFAULT_HTTP),
            HttpListen::At(a) => Some(a),
            HttpListen::Off => None,
        }
    }
}

impl std::str::FromStr for HttpListen {
    type Err = String;

    /// An address, or `""` for no HTTP (in the config and `serve --http`).
    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(HttpListen::Off);
        }
        text.parse().map(HttpListen::At).map_err(|_| {
            format!(
                "{text:?} is not an address: write HOST:PORT (\"127.0.0.1:9140\"), or \"\" for no HTTP"
            )
        })
    }
}

impl<'de> Deserialize<'de> for HttpListen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[http]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: HttpListen,
    /// `Authorization: Bearer TOKEN` is required on every path (scripts, Prometheus).
    pub token: Option<Secret>,
    /// Basic-auth credentials (a browser asks for them); with `password`.
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// What a request must carry, when anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpAuth {
    token: Option<Secret>,
    basic: Option<(String, Secret)>,
}

impl HttpConfig {
    pub fn auth(&self) -> HttpAuth {
        HttpAuth {
            token: self.token.clone(),
            basic: match (&self.user, &self.password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                _ => None,
            },
        }
    }

    /// `user` and `password` go together, and no credential is empty (an
    /// empty `env:` variable would let every request in).
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        for (key, secret) in [("token", &self.token), ("password", &self.password)] {
            if secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
                return Err(super::ConfigError::HttpEmpty(key));
            }
        }
        match &self.user {
            Some(u) if u.is_empty() => return Err(super::ConfigError::HttpEmpty("user")),
            Some(u) if u.contains(':') => return Err(super::ConfigError::HttpUserColon),
            _ => {}
        }
        match (&self.user, &self.password) {
            (Some(_), None) => Err(super::ConfigError::HttpNeeds("password", "user")),
            (None, Some(_)) => Err(super::ConfigError::HttpNeeds("user", "password")),
            _ => Ok(()),
        }
    }
}

impl HttpAuth {
    pub fn required(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// What a 401 says it wants: basic (so a browser asks), else a bearer token.
    pub fn challenge(&self) -> Option<&'static str> {
        match (&self.basic, &self.token) {
            (Some(_), _) => Some("Basic realm=\"hapwatch\", charset=\"UTF-8\""),
            (None, Some(_)) => Some("Bearer realm=\"hapwatch\""),
            (None, None) => None,
        }
    }

    /// Whether an `Authorization` header's value lets the request in.
    pub fn allows(&self, header: Option<&[u8]>) -> bool {
        if !self.required() {
            return true;
        }
        let Some(value) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .token
                .as_ref()
                .is_some_and(|t| same(t.expose().as_bytes(), rest.as_bytes()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = &self.basic else {
                return false;
            };
            let expected = format!("{user}:{}", password.expose());
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD
                .decode(rest)
                .is_ok_and(|given| same(&given, expected.as_bytes()));
        }
        false
    }
}

/// Compares digests, in time that tells neither where the two differ nor how long the secret is.
fn same(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (
        ring::digest::digest(&ring::digest::SHA256, a),
        ring::digest::digest(&ring::digest::SHA256, b),
    );
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_console_is_on_by_default_and_an_empty_listen_turns_it_off() {
        let none = Config::from_toml("").unwrap();
        assert_eq!(none.http.listen.addr(), Some(DEFAULT_HTTP));
        let off = Config::from_toml("[http]\nlisten = \"\"\n").unwrap();
        assert_eq!(off.http.listen, HttpListen::Off);
        let at = Config::from_toml("[http]\nlisten = \"0.0.0.0:80\"\n").unwrap();
        assert_eq!(
            at.http.listen,
            HttpListen::At("0.0.0.0:80".parse().unwrap())
        );
        let e = Config::from_toml("\n[http]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn a_token_or_basic_credentials_let_requests_in_and_nothing_else_does() {
        let c = Config::from_toml("[http]\ntoken = \"t0k\"\nuser = \"ops\"\npassword = \"pw\"\n")
            .unwrap();
        let auth = c.http.auth();
        assert!(auth.required());
        assert!(auth.challenge().unwrap().starts_with("Basic"));
        assert!(auth.allows(Some(b"Bearer t0k")));
        assert!(!auth.allows(Some(b"Bearer t0")));
        // "ops:pw"
        assert!(auth.allows(Some(b"Basic b3BzOnB3")));
        // "ops:px"
        assert!(!auth.allows(Some(b"Basic b3BzOnB4")));
        assert!(!auth.allows(Some(b"Basic !!!!")));
        assert!(!auth.allows(None));
        assert!(HttpAuth::default().allows(None));
    }

    #[test]
    fn an_empty_credential_is_refused_rather_than_letting_everyone_in() {
        for (toml, key) in [
            ("token = \"\"", "token"),
            ("user = \"ops\"\npassword = \"\"", "password"),
            ("user = \"\"\npassword = \"pw\"", "user"),
        ] {
            let c = Config::from_toml(&format!("[http]\n{toml}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("empty"), "{e}");
        }
        let token_only = Config::from_toml("[http]\ntoken = \"t\"\n").unwrap();
        assert!(token_only
            .http
            .auth()
            .challenge()
            .unwrap()
            .starts_with("Bearer"));
    }

    #[test]
    fn a_user_without_a_password_is_refused_by_name() {
        let c = Config::from_toml("[http]\nuser = \"ops\"\n").unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "[http] user needs `password` too"
        );
    }
}
