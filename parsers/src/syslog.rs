//! The syslog envelope around a HAProxy message.
//!
//! The shapes HAProxy and rsyslog actually emit (`local`, `rfc3164`, `rfc5424`,
//! `priority`, `short`, `timed`, `iso`, `raw`, rsyslog's forwarding and file
//! templates) are recognised by a direct scan that returns the raw header slices.
//! Anything else that starts with a PRI goes to syslog_loose, which knows the
//! long tail of RFC 3164/5424 variants other relays produce.

/// The header shape, named as in HAProxy's `log … format <name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    /// RFC 3164 without a hostname: HAProxy's default since 2.4.
    Local,
    /// RFC 3164 with a hostname (also rsyslog's forwarding and file formats).
    Rfc3164,
    Rfc5424,
    Priority,
    Short,
    Timed,
    Iso,
    Raw,
}

impl HeaderFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderFormat::Local => "local",
            HeaderFormat::Rfc3164 => "rfc3164",
            HeaderFormat::Rfc5424 => "rfc5424",
            HeaderFormat::Priority => "priority",
            HeaderFormat::Short => "short",
            HeaderFormat::Timed => "timed",
            HeaderFormat::Iso => "iso",
            HeaderFormat::Raw => "raw",
        }
    }
}

/// The header fields, as they appear in the line (timestamp text unconverted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub format: HeaderFormat,
    pub pri: Option<u8>,
    pub facility: Option<u8>,
    pub severity: Option<u8>,
    pub timestamp: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub pid: Option<u32>,
    /// RFC 5424 structured data, when not `-` (HAProxy's `log-format-sd`).
    pub structured_data: Option<&'a str>,
}

impl<'a> Envelope<'a> {
    fn new(format: HeaderFormat) -> Self {
        Envelope {
            format,
            pri: None,
            facility: None,
            severity: None,
            timestamp: None,
            hostname: None,
            tag: None,
            pid: None,
            structured_data: None,
        }
    }

    fn with_pri(mut self, pri: u8) -> Self {
        self.pri = Some(pri);
        self.facility = Some(pri >> 3);
        self.severity = Some(pri & 7);
        self
    }
}

/// Splits a line (without its trailing LF) into envelope and message.
pub fn parse_envelope(line: &str) -> (Envelope<'_>, &str) {
    let b = line.as_bytes();
    if b.first() == Some(&b'<') {
        if let Some((pri, after)) = pri(line) {
            return with_pri(line, pri, after);
        }
        return (Envelope::new(HeaderFormat::Raw), line);
    }
    if let Some(ts_len) = iso_len(b) {
        // rsyslog's file format: `ISO host tag[pid]: msg`; HAProxy's `iso`: `ISO msg`.
        let ts = &line[..ts_len];
        let rest = &line[ts_len + 1..];
        if let Some((env, msg)) = host_tag(rest, HeaderFormat::Rfc3164, true) {
            return (
                Envelope {
                    timestamp: Some(ts),
                    ..env
                },
                msg,
            );
        }
        let mut env = Envelope::new(HeaderFormat::Iso);
        env.timestamp = Some(ts);
        return (env, rest);
    }
    if is_bsd_date(b) {
        // A file written by a syslog daemon: no PRI, but the 3164 header.
        if let Some((env, msg)) = bsd_rest(line) {
            return (env, msg);
        }
    }
    (Envelope::new(HeaderFormat::Raw), line)
}

fn with_pri(line: &str, pri: u8, after: usize) -> (Envelope<'_>, &str) {
    let rest = &line[after..];
    let rb = rest.as_bytes();
    if rb.starts_with(b"1 ") {
        if let Some((env, msg)) = rfc5424(&rest[2..]) {
            return (env.with_pri(pri), msg);
        }
    } else if is_bsd_date(rb) {
        if let Some((env, msg)) = bsd_rest(rest) {
            return (env.with_pri(pri), msg);
        }
    } else if let Some(ts_len) = iso_len(rb) {
        let ts = &rest[..ts_len];
        let msg = &rest[ts_len + 1..];
        // rsyslog's RSYSLOG_ForwardFormat: `<PRI>ISO host tag[pid]: msg`.
        if let Some((env, m)) = host_tag(msg, HeaderFormat::Rfc3164, true) {
            return (
                Envelope {
                    timestamp: Some(ts),
                    ..env.with_pri(pri)
                },
                m,
            );
        }
        // HAProxy's `timed`: `<SEV>ISO msg`, severity only.
        let mut env = Envelope::new(HeaderFormat::Timed);
        env.timestamp = Some(ts);
        if pri < 8 {
            env.severity = Some(pri);
        } else {
            env = env.with_pri(pri);
        }
        return (env, msg);
    } else if let Some(found) = loose(line, after) {
        return found;
    }
    if pri < 8 {
        // `short` carries the severity alone; `priority` the full PRI.
        let mut env = Envelope::new(HeaderFormat::Short);
        env.severity = Some(pri);
        (env, rest)
    } else {
        (Envelope::new(HeaderFormat::Priority).with_pri(pri), rest)
    }
}

/// `<N>` with 1–3 digits and N ≤ 191; returns the value and the offset after `>`.
fn pri(line: &str) -> Option<(u8, usize)> {
    let b = line.as_bytes();
    let close = b.iter().take(5).position(|&c| c == b'>')?;
    if close < 2 {
        return None;
    }
    let mut v: u16 = 0;
    for &d in &b[1..close] {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u16::from(d - b'0');
    }
    (v <= 191).then_some((v as u8, close + 1))
}

/// Length of an RFC 3339 timestamp at the start (`2026-11-23T01:24:26.066793+00:00`),
/// when a space follows it.
fn iso_len(b: &[u8]) -> Option<usize> {
    if b.len() < 20
        || !b[..4].iter().all(u8::is_ascii_digit)
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
    {
        return None;
    }
    let sp = b.iter().take(40).position(|&c| c == b' ')?;
    Some(sp)
}

/// `Mmm dd hh:mm:ss ` (day space-padded).
fn is_bsd_date(b: &[u8]) -> bool {
    b.len() > 16
        && b[..3].iter().all(u8::is_ascii_alphabetic)
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && b[15] == b' '
}

/// After a BSD date: `TAG[PID]: msg` (local) or `HOST TAG[PID]: msg` (rfc3164).
fn bsd_rest(s: &str) -> Option<(Envelope<'_>, &str)> {
    let ts = &s[..15];
    let rest = &s[16..];
    let (env, msg) = host_tag(rest, HeaderFormat::Local, false)
        .or_else(|| host_tag(rest, HeaderFormat::Rfc3164, true))
        .or_else(|| {
            // A host but no tag: `Nov 23 01:08:56 host msg`.
            let (host, msg) = rest.split_once(' ')?;
            let mut env = Envelope::new(HeaderFormat::Rfc3164);
            env.hostname = Some(host);
            Some((env, msg))
        })?;
    Some((
        Envelope {
            timestamp: Some(ts),
            ..env
        },
        msg,
    ))
}

/// `[HOST ]TAG[PID]: msg` or `[HOST ]TAG: msg`.
fn host_tag(s: &str, format: HeaderFormat, with_host: bool) -> Option<(Envelope<'_>, &str)> {
    let mut env = Envelope::new(format);
    let mut rest = s;
    if with_host {
        let sp = memchr::memchr(b' ', s.as_bytes())?;
        if sp == 0 {
            return None;
        }
        env.hostname = Some(&s[..sp]);
        rest = &s[sp + 1..];
    }
    let rb = rest.as_bytes();
    // A tag is short; a longer first word means this is not `TAG[PID]:`.
    let sp = memchr::memchr(b' ', &rb[..rb.len().min(64)])?;
    if sp < 2 || rb[sp - 1] != b':' {
        return None;
    }
    let msg = &rest[sp + 1..];
    let word = &rb[..sp - 1];
    if word.last() == Some(&b']') {
        let open = memchr::memchr(b'[', word)?;
        let mut pid: u32 = 0;
        for &d in &word[open + 1..word.len() - 1] {
            if !d.is_ascii_digit() {
                return None;
            }
            pid = pid.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
        }
        env.tag = Some(&rest[..open]);
        env.pid = Some(pid);
    } else {
        if memchr::memchr(b'[', word).is_some() {
            return None;
        }
        env.tag = Some(&rest[..sp - 1]);
    }
    Some((env, msg))
}

/// `TIMESTAMP HOST APP PROCID MSGID SD MSG` after `<PRI>1 `.
fn rfc5424(s: &str) -> Option<(Envelope<'_>, &str)> {
    let mut env = Envelope::new(HeaderFormat::Rfc5424);
    let mut parts = s.splitn(5, ' ');
    let ts = parts.next()?;
    let host = parts.next()?;
    let app = parts.next()?;
    let procid = parts.next()?;
    let rest = parts.next()?;
    let (_msgid, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    env.timestamp = (ts != "-").then_some(ts);
    env.hostname = Some(host);
    env.tag = Some(app);
    env.pid = procid.parse().ok();
    let msg = if let Some(r) = rest.strip_prefix('-') {
        r
    } else if rest.starts_with('[') {
        let end = sd_len(rest)?;
        env.structured_data = Some(&rest[..end]);
        &rest[end..]
    } else {
        return None;
    };
    // One space separates SD and MSG; rsyslog's protocol-23 template adds another.
    // HAProxy messages never start with a space, so strip them all.
    Some((env, msg.trim_start_matches(' ')))
}

/// Length of a run of `[id k="v" …]` elements, honouring `\]` and `\"` escapes.
fn sd_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        loop {
            match *b.get(i)? {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    Some(i)
}

/// syslog_loose for the shapes the scan above does not know. Its timestamp is
/// resolved with a fixed leap year: only the raw slices are used here, and the
/// daemon resolves times itself with the real year and zone.
fn loose(line: &str, after_pri: usize) -> Option<(Envelope<'_>, &str)> {
    let m =
        syslog_loose::parse_message_with_year_exact(line, |_| 2024, syslog_loose::Variant::Either)
            .ok()?;
    let base = line.as_ptr() as usize;
    let offset = |s: &str| {
        let p = s.as_ptr() as usize;
        (p >= base && p <= base + line.len()).then(|| p - base)
    };
    let msg_at = offset(m.msg)?;
    let format = match m.protocol {
        syslog_loose::Protocol::RFC5424(_) => HeaderFormat::Rfc5424,
        syslog_loose::Protocol::RFC3164 => HeaderFormat::Rfc3164,
    };
    let mut env = Envelope::new(format);
    env.hostname = m.hostname.filter(|h| offset(h).is_some());
    env.tag = m.appname.filter(|a| offset(a).is_some());
    env.pid = match m.procid {
        Some(syslog_loose::ProcId::PID(p)) => u32::try_from(p).ok(),
        _ => None,
    };
    // The raw timestamp runs from the header start to the first named field.
    let first_field = env.hostname.or(env.tag).and_then(offset).unwrap_or(msg_at);
    let ts_start = if matches!(format, HeaderFormat::Rfc5424) {
        after_pri + 2
    } else {
        after_pri
    };
    if m.timestamp.is_some() && first_field > ts_start {
        env.timestamp = Some(line[ts_start..first_field].trim_end());
    }
    if env.timestamp.is_none() && env.hostname.is_none() && env.tag.is_none() {
        return None;
    }
    Some((env, &line[msg_at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_rfc3164() {
        let (e, m) = parse_envelope("<133>Nov 23 01:23:33 haproxy[19328]: Health check");
        assert_eq!(e.format, HeaderFormat::Local);
        assert_eq!((e.facility, e.severity), (Some(16), Some(5)));
        assert_eq!((e.tag, e.pid), (Some("haproxy"), Some(19328)));
        assert_eq!(m, "Health check");
        let (e, m) = parse_envelope("<133>Nov  3 01:23:33 lb-1 haproxy[485]: x y");
        assert_eq!(e.format, HeaderFormat::Rfc3164);
        assert_eq!(e.timestamp, Some("Nov  3 01:23:33"));
        assert_eq!(e.hostname, Some("lb-1"));
        assert_eq!(m, "x y");
    }

    #[test]
    fn rfc5424_with_structured_data_and_double_space() {
        let (e, m) = parse_envelope(
            r#"<134>1 2026-11-23T01:24:26.066793+00:00 - haproxy 23628 - [x@1 a="b\]c"] msg"#,
        );
        assert_eq!(e.format, HeaderFormat::Rfc5424);
        assert_eq!(e.structured_data, Some(r#"[x@1 a="b\]c"]"#));
        assert_eq!(m, "msg");
        let (e, m) =
            parse_envelope("<133>1 2026-11-23T01:25:20+00:00 localhost haproxy 28260 - -  Health");
        assert_eq!(e.hostname, Some("localhost"));
        assert_eq!(m, "Health");
    }

    #[test]
    fn haproxy_short_formats() {
        let (e, m) = parse_envelope("<5>Health");
        assert_eq!(
            (e.format, e.severity, e.pri),
            (HeaderFormat::Short, Some(5), None)
        );
        assert_eq!(m, "Health");
        let (e, _) = parse_envelope("<133>Health");
        assert_eq!(e.format, HeaderFormat::Priority);
        let (e, m) = parse_envelope("<5>2026-11-23T01:26:15.488619+00:00 Health");
        assert_eq!(e.format, HeaderFormat::Timed);
        assert_eq!(m, "Health");
        let (e, m) = parse_envelope("2026-11-23T01:26:15.488627+00:00 Health check");
        assert_eq!(e.format, HeaderFormat::Iso);
        assert_eq!(m, "Health check");
        let (e, m) = parse_envelope("Health check");
        assert_eq!(e.format, HeaderFormat::Raw);
        assert_eq!(m, "Health check");
    }

    #[test]
    fn rsyslog_file_and_forward_formats() {
        let (e, m) = parse_envelope("Nov 23 01:08:56 myhost haproxy[7659]: Server a/b is UP.");
        assert_eq!(e.format, HeaderFormat::Rfc3164);
        assert_eq!((e.hostname, e.pri), (Some("myhost"), None));
        assert_eq!(m, "Server a/b is UP.");
        let (e, m) = parse_envelope("<134>2026-11-23T01:08:56.1+00:00 myhost haproxy[7659]: hello");
        assert_eq!(e.format, HeaderFormat::Rfc3164);
        assert_eq!(e.hostname, Some("myhost"));
        assert_eq!(m, "hello");
        let (e, m) = parse_envelope("2026-11-23T01:08:56.1+00:00 myhost haproxy: hello");
        assert_eq!(
            (e.format, e.tag, e.pid),
            (HeaderFormat::Rfc3164, Some("haproxy"), None)
        );
        assert_eq!(m, "hello");
    }

    #[test]
    fn odd_shapes_fall_back_to_syslog_loose() {
        // A year in the BSD timestamp, as some relays write it.
        let (e, m) = parse_envelope("<134>Nov 23 2026 01:08:56 myhost haproxy[7659]: hello");
        assert_eq!(e.format, HeaderFormat::Rfc3164);
        assert_eq!(e.hostname, Some("myhost"));
        assert_eq!(e.pid, Some(7659));
        assert_eq!(e.timestamp, Some("Nov 23 2026 01:08:56"));
        assert_eq!(m, "hello");
    }

    #[test]
    fn bad_pri_is_raw() {
        let (e, m) = parse_envelope("<999>x");
        assert_eq!(e.format, HeaderFormat::Raw);
        assert_eq!(m, "<999>x");
    }
}
