//! Maintenance windows: recurring (`sun 02:00-04:00` in a zone) or one-off
//! (a start and an end). While one is active, the incidents it covers are
//! recorded and not notified; when it ends, what is still open is notified
//! once, and what recovered inside it never is.

use jiff::civil::{Date, Weekday};

use crate::incidents::Incident;
use crate::timezone::Zone;

/// What a window covers: these hosts and these backends (empty: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub hosts: Vec<String>,
    pub backends: Vec<String>,
}

impl Scope {
    pub fn matches(&self, i: &Incident) -> bool {
        let host = self.hosts.is_empty() || self.hosts.contains(&i.host);
        let backend = self.backends.is_empty()
            || i.backend
                .as_ref()
                .is_some_and(|b| self.backends.contains(b));
        host && backend
    }
}

/// When a window is active.
#[derive(Debug, Clone)]
pub enum When {
    /// Each of `days` (Monday first) from `start_min` to `end_min` (minutes
    /// after midnight) in `zone`; an end at or before the start is the next day.
    Every {
        days: [bool; 7],
        start_min: u32,
        end_min: u32,
        zone: Zone,
    },
    Once {
        start_ms: i64,
        end_ms: i64,
    },
}

/// A window by name (`[[maintenance]] name`, or `#ID` from the CLI).
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    pub scope: Scope,
    pub when: When,
    /// Holds only incidents opened inside it (a reload's grace), not those
    /// open before it whose notices come due inside it.
    pub fresh_only: bool,
}

impl Window {
    /// Whether it holds this incident's notices at `now_ms`. (An incident
    /// stamped by a syslog header, whole seconds, may seem to open up to a
    /// second before a window that began as its line arrived.)
    pub fn holds(&self, i: &Incident, now_ms: i64) -> bool {
        self.scope.matches(i)
            && self
                .active_at(now_ms)
                .is_some_and(|(start, _)| !self.fresh_only || i.opened_ms >= start - 1000)
    }

    /// The occurrence (start, end) in ms that holds `now_ms`, if any.
    pub fn active_at(&self, now_ms: i64) -> Option<(i64, i64)> {
        match &self.when {
            When::Once { start_ms, end_ms } => {
                (*start_ms <= now_ms && now_ms < *end_ms).then_some((*start_ms, *end_ms))
            }
            When::Every {
                days,
                start_min,
                end_min,
                zone,
            } => {
                let tz = zone.time_zone();
                let today = jiff::Timestamp::from_millisecond(now_ms)
                    .ok()?
                    .to_zoned(tz.clone())
                    .date();
                // Yesterday's occurrence may run past midnight into today.
                [today.yesterday().ok()?, today]
                    .into_iter()
                    .find_map(|day| {
                        if !days[day.weekday().to_monday_zero_offset() as usize] {
                            return None;
                        }
                        let end_day = if end_min <= start_min {
                            day.tomorrow().ok()?
                        } else {
                            day
                        };
                        let start = at(day, *start_min, &tz)?;
                        let end = at(end_day, *end_min, &tz)?;
                        (start <= now_ms && now_ms < end).then_some((start, end))
                    })
            }
        }
    }
}

/// `day` at `minute` after midnight in `tz`, in ms (a time a DST jump skips
/// is moved forward by the jump, 02:30 to 03:30, as jiff's compatible rule does).
fn at(day: Date, minute: u32, tz: &jiff::tz::TimeZone) -> Option<i64> {
    // 24:00 is the next day's midnight.
    let (day, minute) = if minute >= 24 * 60 {
        (day.tomorrow().ok()?, minute - 24 * 60)
    } else {
        (day, minute)
    };
    let time = jiff::civil::Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
    let zoned = day.to_datetime(time).to_zoned(tz.clone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}

/// Why a schedule does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0:?}: expected DAYS HH:MM-HH:MM, e.g. \"sun 02:00-04:00\", \"mon-fri 22:00-23:30\", \"sat,sun 01:00-05:00\" or \"daily 03:00-03:30\"")]
    Shape(String),
    #[error("{0:?} is not a day (mon, tue, wed, thu, fri, sat, sun, daily)")]
    Day(String),
    #[error("{0:?} is not a time of day (HH:MM)")]
    Time(String),
    #[error("{0:?}: the window starts and ends at the same time")]
    Empty(String),
}

/// Reads `every`: days, then a time range.
pub fn parse_every(s: &str) -> Result<([bool; 7], u32, u32), ScheduleError> {
    let shape = || ScheduleError::Shape(s.to_owned());
    let (days_text, range) = s.trim().rsplit_once(' ').ok_or_else(shape)?;
    let (from, to) = range.split_once('-').ok_or_else(shape)?;
    let (start, end) = (time_of_day(from)?, time_of_day(to)?);
    if start == 24 * 60 {
        return Err(ScheduleError::Time(from.to_owned()));
    }
    if start == end {
        return Err(ScheduleError::Empty(s.to_owned()));
    }
    let mut days = [false; 7];
    for part in days_text.trim().split(',') {
        let part = part.trim();
        if part == "daily" || part == "*" {
            days = [true; 7];
            continue;
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(part)?] = true,
        }
    }
    Ok((days, start, end))
}

fn day(s: &str) -> Result<usize, ScheduleError> {
    let d = match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return Err(ScheduleError::Day(s.to_owned())),
    };
    Ok(d.to_monday_zero_offset() as usize)
}

fn time_of_day(s: &str) -> Result<u32, ScheduleError> {
    let bad = || ScheduleError::Time(s.to_owned());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    // 24:00 is the end of the day.
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn every(text: &str, zone: &str) -> Window {
        let (days, start_min, end_min) = parse_every(text).unwrap();
        Window {
            name: "w".into(),
            scope: Scope::default(),
            when: When::Every {
                days,
                start_min,
                end_min,
                zone: zone.parse().unwrap(),
            },
            fresh_only: false,
        }
    }

    #[test]
    fn schedules_read_days_ranges_and_times() {
        let (days, s, e) = parse_every("mon-fri 22:00-23:30").unwrap();
        assert_eq!(days, [true, true, true, true, true, false, false]);
        assert_eq!((s, e), (22 * 60, 23 * 60 + 30));
        assert_eq!(
            parse_every("sat,sun 01:00-05:00").unwrap().0,
            [false, false, false, false, false, true, true]
        );
        assert_eq!(
            parse_every("fri-mon 00:00-24:00").unwrap().0,
            [true, false, false, false, true, true, true]
        );
        assert_eq!(parse_every("daily 03:00-03:30").unwrap().0, [true; 7]);
        assert!(matches!(
            parse_every("sunday"),
            Err(ScheduleError::Shape(_))
        ));
        assert!(matches!(
            parse_every("sum 02:00-04:00"),
            Err(ScheduleError::Day(_))
        ));
        assert!(matches!(
            parse_every("monkey 02:00-04:00"),
            Err(ScheduleError::Day(_))
        ));
        assert!(matches!(
            parse_every("sun 24:00-01:00"),
            Err(ScheduleError::Time(_))
        ));
        assert!(matches!(
            parse_every("sun 02:00-25:00"),
            Err(ScheduleError::Time(_))
        ));
        assert!(matches!(
            parse_every("sun 02:00-02:00"),
            Err(ScheduleError::Empty(_))
        ));
    }

    #[test]
    fn a_recurring_window_is_active_in_its_zone_and_across_midnight() {
        // 2026-11-29 is a Sunday; Paris is UTC+1 in winter.
        let w = every("sun 02:00-04:00", "Europe/Paris");
        assert_eq!(w.active_at(ms("2026-11-29T00:59:59Z")), None);
        assert_eq!(
            w.active_at(ms("2026-11-29T01:00:00Z")),
            Some((ms("2026-11-29T01:00:00Z"), ms("2026-11-29T03:00:00Z")))
        );
        assert_eq!(w.active_at(ms("2026-11-29T03:00:00Z")), None);
        assert_eq!(w.active_at(ms("2026-11-30T01:30:00Z")), None, "monday");
        // Saturday 23:00 to Sunday 01:00 (UTC).
        let night = every("sat 23:00-01:00", "UTC");
        assert_eq!(
            night.active_at(ms("2026-11-29T00:30:00Z")),
            Some((ms("2026-11-28T23:00:00Z"), ms("2026-11-29T01:00:00Z")))
        );
        assert_eq!(
            night.active_at(ms("2026-11-29T23:30:00Z")),
            None,
            "sunday night"
        );
        // A whole day, to 24:00.
        let all_day = every("daily 00:00-24:00", "UTC");
        assert_eq!(
            all_day.active_at(ms("2026-11-29T23:59:59Z")),
            Some((ms("2026-11-29T00:00:00Z"), ms("2026-11-30T00:00:00Z")))
        );
    }

    #[test]
    fn a_window_across_a_dst_change_keeps_its_wall_clock_hours() {
        // Paris leaves summer time on 2026-10-25 at 03:00 (back to 02:00).
        let w = every("sun 01:00-05:00", "Europe/Paris");
        let (start, end) = w.active_at(ms("2026-10-25T02:00:00Z")).unwrap();
        assert_eq!(
            (start, end),
            (ms("2026-10-24T23:00:00Z"), ms("2026-10-25T04:00:00Z"))
        );
        assert_eq!(
            end - start,
            5 * 3_600_000,
            "four wall-clock hours, five real ones"
        );
    }

    #[test]
    fn a_scope_covers_its_hosts_and_backends() {
        let i = |host: &str, backend: Option<&str>| Incident {
            id: 1,
            key: crate::incidents::IncidentKey::silence(host),
            kind: crate::incidents::Kind::ServerDown,
            severity: crate::incidents::Severity::Warning,
            host: host.into(),
            backend: backend.map(Into::into),
            server: None,
            opened_ms: 0,
            reminder_ms: None,
            ack: None,
            summary: String::new(),
            detail: Default::default(),
        };
        let s = Scope {
            hosts: vec!["lb1".into()],
            backends: vec!["be_api".into()],
        };
        assert!(s.matches(&i("lb1", Some("be_api"))));
        assert!(!s.matches(&i("lb2", Some("be_api"))));
        assert!(!s.matches(&i("lb1", Some("be_web"))));
        assert!(
            !s.matches(&i("lb1", None)),
            "a host's silence is not a backend's"
        );
        assert!(Scope::default().matches(&i("lb1", None)));
        let once = Window {
            name: "o".into(),
            scope: s,
            when: When::Once {
                start_ms: 10,
                end_ms: 20,
            },
            fresh_only: false,
        };
        assert_eq!(
            (once.active_at(9), once.active_at(10), once.active_at(20)),
            (None, Some((10, 20)), None)
        );
    }
}
