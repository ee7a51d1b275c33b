//! Load generator: sends real captured HAProxy httplog datagrams over UDP,
//! at a fixed rate or as fast as one core can, and says how many it sent.
//!
//! cargo run --release --example loadgen -- [--to 127.0.0.1:5140] [--rate N|max] [--seconds 60]
//!
//! With `--file PATH --lines N` it writes N lines as rsyslog writes them to a
//! file instead (`Nov 23 01:23:33 localhost haproxy[pid]: …`), for `replay`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use base64::Engine as _;

fn httplog_datagrams(stream: &str) -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/haproxy-2.6/");
    let data = std::fs::read_to_string(format!("{dir}{stream}.datagrams.jsonl")).expect("fixtures");
    let labels =
        std::fs::read_to_string(format!("{dir}{stream}.expected.jsonl")).expect("fixtures");
    data.lines()
        .zip(labels.lines())
        .filter(|(_, l)| l.contains("\"template\": \"httplog\""))
        .map(|(d, _)| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap()
        })
        .collect()
}

fn main() {
    let mut to = "127.0.0.1:5140".to_owned();
    let mut rate: Option<u64> = None;
    let mut seconds = 60u64;
    let mut file: Option<String> = None;
    let mut file_lines = 2_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--to" => to = value(),
            "--rate" => rate = value().parse().ok(),
            "--seconds" => seconds = value().parse().expect("--seconds N"),
            "--file" => file = Some(value()),
            "--lines" => file_lines = value().parse().expect("--lines N"),
            _ => panic!("usage: loadgen [--to HOST:PORT] [--rate N|max] [--seconds S]"),
        }
    }
    if let Some(path) = file {
        return write_file(&path, file_lines);
    }
    let lines = httplog_datagrams("default");
    let avg = lines.iter().map(Vec::len).sum::<usize>() / lines.len();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(&to).unwrap();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut i = 0;
    while Instant::now() < end {
        // Send in slices of 1 ms so a fixed rate stays smooth.
        let due = match rate {
            Some(r) => (r as f64 * start.elapsed().as_secs_f64()) as u64,
            None => sent + failed + 256,
        };
        if sent + failed >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        while sent + failed < due {
            match sock.send(&lines[i % lines.len()]) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
            i += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} datagrams ({failed} send errors) of {avg} bytes on average in {secs:.1}s: {:.0}/s",
        sent as f64 / secs
    );
}

/// rsyslog's file format is its forwarded line without the PRI.
fn write_file(path: &str, n: usize) {
    use std::io::Write;
    let lines: Vec<Vec<u8>> = httplog_datagrams("rsyslog-fwd-default")
        .into_iter()
        .map(|d| {
            let body = &d[d.iter().position(|&b| b == b'>').unwrap() + 1..];
            let mut l = body.strip_suffix(b"\n").unwrap_or(body).to_vec();
            l.push(b'\n');
            l
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the file"));
    let mut bytes = 0;
    for i in 0..n {
        let l = &lines[i % lines.len()];
        out.write_all(l).unwrap();
        bytes += l.len();
    }
    out.flush().unwrap();
    println!("wrote {n} httplog lines ({bytes} bytes) to {path}");
}
