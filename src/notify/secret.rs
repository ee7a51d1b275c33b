//! Secrets in the config (SMTP passwords, webhook signing keys, PagerDuty
//! routing keys): written inline, or as `env:NAME` or `file:/path` so the
//! config file can be shared. A file must not be readable by group or others.
//! A secret never shows in `{:?}`, so it cannot reach a log line.

use std::os::unix::fs::PermissionsExt as _;

use serde::{Deserialize, Deserializer};

/// The keys whose values are secrets (a Slack or Teams `url` is one too).
pub const SECRET_KEYS: [&str; 7] = [
    "password",
    "secret",
    "routing_key",
    "url",
    "token",
    "postgres",
    "postgres_password",
];

/// A TOML error quotes the line it is about: a secret's value is cut out.
pub fn redact(message: &str, source: &str) -> String {
    let mut out = message.to_owned();
    for line in source.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        if SECRET_KEYS.contains(&key.trim()) && value.len() > 2 {
            out = out.replace(value, "\"<redacted>\"");
        }
    }
    out
}

/// Secrets are keys and passwords, not documents.
const MAX_SECRET_FILE: u64 = 64 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `env:NAME`, `file:/path`, or the value itself.
    pub fn resolve(spec: &str) -> Result<Secret, SecretError> {
        if let Some(name) = spec.strip_prefix("env:") {
            return std::env::var(name)
                .map(Secret)
                .map_err(|_| SecretError::NoVariable(name.to_owned()));
        }
        if let Some(path) = spec.strip_prefix("file:") {
            let unreadable = |source| SecretError::Unreadable {
                path: path.to_owned(),
                source,
            };
            // /proc/self/environ and friends look like small regular files.
            let real = std::fs::canonicalize(path).map_err(unreadable)?;
            if let Some(under) = ["/proc", "/sys", "/dev"]
                .iter()
                .find(|p| real.starts_with(p))
            {
                return Err(SecretError::Special {
                    path: path.to_owned(),
                    under,
                });
            }
            let meta = std::fs::metadata(path).map_err(unreadable)?;
            // Not a device, a FIFO or /proc: a read that never ends is no secret.
            if !meta.is_file() || meta.len() > MAX_SECRET_FILE {
                return Err(SecretError::NotSmallFile(path.to_owned()));
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretError::Readable {
                    path: path.to_owned(),
                    mode,
                });
            }
            let text = std::fs::read_to_string(path).map_err(unreadable)?;
            return Ok(Secret(text.trim_end_matches(['\n', '\r']).to_owned()));
        }
        Ok(Secret(spec.to_owned()))
    }
}

/// Why a secret's `env:` or `file:` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    NoVariable(String),
    #[error("secret file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("secret file {path} is under {under}: name a file of your own")]
    Special { path: String, under: &'static str },
    #[error("secret file {0} is not a regular file of at most {MAX_SECRET_FILE} bytes")]
    NotSmallFile(String),
    #[error("secret file {path} is readable by others (mode {mode:o}); chmod 600 it")]
    Readable { path: String, mode: u32 },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = String::deserialize(d)?;
        Secret::resolve(&spec).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_on_a_secrets_line_does_not_echo_it() {
        let text = "[[channel]]\nname = \"m\"\npassword = \"hunter2\" x\n";
        let e = crate::config::Config::from_toml(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hunter2"), "toml quotes the line: {e}");
        let shown = redact(&e, text);
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn a_bad_postgresql_string_names_its_line_and_not_its_password() {
        let text = "[storage]\npostgres = \"postgresql://u:hunter2@[bad\"\n";
        let e = crate::config::Config::from_toml(text)
            .unwrap_err()
            .to_string();
        let shown = redact(&e, text);
        assert!(
            shown.contains("line 2") && shown.contains("not a PostgreSQL URL"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        let hostless = crate::config::Config::from_toml("[storage]\npostgres = \"dbname=x\"\n");
        assert!(hostless.unwrap_err().to_string().contains("names no host"));
        let good = crate::config::Config::from_toml(
            "[storage]\npostgres = \"host=/run/postgresql dbname=h\"\npostgres_password = \"pw\"\n",
        )
        .unwrap();
        let store = good.store();
        assert_eq!(store.to_string(), "postgresql:///run/postgresql:5432/h");
        assert!(store.file().is_none());
    }

    #[test]
    fn secrets_come_from_the_environment_or_private_files_and_never_print() {
        std::env::set_var("HAPWATCH_TEST_SECRET", "from-env");
        assert_eq!(
            Secret::resolve("env:HAPWATCH_TEST_SECRET")
                .unwrap()
                .expose(),
            "from-env"
        );
        assert!(matches!(
            Secret::resolve("env:HAPWATCH_NO_SUCH_VAR"),
            Err(SecretError::NoVariable(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let spec = format!("file:{}", path.display());
        let e = Secret::resolve(&spec).unwrap_err();
        assert!(
            matches!(e, SecretError::Readable { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Secret::resolve(&spec).unwrap();
        assert_eq!(s.expose(), "from-file");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(Secret::resolve("inline").unwrap().expose(), "inline");
        for special in ["file:/dev/zero", "file:/proc/self/environ"] {
            assert!(
                matches!(Secret::resolve(special), Err(SecretError::Special { .. })),
                "{special}"
            );
        }
    }
}
