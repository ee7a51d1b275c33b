//! Lines per second over a log file, single thread: the figure to compare with
//! `halog`. Usage: `cargo run --release -p hapwatch-parsers --example throughput -- FILE [ROUNDS] [--body]`
//! With `--body`, syslog headers are stripped before timing and only the
//! HAProxy message is parsed. FILE `fixture-httplog` builds the standard corpus:
//! the real httplog datagrams of `fixtures/haproxy-2.6/default`, repeated to 2 M lines.
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: throughput FILE [ROUNDS]");
    let rounds: usize = args
        .next()
        .map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let data = if path == "fixture-httplog" {
        fixture_httplog(2_000_000)
    } else {
        std::fs::read(&path).expect("readable file")
    };
    let body_only = args.next().as_deref() == Some("--body");
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    // Headers are stripped before timing, and only when the body alone is measured.
    let bodies: Vec<&str> = if body_only {
        lines
            .iter()
            .filter_map(|l| std::str::from_utf8(l).ok())
            .map(|l| hapwatch_parsers::parse_envelope(l).1)
            .collect()
    } else {
        Vec::new()
    };
    let parser = hapwatch_parsers::Parser::default();
    let mut best = f64::MAX;
    let mut ok = 0;
    for _ in 0..rounds {
        ok = 0;
        let t = Instant::now();
        if body_only {
            for b in &bodies {
                ok += usize::from(std::hint::black_box(parser.parse_message(b)).is_ok());
            }
        } else {
            for l in &lines {
                ok += usize::from(std::hint::black_box(parser.parse(l)).is_ok());
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let n = lines.len() as f64;
    eprintln!(
        "{} lines ({} parsed), best of {rounds}: {:.0} ns/line, {:.2} M lines/s, {:.0} MB/s",
        lines.len(),
        ok,
        best / n * 1e9,
        n / best / 1e6,
        data.len() as f64 / best / 1e6
    );
}

/// The real httplog datagrams of the `default` fixture stream, repeated.
fn fixture_httplog(lines: usize) -> Vec<u8> {
    use base64::Engine as _;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/haproxy-2.6");
    let d = std::fs::read_to_string(dir.join("default.datagrams.jsonl")).expect("fixtures");
    let e = std::fs::read_to_string(dir.join("default.expected.jsonl")).expect("fixtures");
    let picked: Vec<Vec<u8>> = d
        .lines()
        .zip(e.lines())
        .filter(|(_, e)| e.contains("\"log_format\": \"httplog\""))
        .map(|(d, _)| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    picked
        .iter()
        .cycle()
        .take(lines)
        .flat_map(|l| l.iter().copied())
        .collect()
}
