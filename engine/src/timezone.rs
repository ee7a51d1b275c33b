//! Turning zone-less dates (HAProxy's accept date, BSD syslog dates) into
//! instants. The zone lookup is cached per hour, so the hot path is arithmetic.

use hapwatch_parsers::AcceptDate;
use jiff::tz::TimeZone;

/// The configured zone: `local`, `UTC`, or an IANA name such as `Europe/Paris`.
#[derive(Debug, Clone)]
pub enum Zone {
    Local,
    Utc,
    Named(String, TimeZone),
}

/// A zone name that is neither `local`, `UTC` nor in the IANA database.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {name:?} (use \"local\", \"UTC\" or an IANA name): {source}")]
pub struct UnknownZone {
    pub name: String,
    source: jiff::Error,
}

impl std::str::FromStr for Zone {
    type Err = UnknownZone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Zone::Local),
            "UTC" | "utc" | "Z" => Ok(Zone::Utc),
            name => TimeZone::get(name)
                .map(|tz| Zone::Named(name.to_owned(), tz))
                .map_err(|source| UnknownZone {
                    name: name.to_owned(),
                    source,
                }),
        }
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Local => f.write_str("local"),
            Zone::Utc => f.write_str("UTC"),
            Zone::Named(name, _) => f.write_str(name),
        }
    }
}

impl Zone {
    pub fn time_zone(&self) -> TimeZone {
        match self {
            Zone::Local => TimeZone::system(),
            Zone::Utc => TimeZone::UTC,
            Zone::Named(_, tz) => tz.clone(),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Converts calendar fields to Unix milliseconds in one zone, caching the
/// offset of the last hour seen (zone transitions fall on hour boundaries in
/// every zone HAProxy fleets plausibly run in).
pub struct Clock {
    tz: TimeZone,
    utc: bool,
    cached_hour: Option<(i64, i64)>,
}

impl Clock {
    pub fn new(zone: &Zone) -> Clock {
        Clock {
            tz: zone.time_zone(),
            utc: matches!(zone, Zone::Utc),
            cached_hour: None,
        }
    }

    /// Unix milliseconds of a civil date-time in this zone.
    /// `date` is (year, month, day), `time` (hour, minute, second, millisecond).
    pub fn civil_ms(&mut self, date: (i64, u32, u32), time: (u32, u32, u32, u32)) -> Option<i64> {
        let ((y, mo, d), (h, mi, s, ms)) = (date, time);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let local_hour = (days_from_civil(y, mo, d) * 24 + i64::from(h)) * 3600;
        let offset = if self.utc {
            0
        } else {
            match self.cached_hour {
                Some((hour, off)) if hour == local_hour => off,
                _ => {
                    let dt =
                        jiff::civil::DateTime::new(y as i16, mo as i8, d as i8, h as i8, 0, 0, 0)
                            .ok()?;
                    let ts = self.tz.to_timestamp(dt).ok()?;
                    let off = local_hour - ts.as_second();
                    self.cached_hour = Some((local_hour, off));
                    off
                }
            }
        };
        Some((local_hour - offset + i64::from(mi) * 60 + i64::from(s)) * 1000 + i64::from(ms))
    }

    /// An accept date, using its own offset when it carries one.
    pub fn accept_ms(&mut self, d: &AcceptDate) -> Option<i64> {
        let (y, mo, dd) = (i64::from(d.year), u32::from(d.month), u32::from(d.day));
        let (h, mi, s, ms) = (
            u32::from(d.hour),
            u32::from(d.minute),
            u32::from(d.second),
            u32::from(d.millis),
        );
        match d.offset_minutes {
            Some(off) => {
                let local = ((days_from_civil(y, mo, dd) * 24 + i64::from(h)) * 60 + i64::from(mi))
                    * 60
                    + i64::from(s);
                Some((local - i64::from(off) * 60) * 1000 + i64::from(ms))
            }
            None => self.civil_ms((y, mo, dd), (h, mi, s, ms)),
        }
    }

    /// A syslog header time: RFC 3339 as is, a BSD date (`Nov 23 01:23:33`)
    /// in this zone with the year that puts it closest before `now_ms`.
    pub fn header_ms(&mut self, text: &str, now_ms: i64) -> Option<i64> {
        if let Some((mo, d, h, mi, s)) = hapwatch_parsers::parse_bsd_date(text) {
            let year = 1970 + now_ms.div_euclid(86_400_000 * 36_524 / 100);
            // Try this year and its neighbours; keep the latest that is not more than a day ahead.
            return [year + 1, year, year - 1]
                .into_iter()
                .filter_map(|y| {
                    let time = (u32::from(h), u32::from(mi), u32::from(s), 0);
                    self.civil_ms((y, u32::from(mo), u32::from(d)), time)
                })
                .find(|t| *t <= now_ms + 86_400_000);
        }
        text.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
    }
}

/// RFC 3339 in UTC, for JSON.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The wall clock the daemon reads: the system's, or the system's moved by
/// an offset that a test steps, as NTP or `date -s` step the real one (the
/// monotonic clock is never moved).
#[derive(Debug, Clone, Default)]
pub struct WallClock {
    offset_ms: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl WallClock {
    pub fn system() -> WallClock {
        WallClock::default()
    }

    /// Reads the system clock plus `offset_ms`, which the caller may change at any time.
    pub fn offset(offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>) -> WallClock {
        WallClock {
            offset_ms: Some(offset_ms),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let offset = self
            .offset_ms
            .as_ref()
            .map_or(0, |o| o.load(std::sync::atomic::Ordering::Relaxed));
        now_ms() + offset
    }
}

/// Notices when the system clock is stepped (by NTP or by hand): between two
/// readings, the wall clock should advance as the monotonic clock does.
pub struct StepWatch {
    wall_ms: i64,
    mono: std::time::Instant,
}

impl StepWatch {
    /// A difference smaller than this is scheduling noise, not a step.
    const TOLERANCE_MS: i64 = 2_000;

    pub fn new(wall_ms: i64, mono: std::time::Instant) -> StepWatch {
        StepWatch { wall_ms, mono }
    }

    /// The step since the last reading (wall ahead: positive), if there was one.
    pub fn check(&mut self, wall_ms: i64, mono: std::time::Instant) -> Option<i64> {
        let elapsed = mono.saturating_duration_since(self.mono).as_millis() as i64;
        let step = wall_ms - (self.wall_ms + elapsed);
        (self.wall_ms, self.mono) = (wall_ms, mono);
        (step.abs() >= Self::TOLERANCE_MS).then_some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapwatch_parsers::parse_accept_date;

    #[test]
    fn a_step_is_the_wall_clock_moving_unlike_the_monotonic_one() {
        let t0 = std::time::Instant::now();
        let s = std::time::Duration::from_secs(1);
        let mut w = StepWatch::new(1_000_000, t0);
        assert_eq!(w.check(1_001_000, t0 + s), None, "in step");
        assert_eq!(w.check(1_002_500, t0 + 2 * s), None, "noise");
        assert_eq!(w.check(1_002_500 + 3_600_000, t0 + 2 * s), Some(3_600_000));
        assert_eq!(w.check(1_004_000, t0 + 3 * s), Some(-3_599_500));
        assert_eq!(w.check(1_005_000, t0 + 4 * s), None, "settled after a step");
    }

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn civil_arithmetic_matches_jiff() {
        let mut c = Clock::new(&Zone::Utc);
        let d = parse_accept_date("23/Nov/2026:01:23:33.398").unwrap();
        assert_eq!(c.accept_ms(&d), Some(utc("2026-11-23T01:23:33.398Z")));
        let d = parse_accept_date("29/Feb/2024:23:59:59").unwrap();
        assert_eq!(c.accept_ms(&d), Some(utc("2024-02-29T23:59:59Z")));
        let d = parse_accept_date("23/Nov/2026:01:23:33 +0130").unwrap();
        assert_eq!(c.accept_ms(&d), Some(utc("2026-11-22T23:53:33Z")));
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        let zone: Zone = "Europe/Paris".parse().unwrap();
        let mut c = Clock::new(&zone);
        let winter = parse_accept_date("23/Nov/2026:01:23:33.000").unwrap();
        assert_eq!(c.accept_ms(&winter), Some(utc("2026-11-23T00:23:33Z")));
        let summer = parse_accept_date("01/Jul/2026:12:00:00.000").unwrap();
        assert_eq!(c.accept_ms(&summer), Some(utc("2026-07-01T10:00:00Z")));
        // The cached hour must not leak into the next one.
        let next = parse_accept_date("01/Jul/2026:13:00:00.000").unwrap();
        assert_eq!(c.accept_ms(&next), Some(utc("2026-07-01T11:00:00Z")));
        assert!("Nowhere/Special".parse::<Zone>().is_err());
    }

    #[test]
    fn bsd_dates_take_the_year_before_now() {
        let mut c = Clock::new(&Zone::Utc);
        let now = utc("2027-01-02T00:00:00Z");
        assert_eq!(
            c.header_ms("Dec 31 23:00:00", now),
            Some(utc("2026-12-31T23:00:00Z"))
        );
        assert_eq!(
            c.header_ms("Jan  1 10:00:00", now),
            Some(utc("2027-01-01T10:00:00Z"))
        );
        assert_eq!(
            c.header_ms("2026-11-23T01:23:33.153274+01:00", now),
            Some(utc("2026-11-23T00:23:33.153Z"))
        );
        assert_eq!(c.header_ms("yesterday", now), None);
    }
}
