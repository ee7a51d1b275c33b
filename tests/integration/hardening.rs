//! Hostile input a running daemon must survive without losing anything else:
//! every number of every template, out of range.

use std::collections::BTreeMap;

use crate::util::*;

/// One real datagram per (kind, template) of the captured stream.
fn one_per_template() -> Vec<Vec<u8>> {
    let mut seen = BTreeMap::new();
    for (d, label) in hapwatch_fixtures::labelled("default") {
        let key = (label["kind"].to_string(), label["template"].to_string());
        seen.entry(key).or_insert(d);
    }
    seen.into_values().collect()
}

/// The datagram with its `n`th run of digits replaced by `value`.
fn with_number(d: &[u8], n: usize, value: &str) -> Option<Vec<u8>> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i].is_ascii_digit() {
            let start = i;
            while i < d.len() && d[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    let (start, end) = *runs.get(n)?;
    Some([&d[..start], value.as_bytes(), &d[end..]].concat())
}

#[test]
fn out_of_range_numbers_lose_only_their_own_line() {
    const VALUES: [&str; 4] = [
        "18446744073709551615",                     // u64::MAX
        "9223372036854775808",                      // i64::MAX + 1
        "-1",                                       // negative
        "1234567890123456789012345678901234567890", // 40 digits
    ];
    let mut hostile = Vec::new();
    for d in one_per_template() {
        for n in 0.. {
            let Some(first) = with_number(&d, n, VALUES[0]) else {
                break;
            };
            hostile.push(first);
            hostile.extend(VALUES[1..].iter().filter_map(|v| with_number(&d, n, v)));
        }
    }
    assert!(hostile.len() > 500, "{} variants", hostile.len());
    // The real stream around them: its lines must all be stored.
    let good = datagrams("default");
    let mut all = good.clone();
    all.extend(hostile.iter().cloned());
    all.extend(good.iter().cloned());

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let cfg = ConfigBuilder::new(dir.path()).db(&db).udp().write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &all);
    daemon.wait_received(all.len() as u64);
    // Stopping closes every window; the totals line says what was parsed.
    let log = daemon.stop();
    let totals = log
        .iter()
        .find(|l| l.contains(" totals "))
        .expect("a totals line");
    assert_eq!(field(totals, "received"), all.len() as u64);
    assert_eq!(
        field(totals, "parsed") + field(totals, "parse_errors"),
        all.len() as u64,
        "every message parsed or counted as an error: {totals}"
    );
    assert_eq!(field(totals, "rows_rejected"), 0, "{totals}");

    let db = db.to_str().unwrap();
    let events = logged_events(json_lines(&[
        "events", "--db", db, "--since", "60d", "--json",
    ]));
    assert_eq!(
        events.len() as u64,
        field(totals, "events"),
        "every parsed event is stored: {totals}"
    );
    let windows = json_lines(&[
        "stats", "--db", db, "--by", "server", "--since", "60d", "--json",
    ]);
    let requests: u64 = windows
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        requests,
        field(totals, "traffic"),
        "every parsed traffic line is counted: {totals}"
    );
}

/// An httplog line of `host` through `be/srv`, accepted now.
fn traffic(host: &str, backend: &str, server: &str) -> Vec<u8> {
    let accept = accept_now();
    format!(
        "<134>Nov 23 01:23:33 {host} haproxy[1]: 10.0.0.1:4242 [{accept}] fe {backend}/{server} 0/0/1/5/6 200 100 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\""
    )
    .into_bytes()
}

/// A store and a UDP listener (port 0), after the `extra` TOML sections.
fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    ConfigBuilder::new(dir).toml(extra).udp().write()
}

#[test]
fn thirty_thousand_servers_are_counted_within_the_route_limit_and_a_down_still_pages() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(0, vec![]);
    let cfg = config(
        dir.path(),
        &format!(
            "[limits]\nroutes = 1000\n[http]\nlisten = \"127.0.0.1:0\"\n[notify]\ngroup_wait = \"0s\"\n\
             [[channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\n",
            hook.port
        ),
    );
    let mut daemon = Daemon::start(&cfg, 1);
    let (udp, http) = (daemon.port(0), daemon.http_port());
    let lines: Vec<Vec<u8>> = (0..30_000)
        .map(|n| traffic("lb1", "be_many", &format!("s{n}")))
        .collect();
    send_udp(udp, &lines);
    daemon.wait_counter("traffic", 30_000);
    let down = b"<129>Nov 23 01:23:33 lb1 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
    send_udp(udp, &[down.to_vec()]);
    let got = hook.wait_accepted(1);
    assert!(got[0].1.contains("be_x/s1"), "{}", got[0].1);
    let (status, metrics) = http_get(http, "/metrics");
    let log = daemon.stop();
    assert_eq!(status, 200);
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("hapwatch_requests_total{"))
        .count();
    assert!(
        series <= 1001,
        "{series} series for 1000 routes and the overflow"
    );
    assert!(
        metrics.contains("backend=\"_overflow\""),
        "the rest is counted"
    );
    assert!(
        metrics.contains("\nhapwatch_overflow_lines_total 29000\n"),
        "every line past the 1000th route is counted as over the limit"
    );
    let totals = log.iter().find(|l| l.contains(" totals ")).unwrap();
    assert_eq!(field(totals, "queue_drops"), 0, "{totals}");
    assert_eq!(field(totals, "traffic"), 30_000, "{totals}");
}

#[test]
fn hosts_heard_once_open_no_silence_but_a_steady_host_that_stops_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[incidents]\nsilence_after = \"2s\"\n");
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    // One line each from a thousand spoofed hostnames.
    let spoofed: Vec<Vec<u8>> = (0..1000)
        .map(|n| traffic(&format!("spoof{n}"), "be", "s1"))
        .collect();
    send_udp(udp, &spoofed);
    // A real load balancer, heard for three seconds, then quiet.
    for _ in 0..15 {
        send_udp(udp, &[traffic("lb-real", "be", "s1")]);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    daemon.wait_incident("kind = 'silence' AND host = 'lb-real'");
    let db = dir.path().join("h.db");
    let incidents = json_lines(&["incidents", "--db", db.to_str().unwrap(), "--json"]);
    daemon.stop();
    let silent: Vec<&str> = incidents
        .iter()
        .filter(|i| i["kind"] == "silence")
        .map(|i| i["host"].as_str().unwrap())
        .collect();
    assert_eq!(silent, ["lb-real"]);
}

#[test]
fn connections_beyond_the_tcp_limit_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path())
        .set("limits", "tcp_connections", "20")
        .listen("tcp://127.0.0.1:0", "")
        .write();
    let daemon = Daemon::start(&cfg, 1);
    let tcp = daemon.port(0);
    use std::io::{Read as _, Write as _};
    // Twenty hold a partial frame open; ten more are closed at once.
    let mut held: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
            s.write_all(&[b'x'; 60_000]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut closed = 0;
    for _ in 0..10 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        if matches!(s.read(&mut [0u8; 1]), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    held.clear();
    let log = daemon.stop();
    assert_eq!(closed, 10);
    let totals = log.iter().find(|l| l.contains(" totals ")).unwrap();
    assert_eq!(field(totals, "tcp_refused"), 10, "{totals}");
}

#[test]
fn control_characters_from_the_network_never_reach_a_terminal_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let evil = "<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1\x1b]0;pwned\x07\x1b[2J is DOWN, reason: Layer4 timeout\r\nFAKE ALERT, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
    send_udp(udp, &[evil.as_bytes().to_vec()]);
    daemon.wait_incident("backend = 'be_x'");
    let db = dir.path().join("h.db");
    let db = db.to_str().unwrap();
    let events = wait_json_lines(&["events", "--db", db, "--json"], &daemon);
    let tables = [
        hapwatch(&["events", "--db", db]),
        hapwatch(&["incidents", "--db", db]),
        hapwatch(&["incident", "--db", db, "#1"]),
    ];
    let log = daemon.stop();
    assert!(
        events[0].to_string().contains("\\u001b"),
        "stored as sent: {events:?}"
    );
    for out in &tables {
        assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
        assert!(out.contains("\\x1b"), "shown escaped: {out}");
    }
    for line in &log {
        assert!(!line.contains('\x1b') && !line.contains('\r'), "{line:?}");
    }
    assert!(!log.iter().any(|l| l.starts_with("FAKE ALERT")), "{log:#?}");
}

/// The daemon's resident memory, MB.
fn rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[test]
fn a_receiver_answering_500_with_a_gigabyte_body_costs_no_memory() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = listener.local_addr().unwrap().port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = [0u8; 65536];
            let _ = s.read(&mut head);
            let _ = s.write_all(b"HTTP/1.1 500 X\r\ncontent-length: 1073741824\r\n\r\n");
            let block = vec![b'e'; 1 << 20];
            // Until the client hangs up, or the whole gigabyte.
            for _ in 0..1024 {
                if s.write_all(&block).is_err() {
                    break;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[notify]\ngroup_wait = \"0s\"\nretry_min = \"5s\"\n\
             [[channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/\"\n"
        ),
    );
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let down = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
    send_udp(udp, &[down.to_vec()]);
    daemon.wait_retry_pending();
    let rss = rss_mb(daemon.pid());
    let log = daemon.stop();
    assert!(rss < 200, "RSS {rss} MB");
    let failed = log.iter().find(|l| l.contains("will retry")).unwrap();
    assert!(failed.contains("HTTP 500"), "{failed}");
    assert!(
        sent.load(std::sync::atomic::Ordering::Relaxed) < 1024,
        "the body was not read to its end"
    );
}

#[test]
fn idle_http_clients_are_closed_and_do_not_hold_the_status_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[limits]\nhttp_connections = 4\nhttp_idle = \"1s\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
    );
    let daemon = Daemon::start(&cfg, 1);
    let http = daemon.http_port();
    // Twice as many clients as the limit connect and say nothing.
    let idle: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", http)).unwrap())
        .collect();
    // They are closed after http_idle, so a real request is still answered.
    let (status, body) = http_get(http, "/healthz");
    drop(idle);
    daemon.stop();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_unix_socket_is_owner_and_group_only_and_gone_after_exit() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run").join("log.sock");
    let cfg = ConfigBuilder::new(dir.path())
        .listen(
            &format!("unix://{}", sock.display()),
            "socket_group = \"root\"\n",
        )
        .listen("udp://0.0.0.0:0", "")
        .write();
    let daemon = Daemon::start(&cfg, 2);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    let log = daemon.stop();
    assert_eq!((mode, dir_mode), (0o660, 0o750));
    assert!(!sock.exists(), "removed at exit");
    assert!(
        log.iter()
            .any(|l| l.contains("anyone who reaches this address can send logs")),
        "a listener beyond loopback without allow is warned about: {log:#?}"
    );
}
