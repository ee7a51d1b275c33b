//! Health and agent check results, server state changes, "no server available",
//! and proxy / process lifecycle lines. Low volume, rich grammar: nom combinators.
//!
//! Every such message ends with a `.`; a line without it was cut by HAProxy's
//! `len`, and then the trailing counts are simply absent.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_till1};
use nom::character::complete::{i64 as dec_i64, u32 as dec_u32, u64 as dec_u64};
use nom::combinator::{opt, rest, value};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

use crate::event::{
    AdminState, CheckResult, CheckType, Event, HealthCheck, Other, ServerState, StateChange,
    StateTemplate,
};
use crate::{ErrorKind, ParseError};

type In<'a> = &'a str;

fn malformed(msg: &str, at: &str, expected: &'static str) -> ParseError {
    ParseError {
        kind: ErrorKind::BadHealth,
        at: msg.len() - at.len(),
        expected,
    }
}

/// Dispatches on the first words. `None`: not a message of this family.
pub(crate) fn parse_health(msg: &str) -> Option<Result<Event<'_>, ParseError>> {
    let first = msg.as_bytes().first()?;
    match first {
        b'H' | b'A'
            if msg.starts_with("Health check for ") || msg.starts_with("Agent check for ") =>
        {
            Some(check_line(msg))
        }
        b'S' | b'B' if msg.starts_with("Server ") || msg.starts_with("Backup Server ") => {
            Some(state_line(msg))
        }
        _ => other_line(msg).map(Ok),
    }
}

// ---------------------------------------------------------------------------
// shared pieces

/// `be/srv`, where the server name runs to the next space.
fn proxy_server(i: In<'_>) -> IResult<In<'_>, (&str, &str)> {
    (
        take_till1(|c| c == '/' || c == ' '),
        preceded(tag("/"), take_till1(|c| c == ' ')),
    )
        .parse(i)
}

/// Check details shared by check lines and state lines without log-health-checks:
/// `, reason: D[, code: N][, info: "T"][, check duration: Nms]`.
struct CheckDetails<'a> {
    reason: &'a str,
    code: Option<i64>,
    info: Option<&'a str>,
    duration: Option<u64>,
}

fn check_details(i: In<'_>) -> IResult<In<'_>, CheckDetails<'_>> {
    // Descriptions come from a fixed table and contain neither `,` nor `.`.
    let (i, reason) = preceded(tag(", reason: "), take_till(|c| c == ',' || c == '.')).parse(i)?;
    let (i, code) = opt(preceded(tag(", code: "), dec_i64)).parse(i)?;
    // `"` inside info is escaped as <22>, so the first quote closes it.
    let (i, info) = opt(delimited(
        tag(", info: \""),
        take_till(|c| c == '"'),
        tag("\""),
    ))
    .parse(i)?;
    let (i, duration) = opt(delimited(tag(", check duration: "), dec_u64, tag("ms"))).parse(i)?;
    Ok((
        i,
        CheckDetails {
            reason,
            code,
            info,
            duration,
        },
    ))
}

fn strip_final_dot(msg: &str) -> &str {
    msg.strip_suffix('.').unwrap_or(msg)
}

// ---------------------------------------------------------------------------
// check result lines

fn check_line(msg: &str) -> Result<Event<'_>, ParseError> {
    let body = strip_final_dot(msg);
    let parsed = (
        alt((
            value(CheckType::Health, tag("Health check for ")),
            value(CheckType::Agent, tag("Agent check for ")),
        )),
        opt(tag("backup ")),
        preceded(tag("server "), proxy_server),
        preceded(
            tag(" "),
            alt((
                value(
                    CheckResult::ConditionallySucceeded,
                    tag("conditionally succeeded"),
                ),
                value(CheckResult::Succeeded, tag("succeeded")),
                value(CheckResult::Failed, tag("failed")),
            )),
        ),
        check_details,
    )
        .parse(body);
    let (i, (check_type, backup, (proxy, server), result, d)) =
        parsed.map_err(|e| nom_error(msg, e, "check line"))?;
    let mut hc = HealthCheck {
        check_type,
        proxy,
        server,
        backup: backup.is_some(),
        result,
        reason: d.reason,
        code: d.code,
        info: d.info,
        check_duration_ms: d.duration,
        health: None,
        health_of: None,
        health_state: None,
    };
    let status: IResult<_, _> = (
        preceded(tag(", status: "), dec_u32),
        preceded(tag("/"), dec_u32),
        preceded(tag(" "), alt((tag("UP"), tag("DRAIN"), tag("DOWN")))),
    )
        .parse(i);
    match status {
        Ok(("", (n, m, state))) => {
            hc.health = Some(n);
            hc.health_of = Some(m);
            hc.health_state = Some(state);
        }
        // Cut by `len` before or inside the status: keep what we have.
        _ if !msg.ends_with('.') => {}
        _ => return Err(malformed(msg, i, "', status: N/M STATE.'")),
    }
    Ok(Event::HealthCheck(hc))
}

fn nom_error(
    msg: &str,
    e: nom::Err<nom::error::Error<&str>>,
    expected: &'static str,
) -> ParseError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => malformed(msg, e.input, expected),
        nom::Err::Incomplete(_) => malformed(msg, "", expected),
    }
}

// ---------------------------------------------------------------------------
// server state lines

fn state_line(msg: &str) -> Result<Event<'_>, ParseError> {
    let body = strip_final_dot(msg);
    let (i, backup) = opt(tag::<_, _, nom::error::Error<&str>>("Backup "))
        .parse(body)
        .unwrap_or((body, None));
    let (i, (proxy, server)) = preceded(tag("Server "), proxy_server)
        .parse(i)
        .map_err(|e| nom_error(msg, e, "Server be/srv"))?;
    let i = i
        .strip_prefix(' ')
        .ok_or_else(|| malformed(msg, i, "space"))?;
    let mut sc = state_sentence(i, proxy, server)
        .ok_or_else(|| malformed(msg, i, "a known server state sentence"))?;
    sc.backup = backup.is_some();
    Ok(Event::StateChange(sc))
}

/// ` via be/srv`, tolerating the sentence's own trailing dot after the name.
fn via(i: In<'_>) -> IResult<In<'_>, &str> {
    let (_, target) = preceded(tag(" via "), take_till1(|c| c == ' ')).parse(i)?;
    // Names may contain dots, so a dot is the sentence's only when the line
    // goes on with the counts tail.
    let target = target.strip_suffix('.').unwrap_or(target);
    Ok((&i[" via ".len() + target.len()..], target))
}

/// ` (cause)`, e.g. `(DNS NX status)`, `('disable' on stats page)`.
fn paren_cause(i: In<'_>) -> IResult<In<'_>, &str> {
    delimited(tag(" ("), take_till(|c| c == ')'), tag(")")).parse(i)
}

fn up_down(i: In<'_>) -> IResult<In<'_>, ServerState> {
    alt((
        value(ServerState::Up, tag("UP")),
        value(ServerState::Down, tag("DOWN")),
    ))
    .parse(i)
}

fn ready_drain(i: In<'_>) -> IResult<In<'_>, AdminState> {
    alt((
        value(AdminState::Ready, tag("READY")),
        value(AdminState::Drain, tag("DRAIN")),
    ))
    .parse(i)
}

/// Counts after the change: `. A active and B backup servers left|online.[ Running
/// on backup.] …`. Every piece is optional because `len` may cut the line.
fn tail<'a>(i: In<'a>, sc: &mut StateChange<'a>) {
    let counts: IResult<_, _> = (
        preceded(tag(". "), dec_u32),
        preceded(tag(" active and "), dec_u32),
        preceded(tag(" backup servers "), alt((tag("left"), tag("online")))),
    )
        .parse(i);
    let Ok((i, (a, b, word))) = counts else {
        return;
    };
    sc.active_servers = Some(a);
    sc.backup_servers = Some(b);
    let (i, rob) = opt(tag::<_, _, nom::error::Error<&str>>(". Running on backup"))
        .parse(i)
        .unwrap_or((i, None));
    sc.running_on_backup = Some(rob.is_some());
    let Some(i) = i.strip_prefix(". ") else {
        return;
    };
    if word == "left" {
        // `K sessions active, R requeued, Q remaining in queue`
        let r: IResult<_, _> = (
            terminated(dec_u32, tag(" sessions active")),
            opt(preceded(tag(", "), terminated(dec_u32, tag(" requeued")))),
            opt(preceded(
                tag(", "),
                terminated(dec_u32, tag(" remaining in queue")),
            )),
        )
            .parse(i);
        if let Ok((_, (k, r, q))) = r {
            sc.sessions_active = Some(k);
            sc.sessions_requeued = r;
            sc.in_queue = q;
        }
    } else {
        // `R sessions requeued, Q total in queue`
        let r: IResult<_, _> = (
            terminated(dec_u32, tag(" sessions requeued")),
            opt(preceded(
                tag(", "),
                terminated(dec_u32, tag(" total in queue")),
            )),
        )
            .parse(i);
        if let Ok((_, (r, q))) = r {
            sc.sessions_requeued = Some(r);
            sc.in_queue = q;
        }
    }
}

/// The part after `Server be/srv `.
fn state_sentence<'a>(i: In<'a>, proxy: &'a str, server: &'a str) -> Option<StateChange<'a>> {
    use StateTemplate as T;
    let mk = |t| StateChange::new(t, proxy, server);

    // DNS forms put the FQDN first: `('fqdn') is UP/READY (resolves again)`.
    let (i, fqdn) = opt(delimited(
        tag::<_, _, nom::error::Error<&str>>("('"),
        take_till(|c| c == '\''),
        tag("') "),
    ))
    .parse(i)
    .ok()?;

    if let Some(r) = i.strip_prefix("is going DOWN for maintenance") {
        let mut sc = mk(T::GoingMaint);
        sc.new_state = Some(ServerState::Maint);
        sc.admin_state = Some(AdminState::Maint);
        let (r, cause) = opt(paren_cause).parse(r).ok()?;
        let (r, v) = opt(via).parse(r).ok()?;
        sc.cause = cause;
        sc.via = v;
        tail(r, &mut sc);
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("was DOWN and now enters maintenance") {
        let mut sc = mk(T::MaintWasDown);
        sc.new_state = Some(ServerState::Maint);
        sc.old_state = Some(ServerState::Down);
        sc.admin_state = Some(AdminState::Maint);
        let (r, cause) = opt(paren_cause).parse(r).ok()?;
        let (_, v) = opt(via).parse(r).ok()?;
        sc.cause = cause;
        sc.via = v;
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("enters drain state") {
        let mut sc = mk(T::EntersDrain);
        sc.new_state = Some(ServerState::Drain);
        sc.admin_state = Some(AdminState::Drain);
        let (r, cause) = opt(paren_cause).parse(r).ok()?;
        let (r, v) = opt(via).parse(r).ok()?;
        sc.cause = cause;
        sc.via = v;
        tail(r, &mut sc);
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("remains in forced drain mode") {
        let mut sc = mk(T::RemainsForcedDrain);
        drain_to_drain(&mut sc);
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    if let Some(r) = i
        .strip_prefix("remains in drain mode")
        .or_else(|| i.strip_prefix("is leaving forced drain but remains in drain mode"))
    {
        let mut sc = mk(T::RemainsDrain);
        drain_to_drain(&mut sc);
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("remains in forced maintenance") {
        let mut sc = mk(T::RemainsForcedMaint);
        maint_to_maint(&mut sc);
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("is leaving forced maintenance but remains in maintenance") {
        let mut sc = mk(T::LeaveForcedMaintRemains);
        maint_to_maint(&mut sc);
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("resolves again but remains in maintenance") {
        let mut sc = mk(T::ResolvesRemainsMaint);
        maint_to_maint(&mut sc);
        sc.fqdn = fqdn;
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    if let Some(r) = i.strip_prefix("administratively READY thanks to valid DNS answer") {
        if !r.is_empty() {
            return None;
        }
        let mut sc = mk(T::DnsReady);
        sc.admin_state = Some(AdminState::Ready);
        return Some(sc);
    }
    let r = i.strip_prefix("is ")?;
    // `is UP/READY (leaving forced maintenance)` and friends.
    let slash: IResult<_, _> = (up_down, preceded(tag("/"), ready_drain), paren_cause).parse(r);
    if let Ok((r, (new, admin, why))) = slash {
        let t = match why {
            "leaving forced maintenance" => T::LeaveForcedMaint,
            "leaving maintenance" => T::LeaveMaint,
            "resolves again" => T::ResolvesAgain,
            _ => return None,
        };
        let mut sc = mk(t);
        sc.new_state = Some(new);
        sc.old_state = Some(ServerState::Maint);
        sc.admin_state = Some(admin);
        sc.fqdn = fqdn;
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    // `is UP (leaving forced drain)`, `is DOWN (leaving drain) via X/Y`.
    let drain: IResult<_, _> = (up_down, paren_cause).parse(r);
    if let Ok((r, (new, why))) = drain {
        let t = match why {
            "leaving forced drain" => T::LeaveForcedDrain,
            "leaving drain" => T::LeaveDrain,
            _ => return None,
        };
        let mut sc = mk(t);
        sc.new_state = Some(new);
        sc.old_state = Some(ServerState::Drain);
        sc.admin_state = Some(AdminState::Ready);
        sc.via = opt(via).parse(r).ok()?.1;
        return Some(sc);
    }
    // The operational change: `is DOWN|UP|stopping<CAUSE><VIA><TAIL>`.
    let (r, (t, new)) = alt((
        value(
            (T::Down, ServerState::Down),
            tag::<_, _, nom::error::Error<&str>>("DOWN"),
        ),
        value((T::Up, ServerState::Up), tag("UP")),
        value((T::Stopping, ServerState::Stopping), tag("stopping")),
    ))
    .parse(r)
    .ok()?;
    let mut sc = mk(t);
    sc.new_state = Some(new);
    let mut r = r;
    if r.starts_with(", reason: ") {
        let (rr, d) = check_details(r).ok()?;
        sc.reason = Some(d.reason);
        sc.code = d.code;
        sc.info = d.info;
        sc.check_duration_ms = d.duration;
        r = rr;
    } else if let Some(c) = r.strip_prefix(", ") {
        // `changed from CLI` and similar: up to the via, the tail or the end.
        let end = [c.find(" via "), c.find(". ")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(c.len());
        sc.cause = Some(&c[..end]);
        r = &c[end..];
    }
    let (r, v) = opt(via).parse(r).ok()?;
    sc.via = v;
    tail(r, &mut sc);
    Some(sc)
}

fn drain_to_drain(sc: &mut StateChange<'_>) {
    sc.new_state = Some(ServerState::Drain);
    sc.old_state = Some(ServerState::Drain);
    sc.admin_state = Some(AdminState::Drain);
}

fn maint_to_maint(sc: &mut StateChange<'_>) {
    sc.new_state = Some(ServerState::Maint);
    sc.old_state = Some(ServerState::Maint);
    sc.admin_state = Some(AdminState::Maint);
}

// ---------------------------------------------------------------------------
// backend, proxy and process lines

fn proxy_type(i: In<'_>) -> IResult<In<'_>, &str> {
    alt((
        tag("frontend"),
        tag("backend"),
        tag("proxy"),
        tag("listener"),
    ))
    .parse(i)
}

fn other_line(msg: &str) -> Option<Event<'_>> {
    if let Some(head) = msg.strip_suffix(" has no server available!") {
        let (ptype, proxy) = head.split_once(' ')?;
        if proxy.contains(' ') {
            return None;
        }
        return Some(Event::BackendDown {
            proxy,
            proxy_type: ptype,
        });
    }
    if let Some(rest) = msg.strip_prefix("Proxy ") {
        return proxy_line(rest);
    }
    if msg.starts_with("Connect ") {
        return crate::traffic::parse_connect_from(msg);
    }
    if msg == "soft-stop running for too long, performing a hard-stop." {
        return Some(Event::Other(Other::SoftStopTooLong));
    }
    let body = strip_final_dot(msg);
    let paused: IResult<_, _> = (
        alt((tag("Paused "), tag("Pausing "))),
        proxy_type,
        preceded(tag(" "), rest),
    )
        .parse(body);
    if let Ok((_, (_, ptype, proxy))) = paused {
        return Some(Event::Other(Other::ProxyPaused { ptype, proxy }));
    }
    let resumed: IResult<_, _> = (
        alt((tag("Resumed "), tag("Enabling "))),
        proxy_type,
        preceded(tag(" "), rest),
    )
        .parse(body);
    if let Ok((_, (_, ptype, proxy))) = resumed {
        return Some(Event::Other(Other::ProxyResumed { ptype, proxy }));
    }
    let stopping: IResult<_, _> = (
        preceded(tag("Stopping "), proxy_type),
        preceded(tag(" "), take_till1(|c| c == ' ')),
        delimited(tag(" in "), dec_u64, tag(" ms")),
    )
        .parse(body);
    if let Ok(("", (ptype, proxy, ms))) = stopping {
        return Some(Event::Other(Other::ProxyStopping { ptype, proxy, ms }));
    }
    const PROCESS: [&str; 5] = [
        "Some tasks resisted to hard-stop",
        "Grace period expired",
        "Scheduling a soft-stop",
        "Some proxies refused to pause",
        "Some proxies refused to resume",
    ];
    if PROCESS.iter().any(|p| msg.starts_with(p)) {
        return Some(Event::Other(Other::Process { text: body }));
    }
    None
}

fn proxy_line(rest: &str) -> Option<Event<'_>> {
    let body = strip_final_dot(rest);
    let (proxy, what) = body.split_once(' ')?;
    if what == "started" {
        return Some(Event::Other(Other::ProxyStarted { proxy }));
    }
    let stopped: IResult<_, _> = alt((
        // 2.2+
        (
            preceded(tag("stopped (cumulated conns: FE: "), dec_u64),
            delimited(tag(", BE: "), dec_u64, tag(")")),
        ),
        // ≤2.1
        (
            preceded(tag("stopped (FE: "), dec_u64),
            delimited(tag(" conns, BE: "), dec_u64, tag(" conns)")),
        ),
    ))
    .parse(what);
    if let Ok(("", (fe, be))) = stopped {
        return Some(Event::Other(Other::ProxyStopped { proxy, fe, be }));
    }
    let hard: IResult<_, _> = delimited(
        tag("hard-stopped ("),
        dec_u64,
        tag(" remaining conns will be closed)"),
    )
    .parse(what);
    if let Ok(("", remaining)) = hard {
        return Some(Event::Other(Other::ProxyHardStopped { proxy, remaining }));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(msg: &str) -> StateChange<'_> {
        match parse_health(msg) {
            Some(Ok(Event::StateChange(s))) => s,
            other => panic!("{msg}: {other:?}"),
        }
    }

    #[test]
    fn down_running_on_backup() {
        let s = state("Server be_http/s1 is DOWN. 0 active and 1 backup servers left. Running on backup. 0 sessions active, 0 requeued, 0 remaining in queue.");
        assert_eq!(s.running_on_backup, Some(true));
        assert_eq!(s.backup_servers, Some(1));
        assert_eq!(s.in_queue, Some(0));
    }

    #[test]
    fn via_with_dotted_server_name() {
        let s = state("Server be/a.b is DOWN via trk/x.y. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.");
        assert_eq!(s.server, "a.b");
        assert_eq!(s.via, Some("trk/x.y"));
        assert_eq!(s.active_servers, Some(1));
    }

    #[test]
    fn newer_admin_causes_are_operator_actions() {
        for cause in [
            "changed from Lua script",
            "changed from Web interface",
            "changed from server-state after a reload",
        ] {
            let line = format!(
                "Server be/s1 is DOWN, {cause}. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."
            );
            let s = state(&line);
            assert_eq!(s.cause, Some(cause));
            assert!(s.is_operator_action(), "{cause}");
            assert_eq!(s.active_servers, Some(1));
        }
    }

    #[test]
    fn cause_then_via_28() {
        let s = state("Server be/s1 is UP, changed from CLI via trk/t1. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.");
        assert_eq!(s.cause, Some("changed from CLI"));
        assert_eq!(s.via, Some("trk/t1"));
        assert_eq!(s.sessions_requeued, Some(0));
    }

    #[test]
    fn dns_forms() {
        let s = state("Server be/s1 ('api.example.com') is UP/READY (resolves again).");
        assert_eq!(s.template, StateTemplate::ResolvesAgain);
        assert_eq!(s.fqdn, Some("api.example.com"));
        let s = state("Server be/s1 is going DOWN for maintenance (No IP for server ). 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.");
        assert_eq!(s.cause, Some("No IP for server "));
        assert_eq!(s.active_servers, Some(0));
    }

    #[test]
    fn truncated_tail_keeps_head() {
        let s = state("Server be/s1 is DOWN. 3 active and 1 backup servers left. 0 sess");
        assert_eq!(s.new_state, Some(ServerState::Down));
        assert_eq!(s.active_servers, Some(3));
        assert_eq!(s.sessions_active, None);
    }

    #[test]
    fn truncated_check_line() {
        match parse_health("Health check for server be/s1 failed, reason: Layer4 timeout, check duration: 501ms, sta") {
            Some(Ok(Event::HealthCheck(h))) => {
                assert_eq!(h.check_duration_ms, Some(501));
                assert_eq!(h.health, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_wordings() {
        assert!(matches!(
            parse_health("Proxy fe stopped (FE: 3 conns, BE: 0 conns)."),
            Some(Ok(Event::Other(Other::ProxyStopped { fe: 3, be: 0, .. })))
        ));
        assert!(matches!(
            parse_health("Stopping frontend fe in 2000 ms."),
            Some(Ok(Event::Other(Other::ProxyStopping { ms: 2000, .. })))
        ));
        assert!(matches!(
            parse_health("proxy stats has no server available!"),
            Some(Ok(Event::BackendDown {
                proxy_type: "proxy",
                ..
            }))
        ));
    }

    #[test]
    fn garbage_after_server_is_an_error() {
        assert!(matches!(parse_health("Server be/s1 dances."), Some(Err(_))));
    }
}
