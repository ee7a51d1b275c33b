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
    /// The config file read: `--config`, `$HAPWATCH_CONFIG`, else (without
    /// `--db`) the package's `/etc/hapwatch/hapwatch.toml` when it exists.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            self.db
                .is_none()
                .then(crate::config::system_config)
                .flatten()
        })
    }

    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config_file().as_deref())?;
        if let Some(db) = &self.db {
            config.storage.path = Some(db.clone());
        }
        Ok(config)
    }

    /// The store this command reads.
    pub fn db_path(&self) -> anyhow::Result<PathBuf> {
        Ok(self.load()?.db_path())
    }

    /// The store this command reads and writes: `--db`'s file if given, else the config's.
    pub fn location(&self) -> anyhow::Result<crate::store::Location> {
        Ok(match &self.db {
            Some(db) => crate::store::Location::Sqlite(db.clone()),
            None => self.load()?.store(),
        })
    }

    pub fn open_read(&self) -> anyhow::Result<crate::store::Db> {
        Ok(self.location()?.open_read()?)
    }

    /// The footer of a table: which store it came from (and which config).
    pub fn footer(&self) -> String {
        let db = self
            .location()
            .map_or_else(|_| "?".into(), |l| l.to_string());
        match self.config_file() {
            Some(c) => format!("store {db} (config {})", c.display()),
            None => format!("store {db}"),
        }
    }
}

/// `--since` and `--until`, taken by the history queries.
#[derive(clap::Args, Debug, Clone)]
pub struct SpanArgs {
    /// Start: now, today, yesterday, 30m, 2h ago, -2h, 18:00, monday, last monday,
    /// 2026-11-23, "2026-11-23 18:00" or RFC 3339 (local zone, as journalctl).
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// End, in the same forms (default: now).
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

/// What `--since` and `--until` take, as journalctl does (in the local zone):
/// `now`, `today`, `yesterday`, `tomorrow`; `30m`, `2h ago`, `-2h` (that long ago),
/// `+1h` (ahead); `18:00[:ss]` (today); `monday`, `last monday` (00:00 of the
/// latest one; `last` skips today); `2026-11-23[ 18:00[:ss]]`; RFC 3339. Unix ms.
pub fn parse_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    parse_time_in(s, now_ms, &jiff::tz::TimeZone::system())
}

const TIME_FORMS: &str = "use now, today, yesterday, 30m, 2h ago, -2h, 18:00, monday, last monday, 2026-11-23, \"2026-11-23 18:00\" or RFC 3339";

pub fn parse_time_in(s: &str, now_ms: i64, tz: &jiff::tz::TimeZone) -> anyhow::Result<i64> {
    let text = s.trim().to_lowercase();
    let bad = || anyhow::anyhow!("{s:?} is not a time: {TIME_FORMS}");
    let now = jiff::Timestamp::from_millisecond(now_ms)
        .map_err(|_| bad())?
        .to_zoned(tz.clone());
    let midnight = |days_back: i64| -> anyhow::Result<i64> {
        let day = now
            .start_of_day()
            .map_err(|_| bad())?
            .checked_sub(jiff::Span::new().days(days_back))
            .map_err(|_| bad())?;
        Ok(day.timestamp().as_millisecond())
    };
    match text.as_str() {
        "now" => return Ok(now_ms),
        "today" => return midnight(0),
        "yesterday" => return midnight(1),
        "tomorrow" => return midnight(-1),
        _ => {}
    }
    let ago = text.strip_suffix(" ago").map(str::trim);
    let (sign, span) = match (ago, text.strip_prefix('-'), text.strip_prefix('+')) {
        (Some(rest), _, _) => (-1, rest),
        (_, Some(rest), _) => (-1, rest),
        (_, _, Some(rest)) => (1, rest),
        _ => (-1, text.as_str()),
    };
    if let Ok(d) = humantime::parse_duration(span.trim()) {
        return Ok(now_ms + sign * d.as_millis() as i64);
    }
    let (last, day) = match text.strip_prefix("last ") {
        Some(rest) => (true, rest.trim()),
        None => (false, text.as_str()),
    };
    if let Some(wd) = weekday(day) {
        let today = now.weekday().to_monday_zero_offset() as i64;
        let mut back = (today - wd.to_monday_zero_offset() as i64).rem_euclid(7);
        if last && back == 0 {
            back = 7;
        }
        return midnight(back);
    }
    if let Ok(t) = s.trim().parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let local = |dt: jiff::civil::DateTime| -> anyhow::Result<i64> {
        Ok(dt
            .to_zoned(tz.clone())
            .context("no such local time")?
            .timestamp()
            .as_millisecond())
    };
    // Most specific first: jiff reads the time part of a date-time as a Time.
    if let Ok(dt) = text.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        if text.contains(':') {
            return local(dt);
        }
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return local(d.to_datetime(jiff::civil::Time::midnight()));
    }
    let t: jiff::civil::Time = text.parse().map_err(|_| bad())?;
    local(now.date().to_datetime(t))
}

fn weekday(s: &str) -> Option<jiff::civil::Weekday> {
    use jiff::civil::Weekday::*;
    let days = [
        ("monday", Monday),
        ("tuesday", Tuesday),
        ("wednesday", Wednesday),
        ("thursday", Thursday),
        ("friday", Friday),
        ("saturday", Saturday),
        ("sunday", Sunday),
    ];
    days.into_iter()
        .find(|(name, _)| s == *name || (s.len() >= 3 && name.starts_with(s)))
        .map(|(_, d)| d)
}

pub use crate::timezone::rfc3339;

/// An argument that is not an id.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an id (12 or #12)")]
pub struct NotAnId(String);

/// An id as typed or as the tables print it: `12` or `#12`.
pub fn hash_id(s: &str) -> Result<i64, NotAnId> {
    s.trim_start_matches('#')
        .parse()
        .map_err(|_| NotAnId(s.to_owned()))
}

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
        assert_eq!(rfc3339(1_795_395_600_000), "2026-11-23T01:00:00Z");
    }

    #[test]
    fn times_read_as_journalctl_reads_them() {
        let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        // Wednesday 2026-11-25 15:30:00 in Paris (CET, UTC+1).
        let now = "2026-11-25T14:30:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let at = |s: &str| rfc3339(parse_time_in(s, now, &tz).unwrap());
        assert_eq!(at("today"), "2026-11-24T23:00:00Z");
        assert_eq!(at("yesterday"), "2026-11-23T23:00:00Z");
        assert_eq!(at("-2h"), "2026-11-25T12:30:00Z");
        assert_eq!(at("2h ago"), "2026-11-25T12:30:00Z");
        assert_eq!(at("+1h"), "2026-11-25T15:30:00Z");
        assert_eq!(at("18:00"), "2026-11-25T17:00:00Z");
        assert_eq!(at("monday"), "2026-11-22T23:00:00Z");
        assert_eq!(at("last monday"), "2026-11-22T23:00:00Z");
        assert_eq!(at("wednesday"), "2026-11-24T23:00:00Z");
        assert_eq!(at("last wednesday"), "2026-11-17T23:00:00Z");
        assert_eq!(at("2026-11-23"), "2026-11-22T23:00:00Z");
        assert_eq!(at("2026-11-23 18:00"), "2026-11-23T17:00:00Z");
        let e = parse_time_in("someday", now, &tz).unwrap_err().to_string();
        assert!(e.contains("yesterday") && e.contains("last monday"), "{e}");
    }
}
