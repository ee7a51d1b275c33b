//! Every datagram of every captured HAProxy 2.6 stream parses to its labelled object.

use std::path::PathBuf;

use base64::Engine as _;
use hapwatch_parsers::{find_log_formats, json::record_to_json, LogFormat, Parser};
use serde_json::{Map, Value};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/haproxy-2.6")
}

fn parser_for_fixtures() -> Parser {
    let cfg = std::fs::read_to_string(fixture_dir().join("config/haproxy-default.cfg")).unwrap();
    let found = find_log_formats(&cfg).unwrap();
    let formats = LogFormat::compile_all(found.iter().map(|f| f.format.as_str())).unwrap();
    Parser::new(formats)
}

fn streams() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".datagrams.jsonl").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn decode(datagram_line: &str) -> Vec<u8> {
    let d: Value = serde_json::from_str(datagram_line).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(d["b64"].as_str().unwrap())
        .unwrap()
}

fn differing_keys(want: &Map<String, Value>, got: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: want {:?} got {:?}", want.get(k), got.get(k)))
        .collect();
    keys.dedup();
    keys
}

#[test]
fn every_datagram_parses_to_its_expected_object() {
    let parser = parser_for_fixtures();
    let streams = streams();
    assert_eq!(streams.len(), 12, "all twelve captured streams are present");
    let mut checked = 0;
    let mut failures = Vec::new();
    for stream in &streams {
        let dir = fixture_dir();
        let datagrams =
            std::fs::read_to_string(dir.join(format!("{stream}.datagrams.jsonl"))).unwrap();
        let expected =
            std::fs::read_to_string(dir.join(format!("{stream}.expected.jsonl"))).unwrap();
        let expected: Vec<&str> = expected.lines().collect();
        assert_eq!(
            datagrams.lines().count(),
            expected.len(),
            "{stream}: one label per datagram"
        );
        for (i, (d, e)) in datagrams.lines().zip(expected).enumerate() {
            let bytes = decode(d);
            let mut want: Map<String, Value> = serde_json::from_str(e).unwrap();
            for k in ["i", "len", "json_valid"] {
                want.remove(k);
            }
            checked += 1;
            match parser.parse(&bytes) {
                Ok(rec) => {
                    let got = record_to_json(&rec);
                    if got != want {
                        failures.push(format!(
                            "{stream}[{i}] {}: {:?}",
                            want["message"],
                            differing_keys(&want, &got)
                        ));
                    }
                }
                Err(err) => failures.push(format!(
                    "{stream}[{i}]: {err}: {}",
                    String::from_utf8_lossy(&bytes)
                )),
            }
        }
    }
    assert_eq!(checked, 12 * 916);
    assert!(
        failures.is_empty(),
        "{} of {} datagrams differ; first ones:\n{}",
        failures.len(),
        checked,
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn without_the_custom_format_json_lines_are_reported_not_guessed() {
    let parser = Parser::default();
    let datagrams = std::fs::read_to_string(fixture_dir().join("default.datagrams.jsonl")).unwrap();
    let expected = std::fs::read_to_string(fixture_dir().join("default.expected.jsonl")).unwrap();
    let mut custom = 0;
    for (d, e) in datagrams.lines().zip(expected.lines()) {
        let want: Value = serde_json::from_str(e).unwrap();
        if want["template"] == "custom_json" {
            custom += 1;
            assert!(parser.parse(&decode(d)).is_err());
        }
    }
    assert!(custom > 0);
}
