//! End to end with a real HAProxy (Debian package `haproxy`): it logs health
//! checks and traffic to a running hapwatch, whose store then holds the
//! server that went down and every request, per server.
//!
//! Skipped when haproxy is not installed, unless HAPWATCH_E2E=1 (CI sets it),
//! which turns a missing haproxy into a failure.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::haproxy::{origin, start_haproxy, HAPROXY};
use crate::util::*;

/// Waits until the store at `db` holds a DOWN event of `server` ("be/srv"); returns them.
fn wait_down_events(db: &str, server: &str, daemon: &Daemon) -> Vec<serde_json::Value> {
    wait_json_lines(
        &[
            "events", "--db", db, "--server", server, "--kind", "srv_down", "--json",
        ],
        daemon,
    )
}

fn get(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /e2e HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_real_haproxy_reports_a_dead_server_and_its_traffic() {
    if !installed(&[HAPROXY]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (front, origin, dead) = (free_port(), free_port(), free_port());
    let db = dir.path().join("e2e.db");
    let cfg = ConfigBuilder::new(dir.path()).db(&db).udp().write();
    let mut daemon = Daemon::start(&cfg, 1);
    // HAProxy logs to the port the kernel gave hapwatch.
    let log_port = daemon.port(0);

    let mut haproxy = start_haproxy(
        dir.path(),
        &format!("    log 127.0.0.1:{log_port} local0\n"),
        "    option httplog\n    option log-health-checks\n",
        &format!("frontend fe_e2e\n    bind 127.0.0.1:{front}\n    default_backend be_e2e\nbackend be_e2e\n    server up1 127.0.0.1:{origin} check inter 100ms\n    server dead1 127.0.0.1:{dead} check inter 100ms fall 2\nfrontend fe_origin\n    bind 127.0.0.1:{origin}\n    http-request return status 200 content-type text/plain string ok\n"),
    );

    // Wait for hapwatch to have stored dead1's DOWN.
    let db_arg = db.to_str().unwrap();
    wait_down_events(db_arg, "be_e2e/dead1", &daemon);
    // Every request goes to the server that is up.
    for _ in 0..20 {
        assert!(get(front).starts_with("HTTP/1.1 200"));
    }
    // 20 traffic lines from fe_e2e and 20 from fe_origin.
    daemon.wait_counter("traffic", 40);
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let log = daemon.stop();
    assert!(log
        .iter()
        .any(|l| l.contains("ALERT server be_e2e/dead1 is DOWN")));

    let rows = json_lines(&[
        "stats",
        "--db",
        db_arg,
        "--backend",
        "be_e2e",
        "--by",
        "server",
        "--since",
        "1h",
        "--json",
    ]);
    let up1: Vec<_> = rows.iter().filter(|r| r["server"] == "up1").collect();
    assert_eq!(up1.len(), 1, "{rows:?}");
    assert_eq!(up1[0]["requests"], 20);
    assert_eq!(up1[0]["s2xx"], 20);
    assert!(rows.iter().all(|r| r["server"] != "dead1"), "{rows:?}");
    let checks = json_lines(&[
        "events",
        "--db",
        db_arg,
        "--server",
        "be_e2e/dead1",
        "--kind",
        "health_check",
        "--json",
    ]);
    assert!(checks.iter().any(|c| c["result"] == "failed"), "{checks:?}");
}

#[test]
fn a_killed_and_restarted_server_is_one_down_mail_one_resolved_mail_and_their_webhooks() {
    if !installed(&[HAPROXY]) || !crate::util::smtp::aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::util::smtp::certificates(dir.path());
    let (front, web1) = (free_port(), free_port());
    let smtp = crate::util::smtp::Smtp::start(0, &cert, &key, &dir.path().join("mails.jsonl"));
    let smtp_port = smtp.port;
    let hooks = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .db(&dir.path().join("e2e.db"))
        .set("incidents", "degraded_share", "0")
        .udp()
        .relay_mail("ops-mail", smtp_port, &ca)
        .channel(&format!(
            "name = \"ops-hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\n",
            hooks.port
        ))
        .write();
    let mut origin1 = origin(web1, dir.path());
    let daemon = Daemon::start(&cfg, 1);
    let log_port = daemon.port(0);
    let mut haproxy = start_haproxy(
        dir.path(),
        &format!("    log 127.0.0.1:{log_port} local0\n"),
        "    option httplog\n    option log-health-checks\n",
        &format!("frontend fe_e2e\n    bind 127.0.0.1:{front}\n    default_backend be_web\nbackend be_web\n    server web1 127.0.0.1:{web1} check inter 100ms fall 2 rise 2\n    server web2 127.0.0.1:{front} check inter 1s\n"),
    );

    // Kill web1: one DOWN mail and one firing webhook.
    std::thread::sleep(Duration::from_millis(500));
    origin1.kill().unwrap();
    origin1.wait().unwrap();
    let mails = smtp.wait_mails(1);
    assert!(
        mails[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("[hapwatch] DOWN be_web/web1 on 127.0.0.1"),
        "{mails:?}"
    );
    let fired = hooks.wait_accepted(1);
    // Start it again: one resolved mail, threaded, and one resolved webhook.
    let mut origin1 = origin(web1, dir.path());
    let mails = smtp.wait_mails(2);
    let resolved = hooks.wait_accepted(2);
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let _ = origin1.kill();
    let _ = origin1.wait();
    std::thread::sleep(Duration::from_millis(2500));
    daemon.stop();

    assert_eq!(
        smtp.mails().len(),
        2,
        "exactly one DOWN and one resolved mail: {:?}",
        smtp.mails()
    );
    assert!(mails[1]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] RESOLVED be_web/web1"));
    assert_eq!(mails[1]["in_reply_to"], mails[0]["message_id"]);
    assert_eq!(
        hooks.accepted.lock().unwrap().len(),
        2,
        "exactly two webhooks"
    );
    let first: serde_json::Value = serde_json::from_str(&fired[0].1).unwrap();
    let second: serde_json::Value = serde_json::from_str(&resolved[1].1).unwrap();
    assert_eq!(
        (first["status"].as_str(), second["status"].as_str()),
        (Some("firing"), Some("resolved"))
    );
    assert_eq!(first["incident"]["id"], second["incident"]["id"]);
    assert_eq!(first["incident"]["server"], "web1");
}

/// The shipped snippet with its TCP block on and its UDP block off.
fn tcp_variant(snippet: &str) -> String {
    let (mut out, mut in_udp, mut in_tcp) = (String::new(), false, false);
    for line in snippet.lines() {
        if line.starts_with("if $programname") {
            in_udp = true;
        }
        if in_udp {
            in_udp = line != "}";
            continue;
        }
        if line.starts_with("# if $programname") {
            in_tcp = true;
        }
        if in_tcp {
            in_tcp = line != "# }";
            out += line.strip_prefix("# ").unwrap_or(line);
        } else {
            out += line;
        }
        out.push('\n');
    }
    out
}

#[test]
fn rsyslog_relays_haproxy_to_hapwatch_with_the_shipped_snippet() {
    relay_through_rsyslog(false);
}

#[test]
fn rsyslog_relays_over_tcp_with_the_shipped_snippets_queue() {
    relay_through_rsyslog(true);
}

fn relay_through_rsyslog(tcp: bool) {
    const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
    if !installed(&[HAPROXY, RSYSLOGD]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rsyslog_port, front, dead) = (free_port(), free_port(), free_port());
    let db = dir.path().join("rs.db");
    let scheme = if tcp { "tcp" } else { "udp" };
    let cfg = ConfigBuilder::new(dir.path())
        .db(&db)
        .listen(&format!("{scheme}://127.0.0.1:0"), "")
        .write();
    let daemon = Daemon::start(&cfg, 1);
    let hapwatch_port = daemon.port(0);

    // rsyslog with its own UDP input and the snippet we ship, pointed at this hapwatch.
    let snippet = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/rsyslog-hapwatch.conf"),
    )
    .unwrap()
    .replace("port=\"5140\"", &format!("port=\"{hapwatch_port}\""));
    let snippet = if tcp { tcp_variant(&snippet) } else { snippet };
    let active_tcp = snippet
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains("protocol=\"tcp\""));
    assert_eq!(active_tcp, tcp, "{snippet}");
    assert!(
        snippet.contains(&hapwatch_port.to_string()),
        "the snippet forwards to port 5140"
    );
    let rsyslog_conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &rsyslog_conf,
        format!(
            "global(workDirectory=\"{}\")\nmodule(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{rsyslog_port}\")\n{snippet}",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut rsyslog = Command::new(RSYSLOGD)
        .args(["-n", "-f"])
        .arg(&rsyslog_conf)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut haproxy = start_haproxy(
        dir.path(),
        &format!("    log 127.0.0.1:{rsyslog_port} local0\n"),
        "    option httplog\n    option log-health-checks\n",
        &format!("frontend fe_rs\n    bind 127.0.0.1:{front}\n    default_backend be_rs\nbackend be_rs\n    server dead1 127.0.0.1:{dead} check inter 100ms fall 2\n"),
    );

    let events = wait_down_events(db.to_str().unwrap(), "be_rs/dead1", &daemon);
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let _ = rsyslog.kill();
    let _ = rsyslog.wait();
    daemon.stop();
    let event = &events[0];
    // rsyslog's forwarding format carries a hostname, which becomes the host.
    assert_eq!(event["syslog"]["format"], "rfc3164", "{event}");
    assert_eq!(event["host"], event["syslog"]["hostname"]);
    assert_eq!(event["server"], "dead1");
}

#[test]
fn a_lost_down_is_reconciled_from_the_stats_socket() {
    reconcile_from(true);
}

#[test]
fn a_lost_down_is_reconciled_from_the_stats_page_csv() {
    reconcile_from(false);
}

/// HAProxy's logs all lost; its stats (socket, or the stats page's CSV) tell.
fn reconcile_from(socket: bool) {
    if !installed(&[HAPROXY]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log_port, lost_port, front, up, dead, stats_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let sock = dir.path().join("admin.sock");
    let (source, at) = if socket {
        ("stats_socket", format!("{sock:?}"))
    } else {
        (
            "stats_url",
            format!("\"http://127.0.0.1:{stats_port}/stats;csv\""),
        )
    };
    let db = dir.path().join("rc.db");
    let cfg = ConfigBuilder::new(dir.path())
        .db(&db)
        .set("reconcile", source, &at)
        .set("reconcile", "interval", "\"200ms\"")
        .set("reconcile", "host", "\"127.0.0.1\"")
        .listen(&format!("udp://127.0.0.1:{log_port}"), "")
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    // HAProxy logs to a port nobody reads: every datagram is lost.
    let mut haproxy = start_haproxy(
        dir.path(),
        &format!("    log 127.0.0.1:{lost_port} local0\n    stats socket {} mode 600 level user\n", sock.display()),
        "    option log-health-checks\n",
        &format!("frontend fe_rc\n    bind 127.0.0.1:{front}\n    default_backend be_rc\nbackend be_rc\n    server live1 127.0.0.1:{up} check inter 100ms\n    server dead1 127.0.0.1:{dead} check inter 100ms fall 2\nfrontend fe_live\n    bind 127.0.0.1:{up}\n    http-request return status 200\n\
                  frontend stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n"),
    );
    daemon.wait_incident("kind = 'server_down' AND backend = 'be_rc' AND server = 'dead1'");
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let log = daemon.stop();
    assert!(log
        .iter()
        .any(|l| l.contains("reconciled from HAProxy's stats") && l.contains("dead1")));
    // live1 agreed with the logs' silence (UP): nothing was made of it.
    assert!(
        !log.iter()
            .any(|l| l.contains("reconciled") && l.contains("live1")),
        "{log:#?}"
    );

    let db = db.to_str().unwrap();
    let events = json_lines(&[
        "events",
        "--db",
        db,
        "--kind",
        "reconciliation",
        "--since",
        "1h",
        "--json",
    ]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0]["server"].as_str(),
            events[0]["new_state"].as_str()
        ),
        (Some("dead1"), Some("DOWN"))
    );
    let incidents = json_lines(&["incidents", "--db", db, "--json"]);
    assert_eq!(incidents.len(), 1);
    assert_eq!(
        incidents[0]["detail"]["reason"],
        "reconciled from HAProxy's stats"
    );
}

/// Two load balancers whose logs are lost, one read by its stats socket and
/// one by its stats page: each one's dead server is an incident of its host.
#[test]
fn two_haproxys_are_reconciled_each_under_its_own_host() {
    if !installed(&[HAPROXY]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let sock = a.join("admin.sock");
    let (lost, dead_a, dead_b, stats_b) = (free_port(), free_port(), free_port(), free_port());
    let cfg = ConfigBuilder::new(dir.path())
        .udp()
        .toml(&format!(
            "[[reconcile]]\nstats_socket = {sock:?}\nhost = \"lb-a\"\ninterval = \"200ms\"\n\
             [[reconcile]]\nstats_url = \"http://127.0.0.1:{stats_b}/stats;csv\"\nhost = \"lb-b\"\ninterval = \"200ms\"\n"
        ))
        .write();
    let said = hapwatch(&["check-config", cfg.to_str().unwrap()]);
    assert!(
        said.contains("reconcile lb-a: ")
            && said.contains(&format!("reconcile lb-b: http://127.0.0.1:{stats_b}/…")),
        "{said}"
    );
    let mut daemon = Daemon::start(&cfg, 1);
    let log_to = format!("    log 127.0.0.1:{lost} local0\n");
    let mut lb_a = start_haproxy(
        &a,
        &format!(
            "{log_to}    stats socket {} mode 600 level user\n",
            sock.display()
        ),
        "",
        &format!("backend be_a\n    server dead_a 127.0.0.1:{dead_a} check inter 100ms fall 2\n"),
    );
    let mut lb_b = start_haproxy(
        &b,
        &log_to,
        "",
        &format!(
            "backend be_b\n    server dead_b 127.0.0.1:{dead_b} check inter 100ms fall 2\n\
             frontend stats\n    bind 127.0.0.1:{stats_b}\n    stats enable\n    stats uri /stats\n"
        ),
    );
    daemon.wait_incident("kind = 'server_down' AND host = 'lb-a' AND server = 'dead_a'");
    daemon.wait_incident("kind = 'server_down' AND host = 'lb-b' AND server = 'dead_b'");
    for lb in [&mut lb_a, &mut lb_b] {
        let _ = lb.kill();
        let _ = lb.wait();
    }
    daemon.stop();
    let db = dir.path().join("h.db");
    let incidents = json_lines(&["incidents", "--db", db.to_str().unwrap(), "--json"]);
    // (A poll before a HAProxy was up may have opened a `reconcile` incident.)
    let mut places: Vec<String> = incidents
        .iter()
        .filter(|i| i["kind"] == "server_down")
        .map(|i| {
            format!(
                "{} {}/{}",
                i["host"].as_str().unwrap(),
                i["backend"],
                i["server"]
            )
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        ["lb-a \"be_a\"/\"dead_a\"", "lb-b \"be_b\"/\"dead_b\""],
        "each server under its own host, no other: {incidents:?}"
    );
}

/// `haproxy -sf` under traffic: a new worker, the old one draining. A server
/// that blips while the new worker's checks settle pages nothing; one that
/// really dies during the reload pages once its grace is over.
#[test]
fn a_reload_under_traffic_pages_nothing_by_itself_and_a_real_down_during_it_still_does() {
    if !installed(&[HAPROXY, "/usr/bin/python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"0s\"")
        .set("incidents", "reload_grace", "\"6s\"")
        .udp()
        .webhook("ops", hook.port, "")
        .write();
    let db = dir.path().join("h.db");
    let daemon = Daemon::start(&cfg, 1);
    let (front, ok1, ok2, dead) = (free_port(), free_port(), free_port(), free_port());
    let origins = [origin(ok1, dir.path()), origin(ok2, dir.path())];
    let old = start_haproxy(
        dir.path(),
        &format!("    log 127.0.0.1:{} local0\n", daemon.port(0)),
        "    option log-health-checks\n    option httplog\n",
        &format!(
            "frontend fe_r\n    bind 127.0.0.1:{front}\n    default_backend be_r\nbackend be_r\n\
             \x20   server ok1 127.0.0.1:{ok1} check inter 200ms fall 2 rise 2\n\
             \x20   server ok2 127.0.0.1:{ok2} check inter 200ms fall 2 rise 2\n\
             \x20   server dead 127.0.0.1:{dead} check inter 200ms fall 2 rise 2\n"
        ),
    );
    hook.wait_body("dead's DOWN", |b| fires_for(b, "be_r", "dead"));

    // Traffic goes on through the reload.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::net::TcpStream::connect(("127.0.0.1", front)).is_ok() {
                    get(front);
                    n += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            n
        })
    };
    let new = std::process::Command::new(HAPROXY)
        .args(["-db", "-f"])
        .arg(dir.path().join("haproxy.cfg"))
        .args(["-sf", &old.id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_stored(
        &db,
        "the reload told",
        "SELECT count(*) FROM events WHERE template = 'haproxy_reload'",
        1,
        String::new,
    );
    // ok2 fails while the new worker's checks settle and the old one drains…
    let [o1, mut o2] = origins;
    let _ = o2.kill();
    let _ = o2.wait();
    // The new worker's first checks find `dead` DOWN again: the same incident.
    wait_stored(
        &db,
        "dead's DOWN from both workers",
        "SELECT count(*) FROM events WHERE template = 'srv_down' AND server = 'dead'",
        2,
        String::new,
    );
    wait_stored(
        &db,
        "ok2's DOWN",
        "SELECT count(*) FROM incidents WHERE server = 'ok2'",
        1,
        String::new,
    );
    // …and back a moment later: inside the grace, never paged.
    let mut o2 = origin(ok2, dir.path());
    wait_stored(
        &db,
        "ok2's recovery",
        "SELECT count(*) FROM incidents WHERE server = 'ok2' AND resolved_at IS NOT NULL",
        1,
        String::new,
    );
    // The blip was held by the reload's grace and its resolve never sent.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let blip: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT o.status, o.state, coalesce(o.note, '') FROM outbox o
             JOIN incidents i ON i.id = o.incident_id
             WHERE i.server = 'ok2' AND i.resolved_at IS NOT NULL ORDER BY o.id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(blip.len(), 2, "{blip:?}");
    assert_eq!(
        (blip[0].0.as_str(), blip[0].1.as_str()),
        ("firing", "silenced"),
        "{blip:?}"
    );
    assert!(
        blip[0].2.starts_with("maintenance haproxy-reload-"),
        "{blip:?}"
    );
    assert_eq!(
        (blip[1].0.as_str(), blip[1].1.as_str()),
        ("resolved", "cancelled"),
        "{blip:?}"
    );
    // Then it dies for good, still inside the grace: paged once the grace is over.
    let _ = o2.kill();
    let _ = o2.wait();
    let bodies = hook.wait_body("ok2's DOWN", |b| fires_for(b, "be_r", "ok2"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let requests = traffic.join().unwrap();
    for mut p in [old, new, o1] {
        let _ = p.kill();
        let _ = p.wait();
    }
    daemon.stop();
    assert!(requests > 0, "traffic went through the reload");
    let firings: Vec<String> = bodies
        .iter()
        .filter(|b| b["status"] == "firing")
        .flat_map(|b| b["incidents"].as_array().unwrap().clone())
        .map(|i| {
            format!(
                "{} {}",
                i["kind"].as_str().unwrap(),
                i["server"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        firings,
        ["server_down dead", "server_down ok2"],
        "nothing else paged: {bodies:?}"
    );
    let incidents = json_lines(&[
        "incidents",
        "--db",
        db.to_str().unwrap(),
        "--kind",
        "server_down",
        "--json",
    ]);
    let servers: Vec<&str> = incidents
        .iter()
        .map(|i| i["server"].as_str().unwrap())
        .collect();
    // Newest first: ok2's outage, ok2's blip, dead's (once, though both workers said so).
    assert_eq!(servers, ["ok2", "ok2", "dead"], "{incidents:?}");
}
