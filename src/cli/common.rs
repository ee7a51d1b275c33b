//! Flags and helpers shared by the query commands.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::Config;

/// `--config` and `--db`, taken by every command that reads the store.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The hapwatch config (TOML); defaults apply without one.
    #[arg(long, value_name = "FILE", env = "HAPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// The SQLite file (default: the config's `storage.path`, else hapwatch.db in the state directory).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

impl StoreArgs {
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(db) = &self.db {
            config.storage.path = Some(db.clone());
        }
        Ok(config)
    }

    pub fn open_read(&self) -> anyhow::Result<rusqlite::Connection> {
        let path = self.load()?.db_path();
        Ok(crate::store::open_read(&path)?)
    }
}

/// `--since` and `--until`, taken by the history queries.
#[derive(clap::Args, Debug, Clone)]
pub struct SpanArgs {
    /// Start: 30m, 2h, 7d ago, or an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// End (default: now).
    #[arg(long)]
    pub until: Option<String>,
}

impl SpanArgs {
    /// (since, until) in Unix ms.
    pub fn resolve(&self, now_ms: i64) -> anyhow::Result<(i64, i64)> {
        let since = parse_time(&self.since, now_ms)?;
        let until = self
            .until
            .as_deref()
            .map_or(Ok(now_ms), |u| parse_time(u, now_ms))?;
        if until <= since {
            anyhow::bail!("--until must be after --since");
        }
        Ok((since, until))
    }
}

/// `30m`, `2h`, `7d` (that long ago), `now`, or an RFC 3339 time; Unix ms.
pub fn parse_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    if s == "now" {
        return Ok(now_ms);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now_ms - d.as_millis() as i64);
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    // A civil time without offset is read in the local zone.
    let dt: jiff::civil::DateTime = s
        .parse()
        .with_context(|| format!("{s:?} is not a time: use 30m, 2h, 7d, now or RFC 3339"))?;
    Ok(dt
        .to_zoned(jiff::tz::TimeZone::system())
        .context("no such local time")?
        .timestamp()
        .as_millisecond())
}

pub use crate::timezone::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_relative_or_absolute() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_time("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("2026-11-23T01:00:00Z", now).unwrap(),
            1_795_395_600_000
        );
        assert!(parse_time("last tuesday", now).is_err());
        assert_eq!(rfc3339(1_795_395_600_000), "2026-11-23T01:00:00Z");
    }
}
