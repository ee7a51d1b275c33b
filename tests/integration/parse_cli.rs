//! `hapwatch parse` as a user runs it: a captured stream on stdin, JSON lines out.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use crate::util::{datagrams, expected, fixture};

fn run_parse(args: &[&str], stdin: &[u8]) -> (String, std::process::ExitStatus) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .arg("parse")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status)
}

#[test]
fn a_whole_rsyslog_stream_matches_its_labels() {
    let mut input = Vec::new();
    for mut bytes in datagrams("rsyslog-fwd-default") {
        // rsyslog forwards without a trailing LF: one message per line here.
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        input.extend_from_slice(&bytes);
    }
    let cfg = fixture("config/haproxy-rsyslog.cfg");
    let (out, status) = run_parse(&["--haproxy-config", cfg.to_str().unwrap()], &input);
    assert!(status.success());
    let expected = expected("rsyslog-fwd-default");
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        let g: Map<String, Value> = serde_json::from_str(g).unwrap();
        let Value::Object(mut e) = e else {
            panic!("a label is an object")
        };
        for k in ["i", "len", "json_valid"] {
            e.remove(k);
        }
        assert_eq!(g, e);
    }
}

#[test]
fn bad_lines_are_explained_and_the_run_goes_on() {
    let input = b"not haproxy at all\n<134>Nov 23 01:23:34 haproxy[1]: Server be/s1 dances.\n\xff\xfe\n<133>Nov 23 01:23:33 haproxy[9]: backend be_x has no server available!\n";
    let (out, status) = run_parse(&[], input);
    assert!(status.success());
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    for r in &rows[..3] {
        assert_eq!(r["kind"], "unparsed");
        assert!(!r["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(rows[0]["message"], "not haproxy at all");
    assert!(rows[1]["error"].as_str().unwrap().starts_with("bad_health"));
    assert_eq!(rows[3]["kind"], "backend_down");
    assert_eq!(rows[3]["proxy"], "be_x");
}

#[test]
fn log_format_flag_teaches_a_custom_format() {
    let line = b"<134>Nov 23 01:23:34 haproxy[1]: fe_api 503 be_api/s2 12 ms\n";
    let (out, _) = run_parse(&[], line);
    assert!(out.contains("\"unparsed\""));
    let (out, status) = run_parse(&["--log-format", "%ft %ST %b/%s %Ta ms"], line);
    assert!(status.success());
    let row: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["kind"], "http");
    assert_eq!(row["log_format"], "custom");
    assert_eq!(row["status"], 503);
    assert_eq!(row["server"], "s2");
    assert_eq!(row["Ta"], 12);
}

#[test]
fn a_bad_format_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args(["parse", "--log-format", "%ft %Tams"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown log-format alias %Tams at offset 4"),
        "{err}"
    );
}

#[test]
fn an_unreadable_file_is_an_error() {
    let status = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args(["parse", "/nonexistent/file.log"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
