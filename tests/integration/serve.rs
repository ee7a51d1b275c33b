//! A running `hapwatch serve` fed real HAProxy datagrams over UDP, TCP and a
//! unix socket; the SQLite file is then read back through the CLI.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixDatagram;

use crate::util::*;
use serde_json::Value;

const SPAN: [&str; 4] = [
    "--since",
    "2026-11-23T00:00:00Z",
    "--until",
    "2026-11-24T00:00:00Z",
];

/// A store at `DIR/h.db` reading the captures' formats in UTC; the test adds its listeners.
fn config(dir: &std::path::Path) -> ConfigBuilder {
    ConfigBuilder::new(dir).fixture_formats()
}

/// (template, message, header hostname): what identifies an event in labels and in `events --json`.
fn event_key(e: &Value) -> (String, String, String) {
    (
        e["template"].as_str().unwrap().to_owned(),
        e["message"].as_str().unwrap().to_owned(),
        e["syslog"]["hostname"].as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn fixtures_over_udp_tcp_and_unix_are_stored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let cfg = config(dir.path())
        .listen("udp://127.0.0.1:0", "allow = [\"127.0.0.0/8\"]\n")
        .listen("tcp://127.0.0.1:0", "")
        .listen(&format!("unix://{}", sock.display()), "")
        .write();
    // In this process, on port-0 sockets handed to the daemon.
    let daemon = InProcess::start(&std::fs::read_to_string(&cfg).unwrap());
    let (udp, tcp) = (daemon.udp_port(), daemon.addresses.tcp().unwrap().port());

    // UDP: HAProxy's own default header (no hostname: the sender's address names it).
    let default = datagrams("default");
    send_udp(udp, &default);
    // TCP: rsyslog forwarding (hostname "localhost"), octet-counted frames.
    let rsyslog = datagrams("rsyslog-fwd-default");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for d in &rsyslog {
        let body = d.strip_suffix(b"\n").unwrap_or(d);
        stream
            .write_all(format!("{} ", body.len()).as_bytes())
            .unwrap();
        stream.write_all(body).unwrap();
    }
    drop(stream);
    // Unix datagrams: HAProxy's `log /path` (RFC 5424 with hostname lb-lab-01).
    let rfc5424 = datagrams("fmt-rfc5424");
    let unix = UnixDatagram::unbound().unwrap();
    for d in &rfc5424 {
        unix.send_to(d, &sock).unwrap();
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let sent = (default.len() + rsyslog.len() + rfc5424.len()) as u64;
    daemon.wait_handled(sent);
    let totals = daemon.stop();
    assert_eq!(
        (
            totals.received,
            totals.parsed,
            totals.queue_drops,
            totals.socket_drops
        ),
        (sent, sent, 0, 0)
    );

    // Every traffic line is in its server's window, with its status class.
    let db = dir.path().join("h.db");
    let db = db.to_str().unwrap();
    let mut want = Expected::new();
    let labels: Vec<Vec<Value>> = ["default", "rsyslog-fwd-default", "fmt-rfc5424"]
        .iter()
        .map(|s| expected(s))
        .collect();
    labels.iter().for_each(|l| expected_windows(l, &mut want));
    let mut args = vec![
        "stats", "--db", db, "--by", "server", "--window", "1m", "--json",
    ];
    args.extend(SPAN);
    let rows = json_lines(&args);
    assert_eq!(stored_windows(&rows), want);
    for r in &rows {
        assert!(r["p50_ms"].is_u64() || r["p50_ms"].is_null(), "{r}");
        assert!(
            r["host"].is_null() && r["frontend"].is_null(),
            "grouped away: {r}"
        );
    }

    // Host identity: the header's hostname, else the sender (or this machine for unix).
    let mut args = vec!["stats", "--db", db, "--by", "host", "--json"];
    args.extend(SPAN);
    let hosts: BTreeMap<String, u64> = json_lines(&args)
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    let traffic = |l: &[Value]| {
        l.iter()
            .filter(|x| x["kind"] == "http" || x["kind"] == "tcp")
            .count() as u64
    };
    assert_eq!(
        hosts.get("127.0.0.1"),
        Some(&traffic(&labels[0])),
        "{hosts:?}"
    );
    assert_eq!(
        hosts.get("localhost"),
        Some(&traffic(&labels[1])),
        "{hosts:?}"
    );
    assert_eq!(
        hosts.get("lb-lab-01"),
        Some(&traffic(&labels[2])),
        "{hosts:?}"
    );

    // Every health, state and proxy event is stored, as `parse` prints it.
    let events = logged_events(json_lines(&[
        "events", "--db", db, "--since", "3650d", "--json",
    ]));
    let mut got: Vec<_> = events.iter().map(event_key).collect();
    got.sort();
    let mut want: Vec<_> = labels
        .iter()
        .flatten()
        .filter(|l| l["kind"] != "http" && l["kind"] != "tcp")
        .map(event_key)
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(events
        .iter()
        .all(|e| e["ts"].as_str().is_some_and(|t| t.ends_with('Z'))));

    // Filters: one server's state changes.
    let downs = json_lines(&[
        "events",
        "--db",
        db,
        "--since",
        "3650d",
        "--server",
        "be_app/app4",
        "--kind",
        "srv_down",
        "--json",
    ]);
    let want_downs = labels
        .iter()
        .flatten()
        .filter(|l| l["template"] == "srv_down" && l["proxy"] == "be_app" && l["server"] == "app4")
        .count();
    assert!(want_downs > 0);
    assert_eq!(downs.len(), want_downs);

    // The human table names the event and the server.
    let table = hapwatch(&[
        "events",
        "--db",
        db,
        "--since",
        "3650d",
        "--kind",
        "backend_down",
    ]);
    assert!(table.starts_with("WHEN"), "{table}");
    assert!(
        table.contains("be_solo") && table.contains("backend_no_server"),
        "{table}"
    );

    // The daemon stored its own counters.
    let me = json_lines(&["stats", "--self", "--db", db, "--since", "1h", "--json"]);
    assert_eq!(
        me.iter()
            .map(|r| r["received"].as_u64().unwrap())
            .sum::<u64>(),
        sent
    );
    assert_eq!(
        me.iter()
            .map(|r| r["traffic"].as_u64().unwrap())
            .sum::<u64>(),
        want_traffic(&labels)
    );
}

fn want_traffic(labels: &[Vec<Value>]) -> u64 {
    labels
        .iter()
        .flatten()
        .filter(|x| x["kind"] == "http" || x["kind"] == "tcp")
        .count() as u64
}

#[test]
fn bad_input_is_counted_and_the_daemon_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path())
        .udp()
        .listen("tcp://127.0.0.1:0", "")
        .listen("udp://127.0.0.1:0", "allow = [\"10.0.0.0/8\"]\n")
        .write();
    let mut daemon = Daemon::start(&cfg, 3);
    let (udp, tcp, denied) = (daemon.port(0), daemon.port(1), daemon.port(2));
    let good = datagrams("default");
    let mut bad: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00garbage".to_vec(),
        // The largest UDP payload IPv4 carries.
        vec![b'A'; 65_507],
        b"<129>Nov 23 01:23:33 haproxy[1]: Server be_ap".to_vec(),
        b"<134>Nov 23 01:23:33 haproxy[1]: something else entirely".to_vec(),
        b"<134>Nov 23 01:23:33 haproxy[1]: 127.0.0.1:1 [23/Nov/2026:01:23:33.398] fe be/s 0/0/0/3/\xc3".to_vec(),
    ];
    bad.push(
        (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    );
    send_udp(udp, &bad);
    send_udp(udp, &good);
    // Over TCP: a 70,000-byte line is cut at 64 KiB, counted, and the stream goes on.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    stream.write_all(&vec![b'x'; 70_000]).unwrap();
    stream.write_all(b"\n").unwrap();
    stream.write_all(&good[0]).unwrap();
    drop(stream);
    // From outside the allow-list: counted and dropped.
    send_udp(denied, &good[..3]);
    let received = (bad.len() + good.len() + 2) as u64;
    daemon.wait_received(received);
    let log = daemon.stop();

    let totals = log
        .iter()
        .find(|l| l.contains(" totals "))
        .expect("a totals line");
    assert_eq!(field(totals, "received"), received);
    assert_eq!(field(totals, "parsed"), good.len() as u64 + 1);
    assert_eq!(field(totals, "parse_errors"), bad.len() as u64 + 1);
    assert_eq!(field(totals, "oversized"), 1);
    assert_eq!(field(totals, "denied"), 3);
    assert!(
        log.iter().any(|l| l.contains("could not parse")),
        "a bad sample is logged"
    );

    let alerts: Vec<&String> = log.iter().filter(|l| l.contains("ALERT")).collect();
    assert!(
        alerts
            .iter()
            .any(|l| l.contains("server be_app/app4 is DOWN")),
        "{alerts:#?}"
    );
    assert!(alerts
        .iter()
        .any(|l| l.contains("backend be_solo has no server available")));
    // Operator actions (drain, maintenance, CLI) are logged but are not alerts.
    assert!(!alerts
        .iter()
        .any(|l| l.contains("changed from CLI") || l.contains("is MAINT")));

    let db = dir.path().join("h.db");
    let me = json_lines(&["stats", "--self", "--db", db.to_str().unwrap(), "--json"]);
    let sum = |k: &str| me.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("parse_errors"), bad.len() as u64 + 1);
    assert_eq!(sum("denied"), 3);
    let reasons: u64 = me
        .iter()
        .flat_map(|r| r["detail"]["parse_errors"].as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(reasons, bad.len() as u64 + 1, "every failure has a reason");
}

#[test]
fn sighup_applies_new_log_formats_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigBuilder::new(dir.path()).http().udp().write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);

    // fe_custom's JSON format is only known from the HAProxy config.
    let labels = expected("default");
    let i = labels
        .iter()
        .position(|l| l["template"] == "custom_json")
        .unwrap();
    let line = datagrams("default").swap_remove(i);
    send_udp(udp, std::slice::from_ref(&line));
    daemon.wait_received(1);

    let cfg_with_formats = config(dir.path()).http().udp().write();
    assert_eq!(cfg_with_formats, cfg);
    daemon.signal("-HUP");
    daemon.wait_reloads(1);
    send_udp(udp, std::slice::from_ref(&line));
    daemon.wait_received(2);
    let log = daemon.stop();

    let totals = log.iter().find(|l| l.contains(" totals ")).unwrap();
    assert_eq!(field(totals, "parse_errors"), 1, "before the reload");
    assert_eq!(field(totals, "traffic"), 1, "after the reload");
}

#[test]
fn incidents_survive_a_restart_without_realerting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path()).udp().write();
    let down = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.".to_vec();
    let up = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.".to_vec();

    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, std::slice::from_ref(&down));
    daemon.wait_received(1);
    let log = daemon.stop();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("ALERT server be_x/s1 is DOWN"))
            .count(),
        1
    );

    // The same DOWN again after a restart: still the one open incident.
    // Incidents are restored before the daemon says it is ready.
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[down, up]);
    daemon.wait_received(2);
    let log = daemon.stop();
    assert!(
        !log.iter().any(|l| l.contains("ALERT")),
        "no second alert: {log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.contains("RESOLVED server be_x/s1 is DOWN")));

    let db = dir.path().join("h.db");
    let db = db.to_str().unwrap();
    let incidents = json_lines(&["incidents", "--db", db, "--json"]);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let i = &incidents[0];
    assert_eq!(
        (i["kind"].as_str(), i["severity"].as_str()),
        (Some("server_down"), Some("warning"))
    );
    assert_eq!(i["detail"]["reason"], "Layer4 timeout");
    assert!(i["resolved_at"].is_string());
    assert_eq!(i["resolution"], "UP again");

    let id = i["id"].to_string();
    let one = json_lines(&["incident", "--db", db, &id, "--json"]);
    let timeline: Vec<&str> = one[0]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert!(
        timeline[0].starts_with("opened: server be_x/s1 is DOWN"),
        "{timeline:?}"
    );
    assert!(timeline.iter().any(|t| t.contains("is UP")), "{timeline:?}");
    assert_eq!(timeline.last(), Some(&"resolved: UP again"));
    let text = hapwatch(&["incident", "--db", db, &id]);
    assert!(
        text.starts_with(&format!("#{id} server be_x/s1 is DOWN")),
        "{text}"
    );
}

#[test]
fn the_digest_sums_up_each_backend() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path()).udp().write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let stream = datagrams("default");
    send_udp(udp, &stream);
    daemon.wait_received(stream.len() as u64);
    daemon.stop();
    let db = dir.path().join("h.db");
    let text = hapwatch(&[
        "digest",
        "--db",
        db.to_str().unwrap(),
        "--since",
        "2026-11-22T00:00:00Z",
    ]);
    let labels = expected("default");
    let requests = labels
        .iter()
        .filter(|l| (l["kind"] == "http" || l["kind"] == "tcp") && l["backend"] == "be_app")
        .count();
    let section: String = text
        .split("\n\n")
        .find(|s| s.starts_with("be_app\n"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert!(
        section.contains(&format!("requests {requests} ")),
        "{section}"
    );
    assert!(section.contains("server_down"), "{section}");
    assert!(
        section.contains(" 5xx of "),
        "the servers with errors: {section}"
    );
}

#[test]
fn the_cli_finds_the_daemons_store_through_the_package_config_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("daemon.db");
    let cfg = ConfigBuilder::new(dir.path()).db(&db).udp().write();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let down = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
    send_udp(udp, &[down.to_vec()]);
    wait_json_lines(&["events", "--db", db.to_str().unwrap(), "--json"], &daemon);
    // No --config, no --db: the package's config (moved here for the test) names the store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args(["events", "--since", "1h"])
        .env("HAPWATCH_SYSTEM_CONFIG", &cfg)
        .env_remove("HAPWATCH_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    daemon.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("be_x/s1"), "{text}");
    assert!(
        text.contains(&format!(
            "store {} (config {})",
            db.display(),
            cfg.display()
        )),
        "the table names the store it read: {text}"
    );
    // check-config checks the same file, and takes --config as every command does.
    let check = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hapwatch"))
            .args(args)
            .env("HAPWATCH_SYSTEM_CONFIG", &cfg)
            .env_remove("HAPWATCH_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = check(&["check-config"]);
    assert!(
        said.starts_with(&format!("{}: OK", cfg.display())),
        "{said}"
    );
    assert!(said.contains(&db.display().to_string()), "{said}");
    let said = check(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert!(
        said.starts_with(&format!("{}: OK", cfg.display())),
        "{said}"
    );
}

#[test]
fn events_delivered_late_by_a_queue_keep_the_time_their_log_says() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let cfg = ConfigBuilder::new(dir.path())
        .db(&db)
        .set("parse", "timezone", "\"UTC\"")
        .udp()
        .write();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    // As rsyslog's disk queue hands them over after a restart: both at once, 20 s
    // and 13 s after they were logged.
    let now = jiff::Timestamp::now().as_second();
    let header = |ago: i64| {
        jiff::Timestamp::from_second(now - ago)
            .unwrap()
            .strftime("%b %e %H:%M:%S")
            .to_string()
    };
    let down = format!("<129>{} haproxy[1]: Server be_q/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.", header(20));
    let up = format!("<133>{} haproxy[1]: Server be_q/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.", header(13));
    send_udp(udp, &[down.into_bytes(), up.into_bytes()]);
    let db = db.to_str().unwrap();
    // The DOWN and the UP may be committed apart: wait for the resolve.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let i = loop {
        let incidents = wait_json_lines(&["incidents", "--db", db, "--json"], &daemon);
        let resolved = incidents
            .into_iter()
            .find(|i| i["kind"] == "server_down" && !i["resolved_at"].is_null());
        if let Some(i) = resolved {
            break i;
        }
        assert!(std::time::Instant::now() < deadline, "never resolved");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    daemon.stop();
    assert_eq!(i["duration_s"], 7, "{i}");
    let opened: jiff::Timestamp = i["opened_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(opened.as_second(), now - 20, "{i}");
}

#[test]
fn incidents_filter_by_server_kind_severity_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let cfg = ConfigBuilder::new(dir.path()).db(&db).udp().write();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let down = |srv: &str| {
        format!("<129>Nov 23 01:23:33 haproxy[1]: Server {srv} is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.").into_bytes()
    };
    send_udp(udp, &[down("be_x/s1"), down("be_y/s2")]);
    let db = db.to_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wait_json_lines(&["incidents", "--db", db, "--json"], &daemon).len() < 2 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let q = |extra: &[&str]| {
        let mut args = vec!["incidents", "--db", db, "--json"];
        args.extend_from_slice(extra);
        json_lines(&args)
    };
    let one = q(&["--server", "be_x/s1"]);
    assert_eq!((one.len(), one[0]["server"].as_str()), (1, Some("s1")));
    assert_eq!(
        q(&["--kind", "server_down", "--severity", "warning"]).len(),
        2
    );
    assert!(q(&["--severity", "critical"]).is_empty());
    assert_eq!(q(&["--limit", "1"]).len(), 1);
    assert!(q(&["--until", "2020-01-01"]).is_empty());
    let (_, err) = hapwatch_fails(&["incidents", "--db", db, "--kind", "server_dwn"]);
    daemon.stop();
    assert!(err.contains("did you mean \"server_down\""), "{err}");
}

#[test]
fn a_stats_socket_that_refuses_is_an_incident_not_only_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let cfg = ConfigBuilder::new(dir.path()).db(&db).udp().write();
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "[reconcile]\nstats_socket = {:?}\nhost = \"lb1\"\ninterval = \"100ms\"\n",
            dir.path().join("no-haproxy.sock")
        );
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = Daemon::start(&cfg, 1);
    daemon.wait_incident("kind = 'reconcile' AND host = 'lb1'");
    let incidents = wait_json_lines(
        &[
            "incidents",
            "--db",
            db.to_str().unwrap(),
            "--kind",
            "reconcile",
            "--json",
        ],
        &daemon,
    );
    daemon.stop();
    assert_eq!(incidents.len(), 1);
    assert!(
        incidents[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("no-haproxy.sock"),
        "{incidents:?}"
    );
}
