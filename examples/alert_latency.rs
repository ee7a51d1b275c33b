//! Alert latency: from the UDP datagram of `Server … is DOWN` to the webhook
//! request arriving at a local HTTP receiver, over 1,000 events, while
//! traffic lines flow at 50k/s. Needs a release build of the binary:
//!
//! cargo build --release && cargo run --release --example alert_latency [EVENTS] [email]
//!
//! With `email`, the channel is SMTP to Debian's aiosmtpd (tests/integration/smtp_server.py,
//! STARTTLS and AUTH, certificates made with openssl) and the time is taken
//! when the server has accepted the mail.
#![allow(clippy::print_stdout)] // a program whose output is its report

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod common;

/// The tests' aiosmtpd server and test CA, reused as they are.
#[allow(dead_code)]
#[path = "../tests/integration/util/smtp.rs"]
mod smtp;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends (arrival time, body) for every request; answers 200.
fn receiver(listener: TcpListener, tx: mpsc::Sender<(Instant, String)>) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= i + 4 + len {
                    let at = Instant::now();
                    let body = String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string();
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    let _ = tx.send((at, body));
                    break;
                }
            }
        }
    }
}

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let email = std::env::args().nth(2).is_some_and(|a| a == "email");
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("hapwatch");
    let dir = std::env::temp_dir().join(format!("hapwatch-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (udp, listener) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let hook = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || receiver(listener, tx));
    let cfg = dir.join("c.toml");
    let mut smtp = None;
    let channel = if email {
        let port = free_port();
        let (ca, cert, key) = smtp::certificates(&dir);
        smtp = Some(smtp::Smtp::start(
            port,
            &cert,
            &key,
            &dir.join("mails.jsonl"),
        ));
        format!(
            "[[channel]]\nname = \"bench\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n\
             username = \"hapwatch\"\npassword = \"s3cret\"\nca_file = {ca:?}\nfrom = \"hapwatch@example.org\"\n\
             to = [\"ops@example.org\"]\nresolved = false\n"
        )
    } else {
        format!("[[channel]]\nname = \"bench\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/\"\nresolved = false\n")
    };
    std::fs::write(
        &cfg,
        format!(
            "[storage]\npath = {:?}\n{}\n[[listen]]\nurl = \"udp://127.0.0.1:{udp}\"\n[notify]\ngroup_wait = \"0s\"\n{channel}",
            dir.join("l.db"),
            // More [storage] keys: `postgres = "…"` times the path through PostgreSQL.
            std::env::var("HAPWATCH_STORAGE").unwrap_or_default()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("HAPWATCH_LOG", "error")
        .stderr(Stdio::null())
        .spawn()
        .expect("run `cargo build --release` first");
    std::thread::sleep(Duration::from_millis(500));

    // Background traffic at 50k lines/s.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let lines = common::httplog_datagrams("default");
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(("127.0.0.1", udp)).unwrap();
            let start = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * 50_000.0) as u64;
                while sent < due {
                    let _ = sock.send(&lines[sent as usize % lines.len()]);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            sent as f64 / start.elapsed().as_secs_f64()
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut latencies = Vec::with_capacity(events);
    for i in 0..events {
        // From a host of its own: the traffic's worker (another PID on the
        // same host) would make this look like a reload, whose grace holds pages.
        let down = format!("<129>Nov 23 01:23:33 lb-lat haproxy[1]: Server be_lat/s{i} is DOWN, reason: Layer4 timeout, check duration: 2001ms. 99 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.");
        let sent = Instant::now();
        sock.send_to(down.as_bytes(), ("127.0.0.1", udp)).unwrap();
        let want = format!("be_lat/s{i} on");
        match &smtp {
            None => loop {
                let (at, body) = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a webhook within 10 s");
                if body.contains(&want) {
                    latencies.push(at.duration_since(sent));
                    break;
                }
            },
            // The mail log grows by one line per accepted mail.
            Some(server) => loop {
                let n = server.mails().len();
                if n > i {
                    latencies.push(sent.elapsed());
                    break;
                }
                assert!(
                    sent.elapsed() < Duration::from_secs(10),
                    "a mail within 10 s"
                );
                std::thread::sleep(Duration::from_micros(200));
            },
        }
        // Back UP, so the backend never counts as degraded.
        let up = format!("<133>Nov 23 01:23:34 lb-lat haproxy[1]: Server be_lat/s{i} is UP. 100 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.");
        sock.send_to(up.as_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let rate = traffic.join().unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    // Dropping the server stops it.
    drop(smtp);
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort();
    let q = |p: f64| {
        latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "{events} DOWN events with {rate:.0} traffic lines/s: datagram → {} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        if email { "mail accepted" } else { "webhook" },
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}
