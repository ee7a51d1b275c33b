//! Every datagram of every captured HAProxy 2.6 stream parses to its labelled object.

use hapwatch_parsers::{find_log_formats, json::record_to_json, LogFormat, Parser};
use serde_json::{Map, Value};

/// A parser with the custom formats of a capture's HAProxy config.
fn parser_with_formats_of(cfg: std::path::PathBuf) -> Parser {
    let cfg = std::fs::read_to_string(cfg).unwrap();
    let found = find_log_formats(&cfg).unwrap();
    let formats = LogFormat::compile_all(found.iter().map(|f| f.format.as_str())).unwrap();
    Parser::new(formats)
}

fn parser_for_fixtures() -> Parser {
    parser_with_formats_of(hapwatch_fixtures::path("config/haproxy-default.cfg"))
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
    let streams = hapwatch_fixtures::streams();
    assert_eq!(streams.len(), 12, "all twelve captured streams are present");
    let mut checked = 0;
    let mut failures = Vec::new();
    for stream in &streams {
        for (i, (bytes, label)) in hapwatch_fixtures::labelled(stream).into_iter().enumerate() {
            let Value::Object(mut want) = label else {
                panic!("{stream}[{i}]: a label is an object")
            };
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
    let mut custom = 0;
    for (datagram, label) in hapwatch_fixtures::labelled("default") {
        if label["template"] == "custom_json" {
            custom += 1;
            assert!(parser.parse(&datagram).is_err());
        }
    }
    assert!(custom > 0);
}

/// The formats of the HAProxy 3.0 capture's config.
fn parser_for_30() -> Parser {
    parser_with_formats_of(hapwatch_fixtures::haproxy_30::path("config/haproxy.cfg"))
}

#[test]
fn every_json_line_of_haproxy_30_parses_to_its_labelled_record() {
    let parser = parser_for_30();
    let lines = hapwatch_fixtures::haproxy_30::labelled("json");
    assert_eq!(lines.len(), 300);
    let mut failures = Vec::new();
    for (i, (bytes, label)) in lines.iter().enumerate() {
        let Value::Object(want) = label else {
            panic!("json[{i}]: a label is an object")
        };
        let got = match parser.parse(bytes) {
            Ok(rec) => record_to_json(&rec),
            Err(e) => {
                failures.push(format!("json[{i}]: {e}"));
                continue;
            }
        };
        // The label names the traffic record's fields; `encoding` is the stream's.
        let differ: Vec<String> = want
            .iter()
            .filter(|(k, _)| *k != "encoding")
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: want {v} got {:?}", got.get(k)))
            .collect();
        if !differ.is_empty() {
            failures.push(format!("json[{i}]: {differ:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 300 differ; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_cbor_line_is_not_read_as_text() {
    // Today's CBOR lines are refused (and counted), never mis-read: the hex
    // once "parsed" whole as a client address.
    let parser = parser_for_30();
    for (i, (bytes, _)) in hapwatch_fixtures::haproxy_30::labelled("cbor")
        .iter()
        .enumerate()
    {
        match parser.parse(bytes) {
            Err(e) => assert_eq!(e.kind, hapwatch_parsers::ErrorKind::BadTraffic, "cbor[{i}]"),
            Ok(rec) => panic!("cbor[{i}] parsed as {:?}", record_to_json(&rec)),
        }
    }
}

#[test]
fn json_lines_with_haproxys_own_key_names_are_read_untold() {
    // The names of HAProxy's JSON example, from a format nobody told hapwatch.
    let line = br#"<134>Dec  1 18:32:03 haproxy[1]: {"client_ip": "10.0.0.7", "client_port": 40000, "request_date": "01/Dec/2026:18:32:03.497", "frontend_name": "fe", "backend_name": "be_api", "server_name": "s2", "time_to_receive": 0, "time_waiting": 0, "time_to_connect": 1, "time_server_response": 12, "time_active": 13, "status_code": 502, "bytes_read": 120, "termination_state": "SH--", "retries": 0, "request_line": "GET /x HTTP/1.1"}"#;
    let parser = Parser::default();
    let rec = parser.parse(line).unwrap();
    let got = record_to_json(&rec);
    assert_eq!(got["kind"], "http");
    assert_eq!(got["template"], "haproxy_json");
    for (k, v) in [
        ("client_ip", Value::from("10.0.0.7")),
        ("backend", "be_api".into()),
        ("server", "s2".into()),
        ("status", 502.into()),
        ("Ta", 13.into()),
        ("termination_state", "SH--".into()),
        ("request", "GET /x HTTP/1.1".into()),
    ] {
        assert_eq!(got[k], v, "{k}");
    }
    // A key of anyone else's is not guessed at.
    let other = br#"<134>Dec  1 18:32:03 haproxy[1]: {"client_ip": "10.0.0.7", "my_field": 1}"#;
    assert!(parser.parse(other).is_err());
}
