//! Zero-copy parsers for what HAProxy writes to syslog.
//!
//! [`Parser::parse`] takes one syslog message (a datagram, or a line of a log
//! file) and returns a [`Record`]: the syslog [`Envelope`] and the [`Event`] the
//! message describes, as slices of the input. Nothing here does I/O.
//!
//! ```
//! let parser = hapwatch_parsers::Parser::default();
//! let rec = parser
//!     .parse(b"<129>Nov 23 01:23:33 haproxy[1]: Server be_app/app4 is DOWN. 3 active and 1 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.\n")
//!     .unwrap();
//! assert_eq!(rec.event.kind(), "state_change");
//! ```

mod cursor;
mod event;
mod haproxy_cfg;
mod health;
#[cfg(feature = "json")]
pub mod json;
mod log_format;
pub mod mailers;
mod syslog;
mod time;
mod traffic;

pub use event::*;
pub use haproxy_cfg::{find_log_formats, split_words, CfgError, FoundFormat};
pub use log_format::{
    Encoding, FormatError, LogFormat, Var, HAPROXY_JSON, HTTPLOG, HTTPLOG_CLF, HTTPSLOG, TCPLOG,
};
pub use syslog::{parse_envelope, Envelope, HeaderFormat};
pub use time::{parse_accept_date, parse_bsd_date, AcceptDate};

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub envelope: Envelope<'a>,
    /// The HAProxy message text after the header.
    pub message: &'a str,
    pub event: Event<'a>,
}

/// What kind of failure; stable names for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Empty,
    NotUtf8,
    /// Text that is no HAProxy message this crate knows.
    UnknownMessage,
    BadTraffic,
    BadHealth,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty",
            ErrorKind::NotUtf8 => "not_utf8",
            ErrorKind::UnknownMessage => "unknown_message",
            ErrorKind::BadTraffic => "bad_traffic",
            ErrorKind::BadHealth => "bad_health",
        }
    }

    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Empty,
        ErrorKind::NotUtf8,
        ErrorKind::UnknownMessage,
        ErrorKind::BadTraffic,
        ErrorKind::BadHealth,
    ];
}

/// Why a message could not be parsed, and where (byte offset in the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}: expected {expected} at byte {at}", kind.as_str())]
pub struct ParseError {
    pub kind: ErrorKind,
    pub at: usize,
    pub expected: &'static str,
}

/// Parses messages, knowing the custom `log-format`s of the HAProxy it reads.
#[derive(Debug, Clone)]
pub struct Parser {
    custom: Vec<LogFormat>,
    clf: LogFormat,
    /// JSON lines with HAProxy's own key names, told or not.
    haproxy_json: LogFormat,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new(Vec::new())
    }
}

impl Parser {
    /// Custom formats are tried before the built-in ones: a user's format may
    /// extend httplog (`${HAPROXY_HTTP_LOG_FMT} %ID`), and then it is the truth.
    pub fn new(custom: Vec<LogFormat>) -> Self {
        Parser {
            custom,
            clf: LogFormat::compile("clf", HTTPLOG_CLF).expect("built-in clf format compiles"),
            haproxy_json: LogFormat::compile("haproxy_json", log_format::HAPROXY_JSON)
                .expect("built-in JSON format compiles"),
        }
    }

    pub fn custom_formats(&self) -> &[LogFormat] {
        &self.custom
    }

    /// Parses one message. Trailing LF, CR and NUL bytes are ignored.
    pub fn parse<'a>(&'a self, input: &'a [u8]) -> Result<Record<'a>, ParseError> {
        let line = std::str::from_utf8(trim_end(input)).map_err(|e| ParseError {
            kind: ErrorKind::NotUtf8,
            at: e.valid_up_to(),
            expected: "UTF-8 text",
        })?;
        self.parse_str(line)
    }

    /// Parses one message already known to be text.
    pub fn parse_str<'a>(&'a self, line: &'a str) -> Result<Record<'a>, ParseError> {
        let line = line.trim_end_matches(['\n', '\r', '\0']);
        if line.is_empty() {
            return Err(ParseError {
                kind: ErrorKind::Empty,
                at: 0,
                expected: "a message",
            });
        }
        let (envelope, message) = parse_envelope(line);
        let event = self.parse_message(message)?;
        Ok(Record {
            envelope,
            message,
            event,
        })
    }

    /// Parses the HAProxy message text alone (no syslog header).
    pub fn parse_message<'a>(&'a self, msg: &'a str) -> Result<Event<'a>, ParseError> {
        let mut custom_err = None;
        for f in &self.custom {
            match f.parse(msg) {
                Ok(ev) => return Ok(ev),
                Err(e) => custom_err = custom_err.or(Some(e)),
            }
        }
        if msg.starts_with('{') {
            if let Ok(ev) = self.haproxy_json.parse(msg) {
                return Ok(ev);
            }
        }
        if traffic::looks_like_traffic(msg) {
            return traffic::parse_traffic(msg);
        }
        if is_clf(msg) {
            return self.clf.parse(msg);
        }
        if let Some(res) = health::parse_health(msg) {
            return res;
        }
        Err(custom_err.unwrap_or(ParseError {
            kind: ErrorKind::UnknownMessage,
            at: 0,
            expected: "a HAProxy message",
        }))
    }
}

/// `<ip> - - [` opens `option httplog clf` lines (the ip may be quoted with `%{+Q}ci`).
fn is_clf(msg: &str) -> bool {
    let b = msg.as_bytes();
    match b.iter().take(64).position(|&c| c == b' ') {
        Some(sp) => b[sp..].starts_with(b" - - ["),
        None => false,
    }
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b'\0'] = b {
        b = rest;
    }
    b
}

/// Maps a check `reason:` text back to HAProxy's short status code.
pub fn check_status_code(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "Unknown" => "UNK",
        "Initializing" => "INI",
        "No status change" => "CHECKED",
        "Health analyze" => "HANA",
        "Socket error" => "SOCKERR",
        "Layer4 check passed" => "L4OK",
        "Layer4 timeout" => "L4TOUT",
        "Layer4 connection problem" => "L4CON",
        "Layer6 check passed" => "L6OK",
        "Layer6 timeout" => "L6TOUT",
        "Layer6 invalid response" => "L6RSP",
        "Layer7 timeout" => "L7TOUT",
        "Layer7 invalid response" => "L7RSP",
        "Layer7 check passed" => "L7OK",
        "Layer7 check conditionally passed" => "L7OKC",
        "Layer7 wrong status" => "L7STS",
        "External check error" => "PROCERR",
        "External check timeout" => "PROCTOUT",
        "External check passed" => "PROCOK",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_utf8_reports_offset() {
        let p = Parser::default();
        let e = p.parse(b"<134>ab\xffcd").unwrap_err();
        assert_eq!((e.kind, e.at), (ErrorKind::NotUtf8, 7));
    }

    #[test]
    fn empty_and_unknown() {
        let p = Parser::default();
        assert_eq!(p.parse(b"\n").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            p.parse(b"<134>hello world").unwrap_err().kind,
            ErrorKind::UnknownMessage
        );
    }

    #[test]
    fn custom_formats_win_over_builtin() {
        let f = LogFormat::compile("ext", &format!("{HTTPLOG} %ID")).unwrap();
        let p = Parser::new(vec![f]);
        let line = "1.2.3.4:5 [23/Nov/2026:01:09:09.727] fe be/s1 0/0/0/1/1 200 10 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\" abc-123";
        match p.parse_message(line).unwrap() {
            Event::Traffic(t) => {
                assert_eq!(t.format, TrafficFormat::Custom("ext"));
                assert_eq!(t.unique_id, Some("abc-123"));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn status_codes_table() {
        assert_eq!(
            check_status_code("Layer4 connection problem"),
            Some("L4CON")
        );
        assert_eq!(check_status_code("nope"), None);
    }
}
