//! httplog, httpslog and tcplog lines, plus the embryonic-session error lines that
//! share their first fields. Hand-scanned: these are the bulk of the stream.

use crate::cursor::{int, split_addr, uint, Cursor};
use crate::event::{Captures, Event, Other, Protocol, SslInfo, Traffic, TrafficFormat};
use crate::{ErrorKind, ParseError};

type Res<'a> = Result<Event<'a>, ParseError>;

fn bad(kind: ErrorKind, c: &Cursor<'_>, expected: &'static str) -> ParseError {
    ParseError {
        kind,
        at: c.pos(),
        expected,
    }
}

/// Cheap test used for dispatch: `<ip>:<port> [` or `unknown [`.
pub(crate) fn looks_like_traffic(msg: &str) -> bool {
    let b = msg.as_bytes();
    let Some(sp) = b.iter().take(64).position(|&c| c == b' ') else {
        return false;
    };
    b.get(sp + 1) == Some(&b'[') && (b[..sp].contains(&b':') || &b[..sp] == b"unknown")
}

/// Parses httplog, httpslog, tcplog and connection-error lines.
pub(crate) fn parse_traffic(msg: &str) -> Res<'_> {
    const K: ErrorKind = ErrorKind::BadTraffic;
    let mut c = Cursor::new(msg);
    let addr = c.until(b' ').ok_or_else(|| bad(K, &c, "client address"))?;
    let (client_ip, client_port) = split_addr(addr);
    if !c.lit("[") {
        return Err(bad(K, &c, "'[' before the date"));
    }
    let accept_date = c
        .until(b']')
        .ok_or_else(|| bad(K, &c, "']' after the date"))?;
    if !c.lit(" ") {
        return Err(bad(K, &c, "space after the date"));
    }
    let fe = c.until(b' ').ok_or_else(|| {
        // `fe/bind: message` lines end right after the frontend token only when
        // the message is empty, which HAProxy never logs.
        bad(K, &c, "frontend")
    })?;
    // `fe/bind: message`: names may end with `:` but never contain `/`.
    if let Some((frontend, bind)) = fe.strip_suffix(':').and_then(|f| f.split_once('/')) {
        return Ok(Event::Other(Other::ConnError {
            client_ip,
            client_port,
            accept_date,
            frontend,
            bind,
            error: c.take_rest(),
        }));
    }
    let (frontend, ssl_frontend) = match fe.strip_suffix('~') {
        Some(f) => (f, true),
        None => (fe, false),
    };
    let be_srv = c.until(b' ').ok_or_else(|| bad(K, &c, "backend/server"))?;
    let slash =
        memchr::memchr(b'/', be_srv.as_bytes()).ok_or_else(|| bad(K, &c, "backend/server"))?;
    let (backend, server) = (&be_srv[..slash], &be_srv[slash + 1..]);
    let mut t = [0i64; 5];
    let (n, plus) = c
        .int_list(&mut t)
        .ok_or_else(|| bad(K, &c, "3 or 5 numeric timers"))?;
    let logasap = plus != 0;
    // Filled in place: building it on the stack and boxing it at the end would
    // copy ~400 bytes per line.
    let mut tr = match n {
        5 => Box::new(Traffic::empty(Protocol::Http, TrafficFormat::Httplog)),
        3 => Box::new(Traffic::empty(Protocol::Tcp, TrafficFormat::Tcplog)),
        _ => return Err(bad(K, &c, "3 or 5 timers")),
    };
    tr.client_ip = Some(client_ip);
    tr.client_port = client_port;
    tr.accept_date = Some(accept_date);
    tr.frontend = Some(frontend);
    tr.ssl_frontend = ssl_frontend;
    tr.backend = Some(backend);
    tr.server = Some(server);
    tr.logasap = logasap;
    if n == 5 {
        tr.t_request = Some(t[0]);
        tr.t_wait = Some(t[1]);
        tr.t_connect = Some(t[2]);
        tr.t_response = Some(t[3]);
        tr.t_active = Some(t[4]);
        let status = c.until(b' ').ok_or_else(|| bad(K, &c, "status"))?;
        tr.status = Some(int(status).ok_or_else(|| bad(K, &c, "numeric status"))?);
    } else {
        tr.t_wait = Some(t[0]);
        tr.t_connect = Some(t[1]);
        tr.t_total = Some(t[2]);
    }
    let bytes = c.until(b' ').ok_or_else(|| bad(K, &c, "bytes"))?;
    tr.logasap |= bytes.starts_with('+');
    tr.bytes_read =
        Some(uint(bytes.strip_prefix('+').unwrap_or(bytes)).ok_or_else(|| bad(K, &c, "bytes"))?);
    if n == 5 {
        tr.req_cookie = Some(c.until(b' ').ok_or_else(|| bad(K, &c, "request cookie"))?);
        tr.res_cookie = Some(c.until(b' ').ok_or_else(|| bad(K, &c, "response cookie"))?);
    }
    tr.termination_state = Some(
        c.until(b' ')
            .ok_or_else(|| bad(K, &c, "termination state"))?,
    );
    let mut conns = [0i64; 5];
    match c.int_list(&mut conns) {
        Some((5, plus)) if plus & 0b01111 == 0 => {
            tr.actconn = u32::try_from(conns[0]).ok();
            tr.feconn = u32::try_from(conns[1]).ok();
            tr.beconn = u32::try_from(conns[2]).ok();
            tr.srv_conn = u32::try_from(conns[3]).ok();
            tr.retries = u32::try_from(conns[4]).ok();
            tr.redispatched = plus != 0;
        }
        _ => return Err(bad(K, &c, "ac/fc/bc/sc/rc")),
    }
    let mut queues = [0i64; 2];
    match c.int_list(&mut queues) {
        Some((2, 0)) => {
            tr.srv_queue = u32::try_from(queues[0]).ok();
            tr.backend_queue = u32::try_from(queues[1]).ok();
        }
        _ => return Err(bad(K, &c, "sq/bq")),
    }
    if n == 3 {
        if !c.is_empty() {
            return Err(bad(K, &c, "end of tcplog line"));
        }
        return Ok(Event::Traffic(tr));
    }
    parse_http_tail(&mut c, &mut tr)?;
    Ok(Event::Traffic(tr))
}

/// Header captures, the quoted request, and httpslog's TLS suffix. Any of them
/// may be cut by HAProxy's `len`; that is a truncated line, not a bad one.
fn parse_http_tail<'a>(c: &mut Cursor<'a>, tr: &mut Traffic<'a>) -> Result<(), ParseError> {
    for slot in 0..2 {
        if c.peek() != Some(b'{') {
            break;
        }
        c.advance(1);
        // `}` inside a capture is encoded as #7D, so the first `}` closes it.
        let Some(raw) = c.until_long(b'}') else {
            tr.truncated = true;
            return Ok(());
        };
        let caps = Some(Captures { raw, sep: b'|' });
        if slot == 0 {
            tr.req_headers = caps;
        } else {
            tr.res_headers = caps;
        }
        if !c.lit(" ") {
            tr.truncated = c.is_empty();
            if tr.truncated {
                return Ok(());
            }
            return Err(bad(ErrorKind::BadTraffic, c, "space after captures"));
        }
    }
    if c.is_empty() {
        tr.truncated = true;
        return Ok(());
    }
    if !c.lit("\"") {
        return Err(bad(ErrorKind::BadTraffic, c, "quoted request"));
    }
    match c.until_long(b'"') {
        Some(req) => tr.set_request(req),
        None => {
            tr.set_request(c.take_rest());
            tr.truncated = true;
            tr.http_version = None;
            return Ok(());
        }
    }
    if c.is_empty() {
        return Ok(());
    }
    if !c.lit(" ") {
        return Err(bad(ErrorKind::BadTraffic, c, "end of request"));
    }
    let errs = c
        .until(b' ')
        .ok_or_else(|| bad(ErrorKind::BadTraffic, c, "httpslog"))?;
    let tls = c.take_rest();
    tr.ssl = Some(parse_ssl(errs, tls).ok_or_else(|| bad(ErrorKind::BadTraffic, c, "httpslog"))?);
    tr.format = TrafficFormat::Httpslog;
    Ok(())
}

fn parse_ssl<'a>(errs: &'a str, tls: &'a str) -> Option<SslInfo<'a>> {
    let mut e = errs.split('/');
    let fc_err = int(e.next()?);
    let ssl_fc_err = e.next()?;
    let ssl_c_err = int(e.next()?);
    let ssl_c_ca_err = int(e.next()?);
    let resumed = match e.next()? {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    };
    // The SNI is client-controlled and may contain `/`; version and cipher never do.
    let (rest, cipher) = tls.rsplit_once('/')?;
    let (sni, version) = rest.rsplit_once('/')?;
    Some(SslInfo {
        fc_err,
        ssl_fc_err,
        ssl_c_err,
        ssl_c_ca_err,
        resumed,
        sni: dash_none(sni),
        version: dash_none(version),
        cipher: dash_none(cipher),
    })
}

fn dash_none(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

/// `Connect from <ip>:<port> to <ip>:<port> (<fe>/<mode>)` and its unix/unknown forms.
pub(crate) fn parse_connect_from(msg: &str) -> Option<Event<'_>> {
    let rest = msg.strip_prefix("Connect ")?;
    let (head, tail) = rest.rsplit_once(" (")?;
    let (proxy, mode) = tail.strip_suffix(')')?.split_once('/')?;
    let (src, dst) = if let Some(h) = head.strip_prefix("from ") {
        match h.split_once(" to ") {
            Some((s, d)) => (s, Some(d)),
            None => (h, None),
        }
    } else {
        (head.strip_prefix("to ")?, None)
    };
    let (src_ip, src_port) = split_addr(src);
    let (dst_ip, dst_port) = match dst.map(split_addr) {
        Some((ip, port)) => (Some(ip), port),
        None => (None, None),
    };
    Some(Event::Other(Other::ConnectFrom {
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        proxy,
        mode,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(line: &str) -> Traffic<'_> {
        match parse_traffic(line).unwrap() {
            Event::Traffic(t) => *t,
            other => panic!("not traffic: {other:?}"),
        }
    }

    #[test]
    fn httplog_with_captures() {
        let t = traffic("127.0.0.1:41702 [23/Nov/2026:01:09:09.727] fe_http be_http/s1 0/0/0/0/0 200 127 - - ---- 1/1/0/0/0 0/0 {example.com|Mozilla/5.0 (X11; Linux) #22quoted#22} {py} \"GET /index.html?a=1&b=%20x HTTP/1.1\"");
        assert_eq!(t.status, Some(200));
        assert_eq!(
            t.req_headers.unwrap().iter().collect::<Vec<_>>(),
            vec!["example.com", "Mozilla/5.0 (X11; Linux) #22quoted#22"]
        );
        assert_eq!(t.uri, Some("/index.html?a=1&b=%20x"));
        assert_eq!(t.http_version, Some("HTTP/1.1"));
        assert!(!t.truncated);
    }

    #[test]
    fn logasap_redispatch_ipv6() {
        let t = traffic("::ffff:127.0.0.1:60770 [23/Nov/2026:01:13:43.683] f3 b3/s1 0/0/0/3/+3 200 +127 SESS=abc - --VN 1/1/1/1/+1 0/0 {|127.0.0.1:38080} \"GET /mapped HTTP/1.1\"");
        assert_eq!(t.client_ip, Some("::ffff:127.0.0.1"));
        assert!(t.logasap && t.redispatched);
        assert_eq!(t.retries, Some(1));
        assert_eq!(t.bytes_read, Some(127));
        assert_eq!(
            t.req_headers.unwrap().iter().collect::<Vec<_>>(),
            vec!["", "127.0.0.1:38080"]
        );
    }

    #[test]
    fn unix_client_and_h2_request() {
        let t = traffic("unix:3 [23/Nov/2026:01:09:09.727] fe~ be/s1 0/0/0/1/1 200 10 - - ---- 1/1/0/0/0 0/0 \"GET https://h:443/p HTTP/2.0\"");
        assert_eq!((t.client_ip, t.client_port), (Some("unix"), Some(3)));
        assert!(t.ssl_frontend);
        assert_eq!(t.uri, Some("https://h:443/p"));
        assert_eq!(t.http_version, Some("HTTP/2.0"));
    }

    #[test]
    fn truncated_inside_captures() {
        let t = traffic("1.2.3.4:5 [23/Nov/2026:01:09:09.727] fe be/s1 0/0/0/1/1 200 10 - - ---- 1/1/0/0/0 0/0 {abc|de");
        assert!(t.truncated);
        assert_eq!(t.request, None);
    }

    #[test]
    fn tcplog_rejects_trailing_garbage() {
        assert!(parse_traffic(
            "1.2.3.4:5 [23/Nov/2026:01:09:09.727] fe be/s1 1/0/1 155 -- 2/2/1/0/0 0/0 extra"
        )
        .is_err());
    }

    #[test]
    fn connect_from_forms() {
        let e = parse_connect_from("Connect to unix:1 (fe/HTTP)").unwrap();
        assert!(matches!(
            e,
            Event::Other(Other::ConnectFrom {
                src_ip: "unix",
                src_port: Some(1),
                proxy: "fe",
                mode: "HTTP",
                ..
            })
        ));
    }
}
