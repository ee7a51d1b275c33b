//! Per-URL and per-status breakdowns of a window (`stats --by url`,
//! `--by status`, as halog's `-u` and `-st`). URLs are normalised so that one
//! endpoint is one row: the query is dropped and ids are folded to `:id`.
//! Each backend keeps at most `[limits] urls` distinct URLs per window; the
//! rest are added up in one `(other)` row, so the rows still sum to the
//! backend's requests and random paths cannot grow memory.

use hapwatch_parsers::{Protocol, Traffic};

use crate::fasthash::FastMap;
use crate::hist::Histogram;

/// The path of the row that takes the URLs past the bound.
pub const OTHER: &str = "(other)";
/// The path of an HTTP line without a URI (`<BADREQ>`, a timeout before the request).
pub const NONE: &str = "(none)";
/// Normalised paths are cut at this many bytes (then end in `…`).
const MAX_PATH: usize = 160;
const MAX_SEGMENTS: usize = 16;
const MAX_METHOD: usize = 16;

/// The figures of one URL in one window, mergeable by addition.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UrlCounts {
    pub requests: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub bytes: u64,
    /// Ta (or Tt), ms.
    pub t_total: Histogram,
}

impl UrlCounts {
    fn add(&mut self, t: &Traffic<'_>) {
        self.requests += 1;
        match t.status {
            Some(400..=499) => self.s4xx += 1,
            Some(500..=599) => self.s5xx += 1,
            _ => {}
        }
        self.bytes = self.bytes.saturating_add(t.bytes_read.unwrap_or(0));
        if let Some(total) = t.t_active.or(t.t_total).filter(|v| *v >= 0) {
            self.t_total.record(total as u64);
        }
    }

    pub fn merge(&mut self, o: &UrlCounts) {
        self.requests += o.requests;
        self.s4xx += o.s4xx;
        self.s5xx += o.s5xx;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.t_total.merge(&o.t_total);
    }
}

/// One backend's URLs in one window.
#[derive(Default)]
pub struct UrlTable {
    /// Keyed by "METHOD PATH" (a method has no space).
    urls: FastMap<Box<str>, UrlCounts>,
    other: UrlCounts,
}

impl UrlTable {
    /// Counts `t` under its normalised URL; `scratch` is a reused buffer.
    pub fn add(&mut self, t: &Traffic<'_>, limit: usize, scratch: &mut String) {
        scratch.clear();
        url_key(t, scratch);
        if let Some(c) = self.urls.get_mut(scratch.as_str()) {
            c.add(t);
        } else if self.urls.len() < limit {
            self.urls.entry(scratch.as_str().into()).or_default().add(t);
        } else {
            self.other.add(t);
        }
    }

    /// (method, path, counts), the `(other)` row last when it counted anything.
    pub fn into_rows(self) -> impl Iterator<Item = (String, String, UrlCounts)> {
        let other =
            (self.other.requests > 0).then(|| (String::new(), OTHER.to_owned(), self.other));
        self.urls
            .into_iter()
            .map(|(key, counts)| {
                let (method, path) = key.split_once(' ').unwrap_or(("", &key));
                (method.to_owned(), path.to_owned(), counts)
            })
            .chain(other)
    }
}

/// The URL breakdown applies to HTTP lines; tcplog sessions have none.
pub fn has_url(t: &Traffic<'_>) -> bool {
    t.protocol == Protocol::Http
}

/// "METHOD PATH" of a line into `out`.
fn url_key(t: &Traffic<'_>, out: &mut String) {
    let method = t.method.unwrap_or("");
    push_cut(out, method, MAX_METHOD);
    out.push(' ');
    match t.uri {
        Some(uri) => normalise_path(uri, out),
        None => out.push_str(NONE),
    }
}

/// Appends the normalised path of `uri`: no scheme or authority, no query or
/// fragment, id-like segments as `:id`, at most 16 segments and 160 bytes.
pub fn normalise_path(uri: &str, out: &mut String) {
    let start = out.len();
    let mut path = uri;
    // Absolute form (a forward proxy's request): keep the path only.
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        path = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    if let Some(end) = memchr::memchr2(b'?', b'#', path.as_bytes()) {
        path = &path[..end];
    }
    if !path.starts_with('/') {
        // `*`, an authority (CONNECT) or garbage: one row, cut short.
        push_cut(out, path, MAX_PATH);
        return;
    }
    // Cut at each '/' found by memchr: an ASCII byte, so every cut is a char boundary.
    let rest = &path[1..];
    let mut from = 0;
    for n in 0.. {
        let end = memchr::memchr(b'/', &rest.as_bytes()[from..]).map_or(rest.len(), |i| from + i);
        if n == MAX_SEGMENTS {
            out.push_str("/…");
            break;
        }
        let segment = &rest[from..end];
        out.push('/');
        if is_id(segment.as_bytes()) {
            out.push_str(":id");
        } else {
            out.push_str(segment);
        }
        if out.len() - start > MAX_PATH {
            out.truncate(floor_boundary(out, start + MAX_PATH));
            out.push('…');
            break;
        }
        if end == rest.len() {
            break;
        }
        from = end + 1;
    }
}

/// The largest char boundary of `s` at or before `i` (`i` ≤ `s.len()`).
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn push_cut(out: &mut String, s: &str, max: usize) {
    if s.len() <= max {
        out.push_str(s);
        return;
    }
    out.push_str(&s[..floor_boundary(s, max)]);
    out.push('…');
}

/// A segment that names one thing among many: a number, a UUID, a hash or
/// a long token. Words (`v2`, `users`, `index.html`) are kept.
fn is_id(b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    // One pass: a line's URL is looked at once per request.
    let (mut digits, mut hex, mut token, mut dashes_at_uuid) = (0usize, true, true, true);
    for (i, c) in b.iter().enumerate() {
        let is_digit = c.is_ascii_digit();
        digits += usize::from(is_digit);
        hex &= c.is_ascii_hexdigit();
        token &= c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
        dashes_at_uuid &= match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
    }
    digits == b.len()
        || (b.len() == 36 && dashes_at_uuid)
        || (b.len() >= 12 && digits > 0 && hex)
        || (b.len() >= 20 && digits >= 2 && token)
}

/// A status as stored: the code, or 0 for none (tcplog, `-1`, nonsense).
pub fn status_code(status: Option<i64>) -> u16 {
    match status {
        Some(s @ 100..=999) => s as u16,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(uri: &str) -> String {
        let mut out = String::new();
        normalise_path(uri, &mut out);
        out
    }

    #[test]
    fn one_endpoint_is_one_path() {
        assert_eq!(norm("/api/users/123?expand=1"), "/api/users/:id");
        assert_eq!(
            norm("/api/users/987/orders/5#x"),
            "/api/users/:id/orders/:id"
        );
        assert_eq!(
            norm("/o/3f2504e0-4f89-11d3-9a0c-0305e82c3301/items"),
            "/o/:id/items"
        );
        assert_eq!(norm("/blob/9f86d081884c7d659a2f"), "/blob/:id");
        assert_eq!(norm("/s/AbCdEf0123456789xyzQRS"), "/s/:id");
        assert_eq!(norm("https://h:443/p/42?q"), "/p/:id");
        assert_eq!(norm("http://h"), "/");
        // Words and versions stay.
        assert_eq!(norm("/v2/index.html"), "/v2/index.html");
        assert_eq!(norm("/static/app.3f2a.css"), "/static/app.3f2a.css");
        assert_eq!(
            norm("/cafe/deadbeef"),
            "/cafe/deadbeef",
            "short hex words stay"
        );
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("*"), "*");
    }

    #[test]
    fn paths_are_bounded() {
        let deep = "/a".repeat(40);
        assert_eq!(norm(&deep), format!("{}/…", "/a".repeat(16)));
        let long = format!("/{}", "é".repeat(200));
        let n = norm(&long);
        assert!(n.len() <= MAX_PATH + '…'.len_utf8(), "{}", n.len());
        assert!(n.ends_with('…'));
        let junk = "x".repeat(500);
        assert_eq!(norm(&junk).chars().count(), MAX_PATH + 1);
    }

    #[test]
    fn a_backend_keeps_at_most_the_limit_and_sums_the_rest() {
        use hapwatch_parsers::{Event, Parser};
        let p = Parser::new(vec![]);
        let line = |path: &str, status: u16| {
            format!("10.0.0.1:4242 [23/Nov/2026:01:23:33.398] fe be/s1 0/0/1/2/3 {status} 100 - - ---- 1/1/0/0/0 0/0 \"GET {path} HTTP/1.1\"")
        };
        let mut table = UrlTable::default();
        let mut scratch = String::new();
        let lines = [
            line("/a/1", 200),
            line("/a/2?x", 503),
            line("/b", 404),
            line("/c", 200),
            line("/d", 200),
        ];
        for l in &lines {
            let Event::Traffic(t) = p.parse_message(l).unwrap() else {
                panic!("not traffic")
            };
            table.add(&t, 2, &mut scratch);
        }
        let mut rows: Vec<_> = table.into_rows().collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        let got: Vec<_> = rows
            .iter()
            .map(|(m, p, c)| (m.as_str(), p.as_str(), c.requests, c.s4xx, c.s5xx, c.bytes))
            .collect();
        assert_eq!(
            got,
            vec![
                ("", OTHER, 2, 0, 0, 200),
                ("GET", "/a/:id", 2, 0, 1, 200),
                ("GET", "/b", 1, 1, 0, 100),
            ]
        );
    }

    #[test]
    fn statuses_outside_http_are_none() {
        assert_eq!(status_code(Some(503)), 503);
        assert_eq!(status_code(Some(-1)), 0);
        assert_eq!(status_code(Some(70000)), 0);
        assert_eq!(status_code(None), 0);
    }
}
