//! Lines per second over a log file, single thread: the figure to compare with
//! `halog`. Usage: `cargo run --release -p hapwatch-parsers --example throughput -- FILE [ROUNDS] [--body]`
//! With `--body`, syslog headers are stripped before timing and only the
//! HAProxy message is parsed. FILE `fixture-httplog` builds the standard corpus:
//! the real httplog datagrams of `fixtures/haproxy-2.6/default`, repeated to 2 M lines;
//! `fixture-json`, the `%{+json}o` lines of `fixtures/haproxy-3.0-json`, read
//! with the formats of its config.
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: throughput FILE [ROUNDS]");
    let rounds: usize = args
        .next()
        .map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let (data, parser) = match path.as_str() {
        "fixture-httplog" => (
            fixture_httplog(2_000_000),
            hapwatch_parsers::Parser::default(),
        ),
        "fixture-json" => (fixture_30("json", 2_000_000), parser_30()),
        _ => (
            std::fs::read(&path).expect("readable file"),
            hapwatch_parsers::Parser::default(),
        ),
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
    let picked: Vec<Vec<u8>> = hapwatch_fixtures::labelled("default")
        .into_iter()
        .filter(|(_, label)| label["log_format"] == "httplog")
        .map(|(datagram, _)| datagram)
        .collect();
    repeated(&picked, lines)
}

/// A stream of the HAProxy 3.0 capture, repeated.
fn fixture_30(stream: &str, lines: usize) -> Vec<u8> {
    let picked: Vec<Vec<u8>> = hapwatch_fixtures::haproxy_30::labelled(stream)
        .into_iter()
        .map(|(datagram, _)| datagram)
        .collect();
    repeated(&picked, lines)
}

/// `lines` datagrams taken in turn from `picked`, one after another.
fn repeated(picked: &[Vec<u8>], lines: usize) -> Vec<u8> {
    picked
        .iter()
        .cycle()
        .take(lines)
        .flat_map(|l| l.iter().copied())
        .collect()
}

/// A parser with the custom formats of the 3.0 capture's config.
fn parser_30() -> hapwatch_parsers::Parser {
    let cfg = std::fs::read_to_string(hapwatch_fixtures::haproxy_30::path("config/haproxy.cfg"))
        .expect("the 3.0 capture's config");
    let found = hapwatch_parsers::find_log_formats(&cfg).expect("its log-formats");
    let formats = hapwatch_parsers::LogFormat::compile_all(found.iter().map(|f| f.format.as_str()))
        .expect("formats that compile");
    hapwatch_parsers::Parser::new(formats)
}
