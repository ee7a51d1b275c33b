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
    let picked: Vec<Vec<u8>> = hapwatch_fixtures::labelled("default")
        .into_iter()
        .filter(|(_, label)| label["log_format"] == "httplog")
        .map(|(datagram, _)| datagram)
        .collect();
    picked
        .iter()
        .cycle()
        .take(lines)
        .flat_map(|l| l.iter().copied())
        .collect()
}
