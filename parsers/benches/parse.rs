//! Parser throughput: ns per line for each template, and MB/s over the real
//! mixed corpus (every datagram of the captured `default` stream).
//!
//! Run: `cargo bench -p hapwatch-parsers`

use std::sync::OnceLock;

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use hapwatch_parsers::{find_log_formats, parse_envelope, LogFormat, Parser};

fn main() {
    divan::main();
}

fn parser() -> &'static Parser {
    static P: OnceLock<Parser> = OnceLock::new();
    P.get_or_init(|| {
        let cfg =
            std::fs::read_to_string(hapwatch_fixtures::path("config/haproxy-default.cfg")).unwrap();
        let found = find_log_formats(&cfg).unwrap();
        let formats = LogFormat::compile_all(found.iter().map(|f| f.format.as_str())).unwrap();
        Parser::new(formats)
    })
}

/// (template, datagram) for every datagram of the default stream.
fn corpus() -> &'static Vec<(String, Vec<u8>)> {
    static C: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    C.get_or_init(|| {
        hapwatch_fixtures::labelled("default")
            .into_iter()
            .map(|(bytes, label)| {
                let template = match label["log_format"].as_str() {
                    Some("httpslog") => "httpslog".to_string(),
                    _ => label["template"].as_str().unwrap().to_string(),
                };
                (template, bytes)
            })
            .collect()
    })
}

fn lines_of(template: &str) -> Vec<&'static [u8]> {
    corpus()
        .iter()
        .filter(|(t, _)| t == template)
        .map(|(_, b)| b.as_slice())
        .collect()
}

/// ns per line for one template, over all real lines of it.
#[divan::bench(args = ["httplog", "httpslog", "tcplog", "httplog_clf", "custom_json", "health_check", "agent_check", "srv_down", "srv_up", "backend_no_server", "proxy_stopped"])]
fn per_template(bencher: Bencher, template: &str) {
    let p = parser();
    let lines = lines_of(template);
    assert!(!lines.is_empty(), "no {template} lines in the corpus");
    let mut i = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        i = (i + 1) % lines.len();
        black_box(p.parse(black_box(lines[i])).is_ok())
    });
}

/// The syslog envelope alone (default `local` header).
#[divan::bench]
fn envelope_only(bencher: Bencher) {
    let lines: Vec<&str> = lines_of("httplog")
        .into_iter()
        .map(|b| std::str::from_utf8(b).unwrap().trim_end())
        .collect();
    let mut i = 0;
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        i = (i + 1) % lines.len();
        black_box(parse_envelope(black_box(lines[i])).1.len())
    });
}

/// Every datagram of the captured stream, in order: MB/s on realistic data.
#[divan::bench(sample_count = 30)]
fn mixed_corpus(bencher: Bencher) {
    let p = parser();
    let all: Vec<&[u8]> = corpus().iter().map(|(_, b)| b.as_slice()).collect();
    let bytes: usize = all.iter().map(|b| b.len()).sum();
    bencher.counter(BytesCount::new(bytes)).bench_local(|| {
        let mut ok = 0usize;
        for line in &all {
            ok += usize::from(p.parse(black_box(line)).is_ok());
        }
        black_box(ok)
    });
}
