//! Load generator: sends real captured HAProxy httplog datagrams over UDP,
//! at a fixed rate or as fast as one core can, and says how many it sent.
//!
//! cargo run --release --example loadgen -- [--to 127.0.0.1:5140] [--rate N|max] [--seconds 60]
//!
//! With `--servers N` it sends synthetic httplog lines instead, stamped with
//! the current time and spread over N servers (10 per backend), so that the
//! store grows as it would in production (for soak runs).
//!
//! With `--file PATH --lines N` it writes N lines as rsyslog writes them to a
//! file instead (`Nov 23 01:23:33 localhost haproxy[pid]: …`), for `replay`.
//! With `--history PATH --days N [--servers N]` it writes a synthetic history
//! ending now: one httplog line per minute for each of 20 servers (10 per
//! backend) over N days, and a state change every few minutes over a year
//! (dates in UTC), to measure queries and pages on a store of realistic size.
#![allow(clippy::print_stdout)] // a program whose output is its report

use std::net::UdpSocket;
use std::time::{Duration, Instant};

mod common;

use common::httplog_datagrams;

fn main() {
    // Several `--to`: every line goes to each, as HAProxy's `log` lines do.
    let mut to: Vec<String> = Vec::new();
    let mut rate: Option<u64> = None;
    let mut seconds = 60u64;
    let mut file: Option<String> = None;
    let mut file_lines = 2_000_000usize;
    let mut history: Option<String> = None;
    let mut days = 30i64;
    let mut servers: Option<u32> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--to" => to.push(value()),
            "--rate" => rate = value().parse().ok(),
            "--seconds" => seconds = value().parse().expect("--seconds N"),
            "--file" => file = Some(value()),
            "--lines" => file_lines = value().parse().expect("--lines N"),
            "--history" => history = Some(value()),
            "--days" => days = value().parse().expect("--days N"),
            "--servers" => servers = Some(value().parse().expect("--servers N")),
            _ => panic!("usage: loadgen [--to HOST:PORT] [--rate N|max] [--seconds S]"),
        }
    }
    if let Some(path) = history {
        return write_history(&path, days, servers.unwrap_or(20));
    }
    if let Some(path) = file {
        return write_file(&path, file_lines);
    }
    let mut fresh = servers.map(Fresh::new);
    let captured = match fresh {
        Some(_) => Vec::new(),
        None => httplog_datagrams("default"),
    };
    let avg = {
        let lines = to_send(&mut fresh, &captured);
        lines.iter().map(Vec::len).sum::<usize>() / lines.len()
    };
    if to.is_empty() {
        to.push("127.0.0.1:5140".into());
    }
    let socks: Vec<UdpSocket> = to
        .iter()
        .map(|t| {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(t).unwrap();
            sock
        })
        .collect();
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
        let lines = to_send(&mut fresh, &captured);
        while sent + failed < due {
            let line = &lines[i % lines.len()];
            match socks.iter().all(|s| s.send(line).is_ok()) {
                true => sent += 1,
                false => failed += 1,
            }
            i += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} datagrams ({failed} send errors) of {avg} bytes on average in {secs:.1}s: {:.0}/s, to {} destination(s)",
        sent as f64 / secs,
        socks.len()
    );
}

/// The lines to send now: this second's synthetic ones (rebuilt once a
/// second, borrowed otherwise), or the captured ones.
fn to_send<'a>(fresh: &'a mut Option<Fresh>, captured: &'a [Vec<u8>]) -> &'a [Vec<u8>] {
    match fresh {
        Some(f) => f.lines(unix_now()),
        None => captured,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Synthetic httplog datagrams of the current second, one per server.
struct Fresh {
    servers: u32,
    second: i64,
    lines: Vec<Vec<u8>>,
}

impl Fresh {
    fn new(servers: u32) -> Fresh {
        Fresh {
            servers: servers.max(1),
            second: i64::MIN,
            lines: Vec::new(),
        }
    }

    /// The lines for second `t`, built once per second.
    fn lines(&mut self, t: i64) -> &[Vec<u8>] {
        if t != self.second {
            self.second = t;
            let (header, accept) = stamp(t);
            self.lines = (0..self.servers)
                .map(|srv| {
                    // Mostly 200s with a few 404s and 503s; latencies vary per server and second.
                    let status = match (t + i64::from(srv)) % 50 {
                        0 => 503,
                        1..=3 => 404,
                        _ => 200,
                    };
                    let tr = 1 + (t * 7 + i64::from(srv) * 13) % 120;
                    format!("<134>{header} lb1 haproxy[1]: 10.0.{}.{}:4242 [{accept}] fe_main be_{}/s{srv} 0/0/1/{tr}/{} {status} 512 - - ---- 1/1/0/0/0 0/0 \"GET /x HTTP/1.1\"", srv / 250, srv % 250, srv / 10, tr + 2).into_bytes()
                })
                .collect();
        }
        &self.lines
    }
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

/// (syslog header date, httplog accept date) of unix second `t`, in UTC.
fn stamp(t: i64) -> (String, String) {
    let ts = jiff::Timestamp::from_second(t).expect("a representable second");
    (
        ts.strftime("%b %e %H:%M:%S").to_string(),
        ts.strftime("%d/%b/%Y:%H:%M:%S.000").to_string(),
    )
}

fn write_history(path: &str, days: i64, servers: u32) {
    use std::io::Write;
    let now = unix_now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the file"));
    let (mut traffic, mut events) = (0u64, 0u64);
    // A state change every 157 s for a year: ~200k events.
    let mut t = now - 365 * 86_400;
    let mut up = false;
    while t < now - 60 {
        let (header, _) = stamp(t);
        let srv = (t / 157) % i64::from(servers);
        let state = if up { "UP" } else { "DOWN" };
        writeln!(out, "{header} lb1 haproxy[1]: Server be_{}/s{srv} is {state}, reason: Layer4 timeout, check duration: 2001ms. 9 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.", srv / 10).unwrap();
        up = !up;
        events += 1;
        t += 157;
    }
    let mut t = now - days * 86_400;
    while t < now - 60 {
        let (header, accept) = stamp(t);
        for srv in 0..servers {
            let status = if srv == 7 && t % 600 == 0 { 503 } else { 200 };
            // Times that vary by minute, so the histograms have several buckets.
            let tr = srv % 20 + 2 + (t / 60 % 7) as u32 * 3;
            writeln!(out, "{header} lb1 haproxy[1]: 10.0.0.{}:4242 [{accept}] fe_main be_{}/s{srv} 0/0/1/{tr}/{} {status} 512 - - ---- 1/1/0/0/0 0/0 \"GET /x HTTP/1.1\"", srv % 250, srv / 10, tr + 1).unwrap();
            traffic += 1;
        }
        t += 60;
    }
    out.flush().unwrap();
    println!("wrote {traffic} traffic lines ({days} days, {servers} servers, one a minute each) and {events} events (a year) to {path}");
}
