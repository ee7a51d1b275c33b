//! Fixed-width readers for HAProxy's dates. They return calendar fields only:
//! which zone applies is the caller's decision (the default formats carry none).

/// A traffic line's `[dd/Mon/yyyy:HH:MM:SS.mmm]` (or `… +hhmm` from `%T`/`%Tl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millis: u16,
    /// Minutes east of UTC, when the text carries a zone.
    pub offset_minutes: Option<i16>,
}

fn month(b: &[u8]) -> Option<u8> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
    }
    Some(v)
}

/// `23/Nov/2026:01:23:33.398`, `23/Nov/2026:01:23:33` or `23/Nov/2026:01:23:33 +0100`.
pub fn parse_accept_date(s: &str) -> Option<AcceptDate> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
    {
        return None;
    }
    let mut d = AcceptDate {
        day: digits(&b[0..2])? as u8,
        month: month(&b[3..6])?,
        year: digits(&b[7..11])? as u16,
        hour: digits(&b[12..14])? as u8,
        minute: digits(&b[15..17])? as u8,
        second: digits(&b[18..20])? as u8,
        millis: 0,
        offset_minutes: None,
    };
    let mut rest = &b[20..];
    if let [b'.', ms @ ..] = rest {
        let n = ms.iter().take_while(|c| c.is_ascii_digit()).count().min(3);
        if n == 0 {
            return None;
        }
        d.millis = (digits(&ms[..n])? * 10u32.pow(3 - n as u32)) as u16;
        rest = &ms[n..];
    }
    if let [b' ', sign @ (b'+' | b'-'), z @ ..] = rest {
        if z.len() != 4 {
            return None;
        }
        let m = (digits(&z[..2])? * 60 + digits(&z[2..])?) as i16;
        d.offset_minutes = Some(if *sign == b'-' { -m } else { m });
        rest = &[];
    }
    if !rest.is_empty() || d.day == 0 || d.day > 31 || d.hour > 23 || d.minute > 59 || d.second > 60
    {
        return None;
    }
    Some(d)
}

/// A syslog `Mmm dd hh:mm:ss` header date: (month, day, hour, minute, second).
pub fn parse_bsd_date(s: &str) -> Option<(u8, u8, u8, u8, u8)> {
    let b = s.as_bytes();
    if b.len() != 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let day = if b[4] == b' ' {
        digits(&b[5..6])?
    } else {
        digits(&b[4..6])?
    };
    Some((
        month(&b[..3])?,
        day as u8,
        digits(&b[7..9])? as u8,
        digits(&b[10..12])? as u8,
        digits(&b[13..15])? as u8,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_dates() {
        let d = parse_accept_date("23/Nov/2026:01:23:33.398").unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second, d.millis),
            (2026, 11, 23, 1, 23, 33, 398)
        );
        assert_eq!(d.offset_minutes, None);
        let d = parse_accept_date("23/Nov/2026:01:23:34 -0130").unwrap();
        assert_eq!(d.offset_minutes, Some(-90));
        assert!(parse_accept_date("23/Foo/2026:01:23:34").is_none());
        assert!(parse_accept_date("23/Nov/2026:01:23:34.").is_none());
    }

    #[test]
    fn bsd_dates() {
        assert_eq!(parse_bsd_date("Nov  3 01:02:03"), Some((11, 3, 1, 2, 3)));
        assert_eq!(parse_bsd_date("Nov 23 01:02:03"), Some((11, 23, 1, 2, 3)));
        assert_eq!(parse_bsd_date("Nov 23 01:02"), None);
    }
}
