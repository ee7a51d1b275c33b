//! A running `hapwatch serve` fed real HAProxy datagrams and bad input over UDP.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;

fn fixture_datagrams(stream: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/haproxy-2.6")
        .join(format!("{stream}.datagrams.jsonl"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap()
        })
        .collect()
}

/// The value of `key=` in a tracing line.
fn field(line: &str, key: &str) -> u64 {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 2;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn serve_counts_every_datagram_and_alerts_on_state_changes() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/haproxy-2.6/config/haproxy-default.cfg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args([
            "serve",
            "--listen",
            &format!("udp://127.0.0.1:{port}"),
            "--stats-interval",
            "1h",
        ])
        .arg("--haproxy-config")
        .arg(&cfg)
        .env("HAPWATCH_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve logs when it listens");
    assert!(first.contains("listening"), "{first}");

    let good = fixture_datagrams("default");
    let mut bad: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00garbage".to_vec(),
        vec![b'A'; 65_000],
        b"<129>Nov 23 01:23:33 haproxy[1]: Server be_ap".to_vec(),
        b"<134>Nov 23 01:23:33 haproxy[1]: something else entirely".to_vec(),
    ];
    bad.push(
        (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in good.iter().chain(&bad) {
        sock.send_to(d, ("127.0.0.1", port)).unwrap();
        // Paced so the kernel's receive buffer never overflows: this test is
        // about accounting, not about load.
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        child.wait().unwrap().success(),
        "serve exits cleanly on SIGTERM"
    );
    reader.join().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();

    let totals = lines
        .iter()
        .find(|l| l.contains(" totals "))
        .expect("a totals line at shutdown");
    assert_eq!(field(totals, "received"), (good.len() + bad.len()) as u64);
    assert_eq!(field(totals, "parsed"), good.len() as u64);
    assert_eq!(field(totals, "parse_errors"), bad.len() as u64);
    assert_eq!(field(totals, "queue_drops"), 0);
    // 916 captured datagrams: 581 traffic lines, the rest health/state/lifecycle events.
    assert_eq!(
        field(totals, "traffic") + field(totals, "events"),
        good.len() as u64
    );

    let alerts: Vec<&String> = lines.iter().filter(|l| l.contains("ALERT")).collect();
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
    assert!(
        lines.iter().any(|l| l.contains("could not parse")),
        "a bad sample is logged"
    );
}
