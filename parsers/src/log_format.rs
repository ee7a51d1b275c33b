//! HAProxy `log-format` strings, compiled once into a plan of literals and
//! items, then used to read lines left to right.
//!
//! An item ends at the next literal of the plan, except where HAProxy's
//! rendering says otherwise: quoted values end at their closing quote (a `"`
//! inside is always escaped `#22`), capture blocks at `}`, and the dates with a
//! zone (`%T`, `%Tl`, `%trg`, `%trl`) are fixed-width and contain a space.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_till1, take_while1};
use nom::combinator::{map, opt, value};
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

use crate::cursor::{int, u32_, uint};
use crate::event::{Captures, Event, Protocol, Traffic, TrafficFormat};
use crate::{ErrorKind, ParseError};

/// `option httplog` (1.7+).
pub const HTTPLOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// `option httpslog` (2.5+).
pub const HTTPSLOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc";
/// `option tcplog`.
pub const TCPLOG: &str = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";
/// `option httplog clf` (1.7+).
pub const HTTPLOG_CLF: &str = "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl";

/// HAProxy's own example of a JSON format (3.1's `log-profile` article, and
/// the names its docs use): JSON lines with these keys are read without being
/// told the format.
pub const HAPROXY_JSON: &str = "%{+json}o %(client_ip)ci %(client_port)cp %(request_date)tr %(frontend_name)ft %(backend_name)b %(server_name)s %(time_to_receive)TR %(time_waiting)Tw %(time_to_connect)Tc %(time_server_response)Tr %(time_active)Ta %(status_code)ST %(bytes_read)B %(request_cookies)CC %(response_cookies)CS %(termination_state)tsc %(process_active_connections)ac %(frontend_active_connections)fc %(backend_active_connections)bc %(server_active_connections)sc %(retries)rc %(server_queue)sq %(backend_queue)bq %(request_headers)hr %(response_headers)hs %(request_line)r";

/// A `log-format` item, by what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    ClientIp,
    ClientPort,
    FrontendIp,
    FrontendPort,
    BackendIp,
    BackendPort,
    ServerIp,
    ServerPort,
    /// `%t`, `%tr`: local, no zone.
    Date,
    /// `%T`, `%Tl`, `%trg`, `%trl`: with a ` +hhmm` zone.
    DateWithZone,
    AcceptTs,
    AcceptMs,
    Frontend,
    FrontendWithSsl,
    Backend,
    Server,
    Th,
    Ti,
    TR,
    Tq,
    Tw,
    Tc,
    Tr,
    Td,
    Ta,
    Tt,
    Tu,
    Status,
    BytesRead,
    BytesUploaded,
    ReqCookie,
    ResCookie,
    TermState,
    TermStateCookies,
    ActConn,
    FeConn,
    BeConn,
    SrvConn,
    Retries,
    SrvQueue,
    BeQueue,
    ReqHeaders,
    ResHeaders,
    ReqHeaderList,
    ResHeaderList,
    Request,
    Method,
    Uri,
    Path,
    Query,
    Version,
    PathOnly,
    UniqueId,
    Hostname,
    Pid,
    ReqCounter,
    LogCounter,
    SslVersion,
    SslCipher,
    LogOrigin,
    /// `%[expr]`: an arbitrary sample fetch.
    Sample(String),
}

impl Var {
    fn from_alias(alias: &str) -> Option<Var> {
        use Var::*;
        Some(match alias {
            "ci" | "Ci" => ClientIp,
            "cp" | "Cp" => ClientPort,
            "fi" | "Fi" => FrontendIp,
            "fp" | "Fp" => FrontendPort,
            "bi" | "Bi" => BackendIp,
            "bp" | "Bp" => BackendPort,
            "si" | "Si" => ServerIp,
            "sp" | "Sp" => ServerPort,
            "t" | "tr" => Date,
            "T" | "Tl" | "trg" | "trl" => DateWithZone,
            "Ts" => AcceptTs,
            "ms" => AcceptMs,
            "f" => Frontend,
            "ft" => FrontendWithSsl,
            "b" => Backend,
            "s" => Server,
            "Th" => Th,
            "Ti" => Ti,
            "TR" => TR,
            "Tq" => Tq,
            "Tw" => Tw,
            "Tc" => Tc,
            "Tr" => Tr,
            "Td" => Td,
            "Ta" => Ta,
            "Tt" => Tt,
            "Tu" => Tu,
            "ST" | "st" => Status,
            "B" => BytesRead,
            "U" => BytesUploaded,
            "CC" | "cc" => ReqCookie,
            "CS" | "cs" => ResCookie,
            "ts" => TermState,
            "tsc" => TermStateCookies,
            "ac" => ActConn,
            "fc" => FeConn,
            "bc" => BeConn,
            "sc" => SrvConn,
            "rc" => Retries,
            "sq" => SrvQueue,
            "bq" => BeQueue,
            "hr" => ReqHeaders,
            "hs" => ResHeaders,
            "hrl" => ReqHeaderList,
            "hsl" => ResHeaderList,
            "r" => Request,
            "HM" => Method,
            "HU" => Uri,
            "HP" => Path,
            "HQ" => Query,
            "HV" => Version,
            "HPO" => PathOnly,
            "ID" => UniqueId,
            "H" => Hostname,
            "pid" => Pid,
            "rt" => ReqCounter,
            "lc" => LogCounter,
            "sslv" => SslVersion,
            "sslc" => SslCipher,
            "OG" => LogOrigin,
            _ => return None,
        })
    }

    fn is_http(&self) -> bool {
        use Var::*;
        matches!(
            self,
            TR | Tr
                | Ta
                | Status
                | ReqCookie
                | ResCookie
                | TermStateCookies
                | ReqHeaders
                | ResHeaders
                | ReqHeaderList
                | ResHeaderList
                | Request
                | Method
                | Uri
                | Path
                | Query
                | Version
                | PathOnly
        )
    }

    fn is_numeric(&self) -> bool {
        use Var::*;
        matches!(
            self,
            ClientPort
                | FrontendPort
                | BackendPort
                | ServerPort
                | AcceptTs
                | AcceptMs
                | Th
                | Ti
                | TR
                | Tq
                | Tw
                | Tc
                | Tr
                | Td
                | Ta
                | Tt
                | Tu
                | Status
                | BytesRead
                | BytesUploaded
                | ActConn
                | FeConn
                | BeConn
                | SrvConn
                | Retries
                | SrvQueue
                | BeQueue
                | Pid
                | ReqCounter
                | LogCounter
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Literal(String),
    Item { var: Var, quoted: bool },
}

/// Why a `log-format` string could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unknown log-format alias %{alias} at offset {offset}")]
    UnknownAlias { alias: String, offset: usize },
    #[error("cannot read log-format at offset {offset} (unclosed %{{…}}, %[…] or a lone %)")]
    Syntax { offset: usize },
    #[error("log-format has no items")]
    Empty,
}

/// How a format's items are written (3.0+: `%{+json}o`, `%{+cbor}o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Text,
    /// One JSON object of the named items.
    Json,
    /// The same as CBOR, hex by default: recognised, not read yet.
    Cbor,
}

/// A compiled `log-format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    name: String,
    source: String,
    nodes: Vec<Node>,
    protocol: Protocol,
    encoding: Encoding,
    /// JSON: each item's key (its `%(name)`, else its alias) and what it is.
    keys: Vec<(String, Var)>,
}

#[derive(Clone)]
enum Token<'a> {
    Text(&'a str),
    Percent,
    Item {
        flags: Option<&'a str>,
        /// 3.0+ `%(name)alias`: the key of the item in a JSON or CBOR line.
        name: Option<&'a str>,
        alias: &'a str,
        sample: bool,
    },
}

fn token(i: &str) -> IResult<&str, Token<'_>> {
    alt((
        value(Token::Percent, tag("%%")),
        map(
            preceded(
                tag("%"),
                (
                    opt(delimited(tag("{"), take_till(|c| c == '}'), tag("}"))),
                    // 3.0+ named items: `%(name[:type])alias`.
                    opt(delimited(tag("("), take_till(|c| c == ')'), tag(")"))),
                    alt((
                        map(
                            delimited(tag("["), take_till1(|c| c == ']'), tag("]")),
                            |s| (s, true),
                        ),
                        map(take_while1(|c: char| c.is_ascii_alphanumeric()), |s| {
                            (s, false)
                        }),
                    )),
                ),
            ),
            |(flags, name, (alias, sample))| Token::Item {
                flags,
                name,
                alias,
                sample,
            },
        ),
        map(take_till1(|c| c == '%'), Token::Text),
    ))
    .parse(i)
}

impl LogFormat {
    /// Compiles a format string as HAProxy would read it (after config unquoting).
    pub fn compile(name: &str, source: &str) -> Result<LogFormat, FormatError> {
        let (rest, tokens) = many0(token)
            .parse(source)
            .map_err(|_| FormatError::Syntax { offset: 0 })?;
        if !rest.is_empty() {
            return Err(FormatError::Syntax {
                offset: source.len() - rest.len(),
            });
        }
        let mut nodes: Vec<Node> = Vec::new();
        let mut default_quoted = false;
        let mut encoding = Encoding::Text;
        let mut keys: Vec<(String, Var)> = Vec::new();
        let mut offset = 0;
        let push_text = |nodes: &mut Vec<Node>, t: &str| {
            if let Some(Node::Literal(prev)) = nodes.last_mut() {
                prev.push_str(t);
            } else {
                nodes.push(Node::Literal(t.to_string()));
            }
        };
        for tok in tokens {
            match tok {
                Token::Text(t) => {
                    offset += t.len();
                    push_text(&mut nodes, t);
                }
                Token::Percent => {
                    offset += 2;
                    push_text(&mut nodes, "%");
                }
                Token::Item {
                    flags,
                    name,
                    alias,
                    sample,
                } => {
                    let quoted = match flags {
                        Some(f) if f.split(',').any(|f| f == "+Q") => true,
                        Some(f) if f.split(',').any(|f| f == "-Q") => false,
                        _ => default_quoted,
                    };
                    let at = offset;
                    offset += 1
                        + flags.map_or(0, |f| f.len() + 2)
                        + alias.len()
                        + if sample { 2 } else { 0 };
                    if sample {
                        let var = Var::Sample(alias.to_string());
                        let key = name.map_or(alias, |n| n.split(':').next().unwrap_or(n));
                        keys.push((key.to_string(), var.clone()));
                        nodes.push(Node::Item { var, quoted });
                    } else if alias == "o" {
                        // `%o` sets the default flags of every following item.
                        default_quoted = quoted;
                        let has =
                            |flag: &str| flags.is_some_and(|f| f.split(',').any(|g| g == flag));
                        if has("+json") {
                            encoding = Encoding::Json;
                        } else if has("+cbor") {
                            encoding = Encoding::Cbor;
                        }
                    } else {
                        let var =
                            Var::from_alias(alias).ok_or_else(|| FormatError::UnknownAlias {
                                alias: alias.to_string(),
                                offset: at,
                            })?;
                        // `%(name:type)`: the key is the name.
                        let key = name.map_or(alias, |n| n.split(':').next().unwrap_or(n));
                        keys.push((key.to_string(), var.clone()));
                        nodes.push(Node::Item { var, quoted });
                    }
                }
            }
        }
        // HAProxy collapses runs of spaces in the format to one.
        for n in &mut nodes {
            if let Node::Literal(l) = n {
                while l.contains("  ") {
                    *l = l.replace("  ", " ");
                }
            }
        }
        if let Some(Node::Literal(l)) = nodes.first_mut() {
            // Nothing is printed before the first item (`%{+Q}o %ci…` starts with `ci`).
            *l = l.trim_start().to_string();
            if l.is_empty() {
                nodes.remove(0);
            }
        }
        if let Some(Node::Literal(l)) = nodes.last_mut() {
            // Trailing blanks are not part of the format (HAProxy trims the line end).
            let t = l.trim_end().len();
            l.truncate(t);
            if l.is_empty() {
                nodes.pop();
            }
        }
        if !nodes.iter().any(|n| matches!(n, Node::Item { .. })) {
            return Err(FormatError::Empty);
        }
        let protocol = if nodes
            .iter()
            .any(|n| matches!(n, Node::Item { var, .. } if var.is_http()))
        {
            Protocol::Http
        } else {
            Protocol::Tcp
        };
        Ok(LogFormat {
            name: name.to_string(),
            source: source.to_string(),
            nodes,
            protocol,
            encoding,
            keys,
        })
    }

    /// A conventional name for a format found without one: JSON-looking formats
    /// are `custom_json`, others `custom`.
    pub fn default_name(source: &str) -> &'static str {
        if source.trim_start().starts_with('{') {
            "custom_json"
        } else {
            "custom"
        }
    }

    /// Compiles several formats, skipping repeats and naming them like
    /// [`default_name`](Self::default_name), numbered when a name repeats
    /// (`custom`, `custom_2`). On error, returns the index of the bad source.
    pub fn compile_all<'s>(
        sources: impl IntoIterator<Item = &'s str>,
    ) -> Result<Vec<LogFormat>, (usize, FormatError)> {
        let mut formats: Vec<LogFormat> = Vec::new();
        for (i, source) in sources.into_iter().enumerate() {
            if formats.iter().any(|f| f.source == source) {
                continue;
            }
            let base = Self::default_name(source);
            let taken = formats
                .iter()
                .filter(|f| {
                    f.name == base
                        || f.name
                            .strip_prefix(base)
                            .and_then(|n| n.strip_prefix('_'))
                            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count();
            let name = if taken == 0 {
                base.to_string()
            } else {
                format!("{base}_{}", taken + 1)
            };
            formats.push(Self::compile(&name, source).map_err(|e| (i, e))?);
        }
        Ok(formats)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads one message with this format.
    pub fn parse<'a>(&'a self, msg: &'a str) -> Result<Event<'a>, ParseError> {
        let format = if self.name == "clf" {
            TrafficFormat::Clf
        } else {
            TrafficFormat::Custom(&self.name)
        };
        self.parse_as(msg, format)
            .map(|t| Event::Traffic(Box::new(t)))
    }

    pub(crate) fn parse_as<'a>(
        &'a self,
        msg: &'a str,
        format: TrafficFormat<'a>,
    ) -> Result<Traffic<'a>, ParseError> {
        match self.encoding {
            Encoding::Text => {}
            Encoding::Json => return self.parse_json(msg, format),
            // Never read as text: its hex would "parse" as a client address.
            Encoding::Cbor => {
                return Err(ParseError {
                    kind: ErrorKind::BadTraffic,
                    at: 0,
                    expected: "a line this format can read (CBOR is not read yet)",
                })
            }
        }
        let mut tr = Traffic::empty(self.protocol, format);
        let b = msg.as_bytes();
        let mut pos = 0usize;
        let mut prev_empty = false;
        let fail = |at: usize, expected: &'static str| ParseError {
            kind: ErrorKind::BadTraffic,
            at,
            expected,
        };
        for (idx, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Literal(lit) => {
                    let mut lit = lit.as_str();
                    // An empty item does not repeat the separator before it.
                    if prev_empty && lit.starts_with(' ') && pos > 0 && b[pos - 1] == b' ' {
                        lit = &lit[1..];
                    }
                    if b[pos..].starts_with(lit.as_bytes()) {
                        pos += lit.len();
                    } else if lit.as_bytes().starts_with(&b[pos..]) {
                        // The line stops inside this literal: cut by `len`.
                        tr.truncated = true;
                        pos = b.len();
                        break;
                    } else {
                        return Err(fail(pos, "the format's literal text"));
                    }
                    prev_empty = false;
                }
                Node::Item { var, quoted } => {
                    if pos >= b.len() && tr.truncated {
                        break;
                    }
                    let next_lit = match self.nodes.get(idx + 1) {
                        Some(Node::Literal(l)) => Some(l.as_str()),
                        _ => None,
                    };
                    let (val, end, cut) = item_extent(
                        msg,
                        pos,
                        var,
                        *quoted,
                        next_lit,
                        idx + 1 == self.nodes.len(),
                    );
                    tr.truncated |= cut;
                    pos = end;
                    prev_empty = val.is_empty();
                    apply(&mut tr, var, val)
                        .ok_or_else(|| fail(pos, "a value of the format's item"))?;
                }
            }
        }
        if pos < b.len() {
            return Err(fail(pos, "end of line after the format"));
        }
        Ok(tr)
    }
}

impl LogFormat {
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// A `%{+json}o` line: one flat object whose keys are the format's.
    /// String values are kept as written (HAProxy's escapes too, as
    /// everywhere else); `null` is an absent value. A key the format does
    /// not have, or anything but a whole object, is not this format's line.
    fn parse_json<'a>(
        &'a self,
        msg: &'a str,
        format: TrafficFormat<'a>,
    ) -> Result<Traffic<'a>, ParseError> {
        let mut tr = Traffic::empty(self.protocol, format);
        let b = msg.as_bytes();
        let fail = |at: usize, expected: &'static str| ParseError {
            kind: ErrorKind::BadTraffic,
            at,
            expected,
        };
        let ws = |mut i: usize| {
            while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
                i += 1;
            }
            i
        };
        let mut pos = ws(0);
        if b.get(pos) != Some(&b'{') {
            return Err(fail(pos, "a JSON object"));
        }
        pos = ws(pos + 1);
        if b.get(pos) == Some(&b'}') {
            return Err(fail(pos, "a key of the format"));
        }
        let mut next = 0;
        loop {
            let (key, after) = json_string(msg, pos).ok_or_else(|| fail(pos, "a quoted key"))?;
            pos = ws(after);
            if b.get(pos) != Some(&b':') {
                return Err(fail(pos, "':' after a key"));
            }
            pos = ws(pos + 1);
            let (value, after) = match b.get(pos) {
                Some(b'"') => {
                    let (v, after) =
                        json_string(msg, pos).ok_or_else(|| fail(pos, "a closed string"))?;
                    (Some(v), after)
                }
                Some(_) => {
                    let end = b[pos..]
                        .iter()
                        .position(|c| *c == b',' || *c == b'}' || c.is_ascii_whitespace())
                        .map_or(b.len(), |n| pos + n);
                    match &msg[pos..end] {
                        "null" => (None, end),
                        "true" | "false" => (Some(&msg[pos..end]), end),
                        number
                            if number
                                .bytes()
                                .all(|c| c.is_ascii_digit() || c == b'-' || c == b'+')
                                && !number.is_empty() =>
                        {
                            (Some(number), end)
                        }
                        _ => return Err(fail(pos, "a string, a number or null")),
                    }
                }
                None => return Err(fail(pos, "a value")),
            };
            // HAProxy writes the keys in the format's order: look there first.
            let at = match self.keys.get(next) {
                Some((k, _)) if k == key => next,
                _ => self
                    .keys
                    .iter()
                    .position(|(k, _)| k == key)
                    .ok_or_else(|| fail(pos, "a key of the format"))?,
            };
            next = at + 1;
            let var = &self.keys[at].1;
            if let Some(v) = value {
                apply(&mut tr, var, v).ok_or_else(|| fail(pos, "a value of the format's item"))?;
            }
            pos = ws(after);
            match b.get(pos) {
                Some(b',') => pos = ws(pos + 1),
                Some(b'}') => {
                    pos = ws(pos + 1);
                    break;
                }
                _ => return Err(fail(pos, "',' or '}' after a value")),
            }
        }
        if pos < b.len() {
            return Err(fail(pos, "end of line after the object"));
        }
        Ok(tr)
    }
}

/// A JSON string at `pos` (its opening quote): its text as written, escapes
/// kept, and the position after its closing quote.
fn json_string(msg: &str, pos: usize) -> Option<(&str, usize)> {
    let b = msg.as_bytes();
    if b.get(pos) != Some(&b'"') {
        return None;
    }
    let mut i = pos + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((msg.get(pos + 1..i)?, i + 1)),
            _ => i += 1,
        }
    }
    None
}

/// Where an item's value starts and ends: returns (value, position after, truncated).
fn item_extent<'a>(
    msg: &'a str,
    pos: usize,
    var: &Var,
    quoted: bool,
    next_lit: Option<&str>,
    last: bool,
) -> (&'a str, usize, bool) {
    let b = msg.as_bytes();
    let rest = &msg[pos..];
    if matches!(var, Var::ReqHeaders | Var::ResHeaders) {
        if b.get(pos) != Some(&b'{') {
            return ("", pos, false);
        }
        return match memchr::memchr(b'}', &b[pos..]) {
            Some(n) => (&msg[pos + 1..pos + n], pos + n + 1, false),
            None => (&msg[pos + 1..], b.len(), true),
        };
    }
    if b.get(pos) == Some(&b'"') && (quoted || !var.is_numeric()) {
        return match memchr::memchr(b'"', &b[pos + 1..]) {
            Some(n) => (&msg[pos + 1..pos + 1 + n], pos + n + 2, false),
            None => (&msg[pos + 1..], b.len(), true),
        };
    }
    // `dd/Mon/yyyy:HH:MM:SS +zzzz` is ASCII; checking that also keeps the slice
    // on a character boundary (found by cargo fuzz).
    if *var == Var::DateWithZone
        && rest.len() >= 26
        && rest.as_bytes()[20] == b' '
        && rest.as_bytes()[..26].is_ascii()
    {
        return (&rest[..26], pos + 26, false);
    }
    if last {
        return (rest, b.len(), false);
    }
    match next_lit {
        Some(lit) if !lit.is_empty() => {
            // Search for the literal's first line-significant part.
            match find_literal(rest.as_bytes(), lit.as_bytes()) {
                Some(n) => (&rest[..n], pos + n, false),
                None => (rest, b.len(), !rest.is_empty() || !lit.starts_with(' ')),
            }
        }
        // Two items back to back: numbers end at the first non-digit.
        _ => {
            let n = rest
                .bytes()
                .position(|c| {
                    if var.is_numeric() {
                        !(c.is_ascii_digit() || c == b'-' || c == b'+')
                    } else {
                        c == b' '
                    }
                })
                .unwrap_or(rest.len());
            (&rest[..n], pos + n, false)
        }
    }
}

/// First occurrence of a short literal. Literals are a few bytes and usually
/// found within a few bytes, where building a memmem searcher costs more than it saves.
fn find_literal(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(n) = memchr::memchr(first, &hay[from..]) {
        let at = from + n;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn num(v: &str) -> Option<Option<i64>> {
    if v == "-" || v.is_empty() {
        return Some(None);
    }
    int(v).map(Some)
}

fn small(v: &str) -> Option<Option<u32>> {
    if v == "-" || v.is_empty() {
        return Some(None);
    }
    u32_(v).map(Some)
}

/// Stores one item's value; `None` when a numeric item is not a number.
fn apply<'a>(tr: &mut Traffic<'a>, var: &Var, v: &'a str) -> Option<()> {
    use Var::*;
    let s = || if v.is_empty() { None } else { Some(v) };
    match var {
        ClientIp => tr.client_ip = s(),
        ClientPort => tr.client_port = small(v)?,
        Date | DateWithZone => {
            if tr.accept_date.is_none() {
                tr.accept_date = s();
            }
        }
        AcceptMs => tr.accept_ms = small(v)?,
        Frontend => tr.frontend = s(),
        FrontendWithSsl => match v.strip_suffix('~') {
            Some(f) => {
                tr.frontend = Some(f);
                tr.ssl_frontend = true;
            }
            None => tr.frontend = s(),
        },
        Backend => tr.backend = s(),
        Server => tr.server = s(),
        TR => tr.t_request = num(v)?,
        Tq => {
            if tr.t_request.is_none() {
                tr.t_request = num(v)?;
            }
        }
        Tw => tr.t_wait = num(v)?,
        Tc => tr.t_connect = num(v)?,
        Tr => tr.t_response = num(v)?,
        Ta => {
            tr.logasap |= v.starts_with('+');
            tr.t_active = num(v)?;
        }
        Tt => {
            tr.logasap |= v.starts_with('+');
            tr.t_total = num(v)?;
        }
        Status => tr.status = num(v)?,
        BytesRead => {
            tr.logasap |= v.starts_with('+');
            let digits = v.strip_prefix('+').unwrap_or(v);
            tr.bytes_read = if digits == "-" {
                None
            } else {
                Some(uint(digits)?)
            };
        }
        ReqCookie => tr.req_cookie = Some(v),
        ResCookie => tr.res_cookie = Some(v),
        TermState | TermStateCookies => tr.termination_state = s(),
        ActConn => tr.actconn = small(v)?,
        FeConn => tr.feconn = small(v)?,
        BeConn => tr.beconn = small(v)?,
        SrvConn => tr.srv_conn = small(v)?,
        Retries => {
            tr.redispatched = v.starts_with('+');
            tr.retries = small(v.strip_prefix('+').unwrap_or(v))?;
        }
        SrvQueue => tr.srv_queue = small(v)?,
        BeQueue => tr.backend_queue = small(v)?,
        ReqHeaders | ResHeaders | ReqHeaderList | ResHeaderList => {
            if !v.is_empty() {
                let sep = if matches!(var, ReqHeaders | ResHeaders) {
                    b'|'
                } else {
                    b' '
                };
                let caps = Some(Captures { raw: v, sep });
                if matches!(var, ReqHeaders | ReqHeaderList) {
                    tr.req_headers = caps;
                } else {
                    tr.res_headers = caps;
                }
            }
        }
        Request => tr.set_request(v),
        Method => tr.method = s(),
        Uri => tr.uri = s(),
        Version => tr.http_version = s(),
        UniqueId => tr.unique_id = s(),
        // Parsed for position only; the schema has no field for them.
        FrontendIp | FrontendPort | BackendIp | BackendPort | ServerIp | ServerPort | AcceptTs
        | Th | Ti | Td | Tu | BytesUploaded | Path | Query | PathOnly | Hostname | Pid
        | ReqCounter | LogCounter | SslVersion | SslCipher | LogOrigin | Sample(_) => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_format_reads_its_own_keys_and_nothing_else() {
        let f = LogFormat::compile(
            "j",
            "%{+json}o %(client)ci %(be)b %(srv)s %(status)ST %(req)r %(ta)Ta",
        )
        .unwrap();
        assert_eq!(f.encoding(), Encoding::Json);
        let ok = r#"{"client": "10.0.0.1", "be": "be_api", "srv": "s1", "status": 503, "req": "GET /a\"b HTTP/1.1", "ta": -1}"#;
        let t = f.parse_as(ok, TrafficFormat::Custom("j")).unwrap();
        assert_eq!(
            (t.client_ip, t.backend, t.server),
            (Some("10.0.0.1"), Some("be_api"), Some("s1"))
        );
        assert_eq!(t.status, Some(503));
        // Escapes are kept as written, as HAProxy's are elsewhere.
        assert_eq!(t.request, Some(r#"GET /a\"b HTTP/1.1"#));
        // In any order, with nulls for absent values.
        let reordered = r#"{"srv": "s1", "be": "be_api", "client": null, "status": 200}"#;
        let t = f.parse_as(reordered, TrafficFormat::Custom("j")).unwrap();
        assert_eq!((t.client_ip, t.status), (None, Some(200)));
        for bad in [
            "",
            "{}",
            "not json",
            r#"{"client": "10.0.0.1""#,
            r#"{"client": "10.0.0.1", "other": 1}"#,
            r#"{"client": {"nested": 1}}"#,
            r#"{"status": "x"}"#,
            r#"{"client": "10.0.0.1"} trailing"#,
            r#"{"client": "unterminated}"#,
        ] {
            assert!(
                f.parse_as(bad, TrafficFormat::Custom("j")).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_cbor_format_never_reads_a_line() {
        let f = LogFormat::compile("c", "%{+cbor}o %(client)ci %(be)b").unwrap();
        assert_eq!(f.encoding(), Encoding::Cbor);
        assert!(f
            .parse_as("BF66636C69656E74", TrafficFormat::Custom("c"))
            .is_err());
    }

    #[test]
    fn compiles_builtin_formats() {
        for f in [HTTPLOG, HTTPSLOG, TCPLOG, HTTPLOG_CLF] {
            LogFormat::compile("x", f).unwrap();
        }
        assert_eq!(
            LogFormat::compile("x", TCPLOG).unwrap().protocol,
            Protocol::Tcp
        );
    }

    #[test]
    fn compile_all_names_and_dedupes() {
        let f = LogFormat::compile_all(["%ci %ST", "{\"s\":%ST}", "%ci %ST", "%b %ST"]).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["custom", "custom_json", "custom_2"]);
        assert_eq!(LogFormat::compile_all(["%ci", "%nope"]).unwrap_err().0, 1);
    }

    #[test]
    fn rejects_unknown_alias_with_offset() {
        let e = LogFormat::compile("x", "%ci %zz").unwrap_err();
        assert_eq!(
            e,
            FormatError::UnknownAlias {
                alias: "zz".into(),
                offset: 4
            }
        );
        assert!(LogFormat::compile("x", "%{+Q").is_err());
        assert_eq!(
            LogFormat::compile("x", "just text"),
            Err(FormatError::Empty)
        );
    }

    #[test]
    fn httplog_plan_reads_a_line_without_captures() {
        let f = LogFormat::compile("h", HTTPLOG).unwrap();
        let line = "127.0.0.1:41726 [23/Nov/2026:01:09:09.825] fe_http fe_http/<NOSRV> -1/-1/-1/-1/0 400 0 - - PR-- 1/1/0/0/0 0/0 \"<BADREQ>\"";
        let t = f.parse_as(line, TrafficFormat::Httplog).unwrap();
        assert_eq!(t.status, Some(400));
        assert_eq!(t.request, Some("<BADREQ>"));
        assert_eq!(t.req_headers, None);
        assert!(!t.truncated);
    }

    #[test]
    fn custom_json_with_truncation() {
        let f = LogFormat::compile("j", r#"{"st":%ST,"req":%{+Q}r,"id":"%ID"}"#).unwrap();
        let t = f
            .parse_as(
                r#"{"st":200,"req":"GET /a HTTP/1.1","id":"x"}"#,
                TrafficFormat::Custom("j"),
            )
            .unwrap();
        assert_eq!(
            (t.status, t.uri, t.unique_id),
            (Some(200), Some("/a"), Some("x"))
        );
        let t = f
            .parse_as(r#"{"st":200,"req":"GET /aaaa"#, TrafficFormat::Custom("j"))
            .unwrap();
        assert!(t.truncated);
        assert_eq!(t.uri, Some("/aaaa"));
        assert!(f
            .parse_as(r#"{"xx":200}"#, TrafficFormat::Custom("j"))
            .is_err());
    }

    #[test]
    fn zone_date_next_to_multibyte_text_does_not_panic() {
        let f = LogFormat::compile("z", "%T %ST").unwrap();
        let line = "23/Nov/2026:01:25:21 +000\u{6a2} 200";
        assert!(f.parse_as(line, TrafficFormat::Custom("z")).is_err());
    }

    #[test]
    fn zone_dates_and_percent_literal() {
        let f = LogFormat::compile("z", "%T 100%% %ST").unwrap();
        let t = f
            .parse_as(
                "23/Nov/2026:01:09:09 +0000 100% 503",
                TrafficFormat::Custom("z"),
            )
            .unwrap();
        assert_eq!(t.accept_date, Some("23/Nov/2026:01:09:09 +0000"));
        assert_eq!(t.status, Some(503));
    }
}
