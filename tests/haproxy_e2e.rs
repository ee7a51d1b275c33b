//! End to end with a real HAProxy (Debian package `haproxy`): it logs health
//! checks and traffic to a running hapwatch, whose store then holds the
//! server that went down and every request, per server.
//!
//! Skipped when haproxy is not installed, unless HAPWATCH_E2E=1 (CI sets it),
//! which turns a missing haproxy into a failure.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const HAPROXY: &str = "/usr/sbin/haproxy";

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
    if !std::path::Path::new(HAPROXY).exists() {
        assert!(
            std::env::var_os("HAPWATCH_E2E").is_none(),
            "HAPWATCH_E2E=1 but {HAPROXY} is missing"
        );
        eprintln!("skipped: {HAPROXY} is not installed (apt-get install haproxy)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log_port, front, origin, dead) = (free_port(), free_port(), free_port(), free_port());
    let cfg = dir.path().join("hapwatch.toml");
    let db = dir.path().join("e2e.db");
    std::fs::write(
        &cfg,
        format!("[storage]\npath = {db:?}\n[[listen]]\nurl = \"udp://127.0.0.1:{log_port}\"\n"),
    )
    .unwrap();
    let mut daemon = Daemon::start(&cfg, 1);

    let haproxy_cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &haproxy_cfg,
        format!(
            "global
    log 127.0.0.1:{log_port} local0
defaults
    mode http
    log global
    option httplog
    option log-health-checks
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_e2e
    bind 127.0.0.1:{front}
    default_backend be_e2e
backend be_e2e
    server up1 127.0.0.1:{origin} check inter 100ms
    server dead1 127.0.0.1:{dead} check inter 100ms fall 2
frontend fe_origin
    bind 127.0.0.1:{origin}
    http-request return status 200 content-type text/plain string ok
"
        ),
    )
    .unwrap();
    let mut haproxy = Command::new(HAPROXY)
        .args(["-db", "-f"])
        .arg(&haproxy_cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait for hapwatch to have stored dead1's DOWN.
    let db_arg = db.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
            .args([
                "events",
                "--db",
                db_arg,
                "--server",
                "be_e2e/dead1",
                "--kind",
                "srv_down",
                "--json",
            ])
            .output()
            .unwrap();
        if out.status.success() && !out.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no srv_down stored; daemon log:\n{}",
            daemon.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
