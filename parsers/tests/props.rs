//! Property tests: no input panics, and lines built from random valid field
//! values read back as those values.

use hapwatch_parsers::{CheckResult, Event, LogFormat, Parser, ServerState};
use proptest::prelude::*;

fn parser() -> Parser {
    let json = r#"{"time":"%tr","client":"%ci","cport":%cp,"fe":"%ft","be":"%b","srv":"%s","TR":%TR,"status":%ST,"req":%{+Q}r,"uid":"%ID"}"#;
    Parser::new(vec![LogFormat::compile("custom_json", json).unwrap()])
}

const SEEDS: [&str; 8] = [
    "<134>Nov 23 01:23:33 haproxy[19328]: 127.0.0.1:55360 [23/Nov/2026:01:23:33.398] fe_http be_app/app1 0/0/0/3/3 404 155 - - ---- 3/3/1/0/0 0/0 {www.example.test:8080|Mozilla/5.0} {text/plain} \"GET /status/404 HTTP/1.1\"",
    "<134>1 2026-11-23T01:24:26.066793+00:00 - haproxy 23628 - - 127.0.0.1:35668 [23/Nov/2026:01:23:35.069] fe_https~ be_app/app3 0/0/1/5/6 200 165 - - ---- 6/6/2/0/0 0/0 \"GET /u HTTP/1.1\" 0/0000000000000000/0/0/0 shop.example.test/TLSv1.3/TLS_AES_256_GCM_SHA384",
    "<142>Nov 23 01:23:36 haproxy[19328]: 127.0.0.1:32838 [23/Nov/2026:01:23:36.550] fe_tcp be_tcp/tcp1 1/0/+1 +155 -- 2/2/1/0/+1 0/0",
    "<133>Nov 23 01:23:33 haproxy[1]: Health check for backup server be_app/bk1 failed, reason: Layer7 wrong status, code: 503, info: \"Service <22>Unavailable\", check duration: 1ms, status: 0/2 DOWN.",
    "<129>Nov 23 01:23:33 haproxy[1]: Backup Server be_app/app4 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 0 active and 1 backup servers left. Running on backup. 0 sessions active, 0 requeued, 0 remaining in queue.",
    "<134>Nov 23 01:23:34 haproxy[1]: 127.0.0.1 - - [23/Nov/2026:01:23:34 +0000] \"GET / HTTP/1.1\" 200 150 \"\" \"\" 56740 300 \"fe_clf\" \"be_app\" \"app1\" 0 0 0 2 2 ---- 4 4 3 1 0 0 0 \"\" \"\" ",
    "<134>Nov 23 01:23:34 haproxy[1]: {\"time\":\"23/Nov/2026:01:23:34.397\",\"client\":\"127.0.0.1\",\"cport\":38360,\"fe\":\"fe_custom\",\"be\":\"be_app\",\"srv\":\"app3\",\"TR\":0,\"status\":200,\"req\":\"GET /a HTTP/1.1\",\"uid\":\"7F0\"}",
    "<133>Nov 23 01:24:05 haproxy[1]: Server be/s1 ('api.example.com') resolves again but remains in maintenance via trk/t1.",
];

#[test]
fn every_prefix_of_real_lines_is_handled() {
    let p = parser();
    for seed in SEEDS {
        for end in 0..=seed.len() {
            let _ = p.parse(&seed.as_bytes()[..end]);
        }
    }
}

#[test]
fn an_httplog_line_cut_in_its_request_is_truncated_not_bad() {
    let p = parser();
    let seed = SEEDS[0];
    let start = seed.find("\"GET").unwrap() + 2;
    for end in start..seed.len() - 1 {
        let rec = p.parse(&seed.as_bytes()[..end]).unwrap();
        match rec.event {
            Event::Traffic(t) => assert!(t.truncated, "cut at {end}"),
            e => panic!("{e:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parser().parse(&bytes);
    }

    #[test]
    fn mutated_real_lines_never_panic(seed in 0..SEEDS.len(), at in any::<prop::sample::Index>(), junk in "[ -~]{0,12}", cut in any::<bool>()) {
        let s = SEEDS[seed];
        let i = at.index(s.len());
        let mut line = s[..i].to_string();
        line.push_str(&junk);
        if !cut {
            line.push_str(&s[i..]);
        }
        let _ = parser().parse(line.as_bytes());
    }
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9._:-]{0,15}"
}

fn timer() -> impl Strategy<Value = i64> {
    prop_oneof![Just(-1i64), 0i64..100_000]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn httplog_round_trips(
        ip in prop_oneof![Just("127.0.0.1".to_string()), Just("2001:db8::1".to_string()), "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"],
        port in 1u32..65536,
        fe in name(), ssl in any::<bool>(), be in name(), srv in name(),
        t in proptest::array::uniform5(timer()), asap in any::<bool>(),
        status in prop_oneof![Just(-1i64), 100i64..600], bytes in any::<u32>(),
        tsc in "[-CSPLRIDKUcs][-RQCHDLT][-NIDVEOU][-NIUPRD]",
        conns in proptest::array::uniform4(0u32..100_000), retries in 0u32..10, redisp in any::<bool>(),
        sq in 0u32..1000, bq in 0u32..1000,
        caps in proptest::option::of(proptest::collection::vec("[ -z~]{0,20}".prop_filter("no braces or pipes", |s| !s.contains(['{', '|', '}'])), 1..4)),
        method in "[A-Z]{3,7}", path in "/[!#-~]{0,40}",
    ) {
        let fe_txt = if ssl { format!("{fe}~") } else { fe.clone() };
        let ta = if asap { format!("+{}", t[4].max(0)) } else { t[4].to_string() };
        let rc = if redisp { format!("+{retries}") } else { retries.to_string() };
        let cap_txt = caps.as_ref().map(|c| format!("{{{}}} ", c.join("|"))).unwrap_or_default();
        let line = format!(
            "{ip}:{port} [23/Nov/2026:01:09:09.727] {fe_txt} {be}/{srv} {}/{}/{}/{}/{ta} {status} {bytes} - - {tsc} {}/{}/{}/{}/{rc} {sq}/{bq} {cap_txt}\"{method} {path} HTTP/1.1\"",
            t[0], t[1], t[2], t[3], conns[0], conns[1], conns[2], conns[3],
        );
        let p = Parser::default();
        let ev = p.parse_message(&line).unwrap();
        let Event::Traffic(tr) = ev else { panic!("not traffic") };
        prop_assert_eq!(tr.client_ip, Some(ip.as_str()));
        prop_assert_eq!(tr.client_port, Some(port));
        prop_assert_eq!(tr.frontend, Some(fe.as_str()));
        prop_assert_eq!(tr.ssl_frontend, ssl);
        prop_assert_eq!((tr.backend, tr.server), (Some(be.as_str()), Some(srv.as_str())));
        prop_assert_eq!([tr.t_request, tr.t_wait, tr.t_connect, tr.t_response], [Some(t[0]), Some(t[1]), Some(t[2]), Some(t[3])]);
        prop_assert_eq!(tr.t_active, Some(if asap { t[4].max(0) } else { t[4] }));
        prop_assert_eq!(tr.logasap, asap);
        prop_assert_eq!(tr.status, Some(status));
        prop_assert_eq!(tr.bytes_read, Some(u64::from(bytes)));
        prop_assert_eq!(tr.termination_state, Some(tsc.as_str()));
        prop_assert_eq!([tr.actconn, tr.feconn, tr.beconn, tr.srv_conn], conns.map(Some));
        prop_assert_eq!((tr.retries, tr.redispatched), (Some(retries), redisp));
        prop_assert_eq!((tr.srv_queue, tr.backend_queue), (Some(sq), Some(bq)));
        let got_caps = tr.req_headers.map(|c| c.iter().map(str::to_string).collect::<Vec<_>>());
        prop_assert_eq!(got_caps, caps);
        prop_assert_eq!(tr.method, Some(method.as_str()));
        prop_assert_eq!(tr.uri, Some(path.as_str()));
        prop_assert!(!tr.truncated);
    }

    #[test]
    fn state_lines_round_trip(
        backup in any::<bool>(), be in name(), srv in name(), down in any::<bool>(),
        cause in proptest::option::of(prop_oneof![Just("changed from CLI"), Just("changed from Lua script")]),
        via in proptest::option::of((name(), name())),
        act in 0u32..50, bck in 0u32..50, k in 0u32..1000, r in 0u32..1000, q in 0u32..1000,
    ) {
        let mut line = format!("{}Server {be}/{srv} is {}", if backup { "Backup " } else { "" }, if down { "DOWN" } else { "UP" });
        if let Some(c) = cause { line.push_str(", "); line.push_str(c); }
        if let Some((vb, vs)) = &via { line.push_str(&format!(" via {vb}/{vs}")); }
        let rob = act == 0 && bck > 0;
        if down {
            line.push_str(&format!(". {act} active and {bck} backup servers left.{} {k} sessions active, {r} requeued, {q} remaining in queue.", if rob { " Running on backup." } else { "" }));
        } else {
            line.push_str(&format!(". {act} active and {bck} backup servers online.{} {r} sessions requeued, {q} total in queue.", if rob { " Running on backup." } else { "" }));
        }
        let p = Parser::default();
        let Event::StateChange(s) = p.parse_message(&line).unwrap() else { panic!("not a state change") };
        prop_assert_eq!((s.proxy, s.server, s.backup), (be.as_str(), srv.as_str(), backup));
        prop_assert_eq!(s.new_state, Some(if down { ServerState::Down } else { ServerState::Up }));
        prop_assert_eq!(s.cause, cause);
        prop_assert_eq!(s.via.map(str::to_string), via.map(|(a, b)| format!("{a}/{b}")));
        prop_assert_eq!((s.active_servers, s.backup_servers, s.running_on_backup), (Some(act), Some(bck), Some(rob)));
        prop_assert_eq!(s.sessions_active, if down { Some(k) } else { None });
        prop_assert_eq!((s.sessions_requeued, s.in_queue), (Some(r), Some(q)));
    }

    #[test]
    fn check_lines_round_trip(
        agent in any::<bool>(), backup in any::<bool>(), be in name(), srv in name(),
        result in prop_oneof![Just(CheckResult::Succeeded), Just(CheckResult::ConditionallySucceeded), Just(CheckResult::Failed)],
        reason in prop_oneof![Just("Layer4 timeout"), Just("Layer7 wrong status"), Just("Health analyze")],
        code in proptest::option::of(0i64..600), info in proptest::option::of("[ -!#-~]{0,40}"),
        dur in proptest::option::of(0u64..100_000), n in 0u32..10, m in 1u32..10,
        state in prop_oneof![Just("UP"), Just("DOWN"), Just("DRAIN")],
    ) {
        let mut line = format!("{} check for {}server {be}/{srv} {}, reason: {reason}",
            if agent { "Agent" } else { "Health" }, if backup { "backup " } else { "" }, result.as_str());
        if let Some(c) = code { line.push_str(&format!(", code: {c}")); }
        if let Some(i) = &info { line.push_str(&format!(", info: \"{i}\"")); }
        if let Some(d) = dur { line.push_str(&format!(", check duration: {d}ms")); }
        line.push_str(&format!(", status: {n}/{m} {state}."));
        let p = Parser::default();
        let Event::HealthCheck(h) = p.parse_message(&line).unwrap() else { panic!("not a check") };
        prop_assert_eq!((h.proxy, h.server, h.backup, h.result), (be.as_str(), srv.as_str(), backup, result));
        prop_assert_eq!(h.reason, reason);
        prop_assert_eq!(h.code, code);
        prop_assert_eq!(h.info, info.as_deref());
        prop_assert_eq!(h.check_duration_ms, dur);
        prop_assert_eq!((h.health, h.health_of, h.health_state), (Some(n), Some(m), Some(state)));
    }
}
