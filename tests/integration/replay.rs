//! `hapwatch replay` backfills the same tables from log files as rsyslog writes them.

use std::io::Write;

use crate::util::*;

/// A capture's datagrams as rsyslog writes them to a file: without the PRI, one per line.
fn file_lines(capture: &str) -> Vec<Vec<u8>> {
    datagrams(capture)
        .into_iter()
        .map(|d| {
            let end = d.iter().position(|&b| b == b'>').unwrap();
            let mut l = d[end + 1..].to_vec();
            if l.last() != Some(&b'\n') {
                l.push(b'\n');
            }
            l
        })
        .collect()
}

/// A config storing in `NAME.db` that reads the captures' formats in UTC, plus `extra`.
fn replay_config(dir: &std::path::Path, name: &str, extra: &str) -> std::path::PathBuf {
    ConfigBuilder::new(dir)
        .db(&dir.join(format!("{name}.db")))
        .fixture_formats()
        .toml(extra)
        .write_as(&format!("{name}.toml"))
}

#[test]
fn replay_of_plain_and_gzip_files_matches_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let lines = file_lines("rsyslog-fwd-default");
    let (first, second) = lines.split_at(lines.len() / 2);
    let plain = dir.path().join("haproxy.log.1");
    std::fs::write(&plain, first.concat()).unwrap();
    let gz = dir.path().join("haproxy.log.2.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&second.concat()).unwrap();
    enc.finish().unwrap();
    let cfg = replay_config(dir.path(), "r", "");
    let cfg = cfg.to_str().unwrap();

    let summary = hapwatch(&[
        "replay",
        "--config",
        cfg,
        plain.to_str().unwrap(),
        gz.to_str().unwrap(),
    ]);
    assert!(
        summary.contains(&format!("replayed {} lines", lines.len())),
        "{summary}"
    );
    assert!(
        summary.contains("lines/s") && summary.contains("0 unparsed"),
        "{summary}"
    );

    let labels = expected("rsyslog-fwd-default");
    let mut want = Expected::new();
    expected_windows(&labels, &mut want);
    let rows = json_lines(&[
        "stats",
        "--config",
        cfg,
        "--by",
        "server",
        "--window",
        "1m",
        "--json",
        "--since",
        "2026-11-23T00:00:00Z",
        "--until",
        "2026-11-24T00:00:00Z",
    ]);
    assert_eq!(stored_windows(&rows), want);

    // Events take the time of their own line.
    let events = json_lines(&["events", "--config", cfg, "--since", "3650d", "--json"]);
    let want_events = labels
        .iter()
        .filter(|l| l["kind"] != "http" && l["kind"] != "tcp")
        .count();
    assert_eq!(events.len(), want_events);
    for e in &events {
        let header = e["syslog"]["timestamp"].as_str().unwrap(); // "Nov 23 01:23:33"
        let ts = e["ts"].as_str().unwrap();
        assert!(
            ts.ends_with(&format!("-11-23T{}Z", &header[7..])),
            "{ts} vs {header}"
        );
        assert_eq!(e["host"], "localhost");
    }
}

#[test]
fn stdin_and_a_missing_database_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let (_, err) = hapwatch_fails(&["events", "--db", db.to_str().unwrap()]);
    assert!(err.contains("no database at"), "{err}");
    assert!(!db.exists(), "queries never create the file");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args(["replay", "--db", db.to_str().unwrap(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Nov 23 01:23:33 lb1 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.\nnot a haproxy line")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("replayed 2 lines") && summary.contains("1 unparsed"),
        "{summary}"
    );
    let events = json_lines(&[
        "events",
        "--db",
        db.to_str().unwrap(),
        "--since",
        "3650d",
        "--server",
        "be_x/s1",
        "--json",
    ]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["host"], "lb1");
    assert_eq!(events[0]["new_state"], "DOWN");
}

#[test]
fn a_replay_opens_the_incidents_on_their_own_time_and_the_same_file_is_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("haproxy.log");
    std::fs::write(
        &log,
        "Nov 23 01:23:33 lb1 haproxy[1]: Server be_n/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.\n\
         Nov 23 01:25:00 lb1 haproxy[1]: Server be_n/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.\n",
    )
    .unwrap();
    let cfg = ConfigBuilder::new(dir.path())
        .db(&dir.path().join("r.db"))
        .set("parse", "timezone", "\"UTC\"")
        .write_as("c.toml");
    let cfg_s = cfg.to_str().unwrap();
    let said = hapwatch(&["replay", "--config", cfg_s, log.to_str().unwrap()]);
    assert!(said.contains(", 1 incidents,"), "{said}");
    let incidents = json_lines(&["incidents", "--config", cfg_s, "--since", "60d", "--json"]);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["kind"], "server_down");
    assert_eq!(
        incidents[0]["duration_s"], 87,
        "the lines' own time: 01:23:33 to 01:25:00"
    );
    // The same file again would count its lines twice.
    let (_, err) = hapwatch_fails(&["replay", "--config", cfg_s, log.to_str().unwrap()]);
    assert!(
        err.contains("was replayed into") && err.contains("--force"),
        "{err}"
    );
    let events = json_lines(&["events", "--config", cfg_s, "--since", "60d", "--json"]);
    assert_eq!(events.len(), 2, "nothing counted twice");
    hapwatch(&[
        "replay",
        "--config",
        cfg_s,
        "--force",
        log.to_str().unwrap(),
    ]);
    let events = json_lines(&["events", "--config", cfg_s, "--since", "60d", "--json"]);
    assert_eq!(events.len(), 4, "--force replays it anyway");
}

#[test]
fn stats_by_status_and_by_url_add_up_to_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("haproxy.log");
    std::fs::write(&log, file_lines("rsyslog-fwd-default").concat()).unwrap();
    let cfg = replay_config(dir.path(), "r", "[limits]\nurls = 3\n");
    let cfg = cfg.to_str().unwrap();
    hapwatch(&["replay", "--config", cfg, log.to_str().unwrap()]);
    let labels = expected("rsyslog-fwd-default");
    let traffic: Vec<&serde_json::Value> = labels
        .iter()
        .filter(|l| l["kind"] == "http" || l["kind"] == "tcp")
        .collect();
    let span = [
        "--since",
        "2026-11-23T00:00:00Z",
        "--until",
        "2026-11-24T00:00:00Z",
    ];

    // Every status code with its count; tcplog sessions and -1 have none.
    let mut want: std::collections::BTreeMap<Option<i64>, u64> = Default::default();
    for l in &traffic {
        *want
            .entry(l["status"].as_i64().filter(|s| *s > 0))
            .or_default() += 1;
    }
    let rows = json_lines(
        &[
            &["stats", "--config", cfg, "--by", "status", "--json"],
            &span[..],
        ]
        .concat(),
    );
    let got: std::collections::BTreeMap<Option<i64>, u64> = rows
        .iter()
        .map(|r| (r["status"].as_i64(), r["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);
    let table = hapwatch(&[&["stats", "--config", cfg, "--by", "status"], &span[..]].concat());
    assert!(table.contains("STATUS") && table.contains("503"), "{table}");

    // With [limits] urls = 3 each backend window keeps three URLs and adds up
    // the rest as (other): the rows still sum to the backend's HTTP requests.
    let http_of = |backend: &str| {
        traffic
            .iter()
            .filter(|l| l["kind"] == "http" && l["backend"] == backend)
            .count() as u64
    };
    let rows = json_lines(
        &[
            &[
                "stats",
                "--config",
                cfg,
                "--by",
                "url",
                "--backend",
                "be_app",
                "--limit",
                "0",
                "--json",
            ],
            &span[..],
        ]
        .concat(),
    );
    let sum: u64 = rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, http_of("be_app"));
    assert!(rows.iter().any(|r| r["path"] == "(other)"), "{rows:?}");

    // Unbounded, ids fold and queries drop: one row per endpoint.
    let cfg2 = replay_config(dir.path(), "r2", "");
    let cfg2 = cfg2.to_str().unwrap();
    hapwatch(&["replay", "--config", cfg2, log.to_str().unwrap()]);
    let rows = json_lines(
        &[
            &[
                "stats", "--config", cfg2, "--by", "url", "--limit", "0", "--json",
            ],
            &span[..],
        ]
        .concat(),
    );
    let row = |method: &str, path: &str| {
        rows.iter()
            .find(|r| r["method"] == method && r["path"] == path)
            .unwrap_or_else(|| panic!("no {method} {path} in {rows:?}"))
    };
    let items = traffic
        .iter()
        .filter(|l| {
            l["method"] == "GET"
                && l["uri"]
                    .as_str()
                    .is_some_and(|u| u == "/api/items" || u.starts_with("/api/items?"))
        })
        .count() as u64;
    assert_eq!(row("GET", "/api/items")["requests"], items);
    let boom: Vec<_> = traffic
        .iter()
        .filter(|l| l["uri"] == "/status/500/boom")
        .collect();
    let r = row("GET", "/status/:id/boom");
    assert_eq!(r["requests"], boom.len() as u64);
    assert_eq!(
        r["s5xx"],
        boom.iter().filter(|l| l["status"] == 500).count() as u64
    );
    assert_eq!(row("", "(none)")["requests"], 5, "the <BADREQ> lines");
    let sum: u64 = rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    let http = traffic.iter().filter(|l| l["kind"] == "http").count() as u64;
    assert_eq!(sum, http, "tcplog sessions have no URL");
    let by_requests: Vec<u64> = rows
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .collect();
    assert!(
        by_requests.windows(2).all(|w| w[0] >= w[1]),
        "largest first"
    );

    let (_, err) = hapwatch_fails(&[
        "stats",
        "--config",
        cfg2,
        "--by",
        "url",
        "--server",
        "be_app/app1",
    ]);
    assert!(err.contains("URLs are kept per backend"), "{err}");
}

#[test]
fn haproxy_30_json_lines_fill_the_same_windows_as_their_labels() {
    let dir = tempfile::tempdir().unwrap();
    let lines = hapwatch_fixtures::haproxy_30::labelled("json");
    let file = dir.path().join("haproxy.log");
    let text: Vec<u8> = lines.iter().flat_map(|(d, _)| d.clone()).collect();
    std::fs::write(&file, text).unwrap();
    let cfg = ConfigBuilder::new(dir.path())
        .set("parse", "timezone", "\"UTC\"")
        .set(
            "parse",
            "haproxy_config",
            &format!(
                "{:?}",
                hapwatch_fixtures::haproxy_30::path("config/haproxy.cfg")
            ),
        )
        .write();
    let cfg = cfg.to_str().unwrap();
    let summary = hapwatch(&["replay", "--config", cfg, file.to_str().unwrap()]);
    assert!(
        summary.contains("300 traffic into windows") && summary.contains("0 unparsed"),
        "{summary}"
    );
    // Requests and 5xx per server, as the labels count them.
    let mut want: std::collections::BTreeMap<(String, String), (u64, u64)> = Default::default();
    for (_, l) in &lines {
        let e = want
            .entry((
                l["backend"].as_str().unwrap().into(),
                l["server"].as_str().unwrap().into(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(l["status"].as_u64().unwrap() >= 500);
    }
    let rows = json_lines(&[
        "stats", "--config", cfg, "--by", "server", "--json", "--since", "3650d",
    ]);
    let mut got: std::collections::BTreeMap<(String, String), (u64, u64)> = Default::default();
    for r in &rows {
        let e = got
            .entry((
                r["backend"].as_str().unwrap().into(),
                r["server"].as_str().unwrap().into(),
            ))
            .or_default();
        e.0 += r["requests"].as_u64().unwrap();
        e.1 += r["s5xx"].as_u64().unwrap();
    }
    assert_eq!(got, want);
}
