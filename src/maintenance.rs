//! Maintenance windows as configured (`[[maintenance]]`) and as added from
//! the CLI (`hapwatch maintenance add`, in the store), turned into the
//! engine's `Window`s. The engine's `maintenance` module says when each is
//! active; the notifier holds what they cover.

use serde::Deserialize;

use crate::timezone::Zone;
use hapwatch_engine::maintenance::{parse_every, Scope, When, Window};

/// When a configured or stored window is active.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `every = "sun 02:00-04:00"`, in `timezone` (default: `[parse] timezone`).
    Every { text: String, zone: Option<String> },
    /// `start` and `end`, RFC 3339.
    Once { start_ms: i64, end_ms: i64 },
}

/// One `[[maintenance]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct WindowConfig {
    pub name: String,
    pub hosts: Vec<String>,
    pub backends: Vec<String>,
    pub schedule: Schedule,
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    name: String,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    backends: Vec<String>,
    every: Option<String>,
    timezone: Option<String>,
    start: Option<String>,
    end: Option<String>,
    reason: Option<String>,
}

/// Why a maintenance window does not read.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("maintenance {0:?}: a name is letters, digits, '-', '_' or '.'")]
    Name(String),
    #[error("maintenance {0:?}: give `every` (recurring) or `start` and `end` (once), not both")]
    Which(String),
    #[error("maintenance {name:?}: {source}")]
    Every {
        name: String,
        source: hapwatch_engine::maintenance::ScheduleError,
    },
    #[error("maintenance {name:?}: `timezone` only goes with `every`")]
    ZoneWithoutEvery { name: String },
    #[error("maintenance {name:?}: {source}")]
    Zone {
        name: String,
        source: crate::timezone::UnknownZone,
    },
    #[error(
        "maintenance {name:?}: {key} {value:?} is not an RFC 3339 time (2026-12-24T22:00:00+01:00)"
    )]
    Time {
        name: String,
        key: &'static str,
        value: String,
    },
    #[error("maintenance {0:?}: it ends before it starts")]
    Backwards(String),
}

fn rfc3339_ms(name: &str, key: &'static str, value: &str) -> Result<i64, WindowError> {
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| WindowError::Time {
            name: name.to_owned(),
            key,
            value: value.to_owned(),
        })
}

/// Checks a recurring schedule and its zone, as the config and the CLI take them.
pub fn check_every(name: &str, every: &str, zone: Option<&str>) -> Result<(), WindowError> {
    parse_every(every).map_err(|source| WindowError::Every {
        name: name.to_owned(),
        source,
    })?;
    if let Some(z) = zone {
        z.parse::<Zone>().map_err(|source| WindowError::Zone {
            name: name.to_owned(),
            source,
        })?;
    }
    Ok(())
}

impl TryFrom<RawWindow> for WindowConfig {
    type Error = WindowError;

    fn try_from(r: RawWindow) -> Result<Self, Self::Error> {
        let name_ok = !r.name.is_empty()
            && r.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(WindowError::Name(r.name));
        }
        let schedule = match (&r.every, &r.start, &r.end) {
            (Some(every), None, None) => {
                check_every(&r.name, every, r.timezone.as_deref())?;
                Schedule::Every {
                    text: every.clone(),
                    zone: r.timezone.clone(),
                }
            }
            (None, Some(start), Some(end)) => {
                if r.timezone.is_some() {
                    return Err(WindowError::ZoneWithoutEvery { name: r.name });
                }
                let (start_ms, end_ms) = (
                    rfc3339_ms(&r.name, "start", start)?,
                    rfc3339_ms(&r.name, "end", end)?,
                );
                if end_ms <= start_ms {
                    return Err(WindowError::Backwards(r.name));
                }
                Schedule::Once { start_ms, end_ms }
            }
            _ => return Err(WindowError::Which(r.name)),
        };
        Ok(WindowConfig {
            name: r.name,
            hosts: r.hosts,
            backends: r.backends,
            schedule,
            reason: r.reason,
        })
    }
}

impl Schedule {
    /// The engine's `When`, recurring ones in their zone (or `default_zone`).
    /// None if it no longer reads (a store row written by hand).
    pub fn when(&self, default_zone: &Zone) -> Option<When> {
        Some(match self {
            Schedule::Every { text, zone } => {
                let (days, start_min, end_min) = parse_every(text).ok()?;
                let zone = match zone {
                    Some(z) => z.parse().ok()?,
                    None => default_zone.clone(),
                };
                When::Every {
                    days,
                    start_min,
                    end_min,
                    zone,
                }
            }
            Schedule::Once { start_ms, end_ms } => When::Once {
                start_ms: *start_ms,
                end_ms: *end_ms,
            },
        })
    }

    /// As `maintenance list` shows it.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every { text, zone } => match zone {
                Some(z) => format!("{text} ({z})"),
                None => text.clone(),
            },
            Schedule::Once { start_ms, end_ms } => format!(
                "{} to {}",
                crate::timezone::rfc3339(*start_ms),
                crate::timezone::rfc3339(*end_ms)
            ),
        }
    }
}

/// A window, configured or stored, as the engine takes it.
pub fn window(
    name: &str,
    hosts: &[String],
    backends: &[String],
    schedule: &Schedule,
    zone: &Zone,
) -> Option<Window> {
    Some(Window {
        name: name.to_owned(),
        scope: Scope {
            hosts: hosts.to_vec(),
            backends: backends.to_vec(),
        },
        when: schedule.when(zone)?,
        fresh_only: false,
    })
}

/// The configured windows, recurring ones in `[parse] timezone` unless they name one.
pub fn configured(config: &crate::config::Config) -> Vec<Window> {
    config
        .maintenance
        .iter()
        .filter_map(|w| {
            window(
                &w.name,
                &w.hosts,
                &w.backends,
                &w.schedule,
                &config.parse.timezone,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn windows_read_with_their_errors_at_their_table() {
        let c = Config::from_toml(
            "[[maintenance]]\nname = \"sunday-patch\"\nbackends = [\"be_api\"]\nevery = \"sun 02:00-04:00\"\ntimezone = \"Europe/Paris\"\n\
             [[maintenance]]\nname = \"xmas\"\nstart = \"2026-12-24T22:00:00+01:00\"\nend = \"2026-12-25T06:00:00+01:00\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.maintenance.len(), 2);
        assert_eq!(super::configured(&c).len(), 2);
        for (text, says) in [
            ("name = \"a b\"\nevery = \"sun 02:00-04:00\"\n", "a name is"),
            ("name = \"a\"\n", "give `every`"),
            (
                "name = \"a\"\nevery = \"sun 02:00-04:00\"\nstart = \"2026-12-24T22:00:00Z\"\n",
                "not both",
            ),
            ("name = \"a\"\nevery = \"sunday\"\n", "expected DAYS"),
            (
                "name = \"a\"\nevery = \"sun 02:00-04:00\"\ntimezone = \"Mars/Base\"\n",
                "unknown time zone",
            ),
            (
                "name = \"a\"\nstart = \"tomorrow\"\nend = \"2026-12-25T06:00:00Z\"\n",
                "RFC 3339",
            ),
            (
                "name = \"a\"\nstart = \"2026-12-25T06:00:00Z\"\nend = \"2026-12-24T06:00:00Z\"\n",
                "ends before",
            ),
        ] {
            let e = Config::from_toml(&format!("[daemon]\n[[maintenance]]\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says) && e.contains("line 2"), "{text}: {e}");
        }
        // An unknown key is named at its own line.
        let e = Config::from_toml(
            "[[maintenance]]\nname = \"a\"\nevery = \"sun 02:00-04:00\"\nbackend = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown field `backend`") && e.contains("line 4"),
            "{e}"
        );
        let twice = "[[maintenance]]\nname = \"a\"\nevery = \"sun 02:00-04:00\"\n";
        let e = Config::from_toml(&format!("{twice}{twice}"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("two maintenance windows are named \"a\""), "{e}");
    }
}
