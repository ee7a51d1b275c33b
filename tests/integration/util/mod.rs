//! Shared by the integration tests: real fixtures, a running daemon, the CLI.

pub mod alertmanager;
pub mod browser;
pub mod config;
pub mod haproxy;
pub mod in_process;
pub mod postgres;
pub mod smtp;

pub use config::ConfigBuilder;
pub use in_process::InProcess;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(unused_imports)] // each test binary uses some of them
pub use hapwatch_fixtures::{datagrams, labels as expected, path as fixture};

/// Traffic per (backend, server, minute start as RFC 3339, UTC), from the labels.
pub type Expected = BTreeMap<(String, String, String), Counts>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub s2xx: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub s_other: u64,
    pub retries: u64,
}

pub fn expected_windows(labels: &[Value], into: &mut Expected) {
    for l in labels
        .iter()
        .filter(|l| l["kind"] == "http" || l["kind"] == "tcp")
    {
        let date = l["accept_date"].as_str().unwrap();
        // dd/Mon/yyyy:HH:MM:SS — the captures are all from November 2026, in UTC.
        assert_eq!(&date[2..11], "/Nov/2026", "{date}");
        let start = format!(
            "2026-11-{}T{}:{}:00Z",
            &date[0..2],
            &date[12..14],
            &date[15..17]
        );
        let key = (
            l["backend"].as_str().unwrap().to_owned(),
            l["server"].as_str().unwrap().to_owned(),
            start,
        );
        let c = into.entry(key).or_default();
        c.requests += 1;
        match l["status"].as_i64() {
            Some(200..=299) => c.s2xx += 1,
            Some(400..=499) => c.s4xx += 1,
            Some(500..=599) => c.s5xx += 1,
            Some(100..=399) => {}
            _ => c.s_other += 1,
        }
        c.retries += l["retries"].as_u64().unwrap_or(0);
    }
}

/// The same figures as `hapwatch stats --by server --window 1m --json` reports them.
pub fn stored_windows(rows: &[Value]) -> Expected {
    let mut m = Expected::new();
    for r in rows {
        let key = (
            r["backend"].as_str().unwrap().to_owned(),
            r["server"].as_str().unwrap().to_owned(),
            r["start"].as_str().unwrap().to_owned(),
        );
        let c = m.entry(key).or_default();
        c.requests += r["requests"].as_u64().unwrap();
        c.s2xx += r["s2xx"].as_u64().unwrap();
        c.s4xx += r["s4xx"].as_u64().unwrap();
        c.s5xx += r["s5xx"].as_u64().unwrap();
        c.s_other += r["s_other"].as_u64().unwrap();
        c.retries += r["retries"].as_u64().unwrap();
    }
    m
}

fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("HAPWATCH_CONFIG")
        .output()
        .unwrap()
}

/// Runs the CLI; returns stdout, and panics with stderr on failure.
pub fn hapwatch(args: &[&str]) -> String {
    let out = run_cli(args);
    assert!(
        out.status.success(),
        "hapwatch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the CLI expecting it to fail; returns (stdout, stderr).
pub fn hapwatch_fails(args: &[&str]) -> (String, String) {
    let out = run_cli(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !out.status.success(),
        "hapwatch {args:?} succeeded: {stdout}"
    );
    (stdout, stderr)
}

pub fn json_lines(args: &[&str]) -> Vec<Value> {
    hapwatch(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Whether these programs are installed. A missing one skips the test, or
/// fails it under HAPWATCH_E2E=1 (CI installs them, so they must run there).
pub fn installed(programs: &[&str]) -> bool {
    let missing: Vec<&&str> = programs.iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    cannot_run(&format!("{missing:?} is not installed"));
    false
}

/// A test cannot run here (`why`): it is skipped, or fails under HAPWATCH_E2E=1,
/// where CI has provided everything the tests need.
pub fn cannot_run(why: &str) {
    assert!(
        std::env::var_os("HAPWATCH_E2E").is_none(),
        "HAPWATCH_E2E=1 but {why}"
    );
    eprintln!("skipped: {why}");
}

/// Polls `hapwatch ARGS` (a `--json` query) until it prints something, for up
/// to 30 s; the store may not even exist yet. `daemon` explains a timeout.
pub fn wait_json_lines(args: &[&str], daemon: &Daemon) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
            .args(args)
            .output()
            .unwrap();
        if out.status.success() && !out.stdout.is_empty() {
            return String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "nothing from hapwatch {args:?}; daemon log:\n{}",
            daemon.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `hapwatch outbox ARGS --json` (ARGS: `--db F` or `--config F`)
/// until a row is in `state`; returns every row then.
pub fn wait_outbox_state(args: &[&str], state: &str, daemon: &Daemon) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = vec!["outbox", "--json"];
    all.extend_from_slice(args);
    loop {
        let rows = wait_json_lines(&all, daemon);
        if rows.iter().any(|r| r["state"] == state) {
            return rows;
        }
        assert!(Instant::now() < deadline, "no {state} row: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Now as HAProxy writes an accept date (UTC): a line's window is the current minute.
pub fn accept_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jiff::Timestamp::from_second(now)
        .unwrap()
        .strftime("%d/%b/%Y:%H:%M:%S.000")
        .to_string()
}

/// An httplog line accepted now (UTC), so its window is the current minute.
pub fn traffic_now(status: u16) -> Vec<u8> {
    let accept = accept_now();
    format!(
        "<134>Nov 23 01:23:33 haproxy[1]: 10.0.0.1:4242 [{accept}] fe be_api/api1 0/0/1/5/6 {status} 100 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\""
    )
    .into_bytes()
}

/// Waits (60 s at most) until `sql`, one integer read from the store at
/// `db`, is at least `n`; `diagnosis` says what to show if it never is.
/// One integer read from the store at `db` now (0 while it cannot be read).
pub fn stored(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
}

/// How many incidents match `filter` (SQL on `incidents`).
fn incidents_matching(filter: &str) -> String {
    format!("SELECT count(*) FROM incidents WHERE {filter}")
}

pub fn wait_stored(
    db: &Path,
    what: &str,
    sql: &str,
    n: i64,
    mut diagnosis: impl FnMut() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = stored(db, sql);
        if got >= n {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{what}: {got} of {n}; {}", diagnosis());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `hapwatch serve` child whose log lines are collected.
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// What it listens on and stores to, from its ready file.
    pub ready: Value,
}

impl Daemon {
    /// Starts `serve --config FILE` and waits until it is receiving on its
    /// `listeners` sockets (its ready file says so).
    pub fn start(config: &Path, listeners: usize) -> Daemon {
        Daemon::start_with_env(config, listeners, &[])
    }

    /// As `start`, with more environment variables (LD_PRELOAD…).
    pub fn start_with_env(config: &Path, listeners: usize, env: &[(&str, &str)]) -> Daemon {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ready_file = config.with_extension(format!("ready-{}-{n}.json", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hapwatch"))
            .args(["serve", "--stats-interval", "200ms", "--config"])
            .arg(config)
            .arg("--ready-file")
            .arg(&ready_file)
            .envs(env.iter().copied())
            .env("HAPWATCH_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            lines: rx,
            seen: Vec::new(),
            ready: Value::Null,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while d.ready.is_null() {
            d.seen.extend(d.lines.try_iter());
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                d.ready = serde_json::from_str(&text).unwrap();
                break;
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                d.seen.extend(d.lines.iter());
                panic!(
                    "serve exited ({status}) before receiving:\n{}",
                    d.seen.join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "serve did not start:\n{}",
                d.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            d.ready["listeners"].as_array().unwrap().len(),
            listeners,
            "{}",
            d.ready
        );
        d
    }

    /// The port of its `i`th listener (as configured, port 0 made real).
    pub fn port(&self, i: usize) -> u16 {
        let url = self.ready["listeners"][i].as_str().unwrap();
        url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The port of its HTTP endpoints.
    pub fn http_port(&self) -> u16 {
        let addr = self.ready["http"].as_str().expect("no [http] listen");
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits (60 s at most) until its `/healthz` answer satisfies `done`:
    /// the daemon's own counters (reloads, clock steps, a held batch).
    pub fn wait_health(&mut self, what: &str, done: impl Fn(&Value) -> bool) {
        let port = self.http_port();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = http_get(port, "/healthz");
            let health: Value = serde_json::from_str(&body).unwrap();
            if done(&health) {
                return;
            }
            if Instant::now() >= deadline {
                self.seen.extend(self.lines.try_iter());
                panic!(
                    "{what}: /healthz says {health}; its log:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the store holds a failed batch for a retry (`true`) or
    /// holds none (`false`).
    pub fn wait_store_retrying(&mut self, retrying: bool) {
        self.wait_health("the store's retrying", |h| h["store_retrying"] == retrying);
    }

    /// Waits until the daemon has applied `n` reloaded configs.
    pub fn wait_reloads(&mut self, n: u64) {
        self.wait_health("reloads applied", |h| h["reloads"].as_u64() >= Some(n));
    }

    /// Whether an incident matching `filter` (SQL on `incidents`) is stored
    /// now, without waiting.
    pub fn has_incident(&self, filter: &str) -> bool {
        let db = Path::new(self.ready["db"].as_str().unwrap());
        stored(db, &incidents_matching(filter)) > 0
    }

    /// Whether a log line containing `text` has arrived, without waiting.
    pub fn try_seen(&mut self, text: &str) -> bool {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().any(|l| l.contains(text))
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the daemon's interval counters add up to `n` received messages.
    pub fn wait_received(&mut self, n: u64) {
        self.wait_counter("received", n);
    }

    /// Waits until the daemon has taken `n` messages, by its live counter
    /// (`/healthz`): for a test whose fault is that the store cannot be
    /// written, where `wait_received` (stored counters) would wait for good.
    pub fn wait_taken(&mut self, n: u64) {
        self.wait_health("messages taken", |h| h["received"].as_u64() >= Some(n));
    }

    /// Waits until the store says `sql` (one integer) is at least `n`: state,
    /// whatever the log says.
    fn wait_stored(&mut self, what: &str, sql: &str, n: i64) {
        let db = self.ready["db"].as_str().unwrap().to_owned();
        wait_stored(Path::new(&db), what, sql, n, || {
            self.seen.extend(self.lines.try_iter());
            format!("the daemon's log:\n{}", self.seen.join("\n"))
        });
    }

    /// Waits until a delivery attempt failed and is to be retried (its row says so).
    pub fn wait_retry_pending(&mut self) {
        self.wait_stored(
            "a failed attempt waiting for its retry",
            "SELECT count(*) FROM outbox WHERE state = 'queued' AND attempts > 0 AND last_error IS NOT NULL",
            1,
        );
    }

    /// Waits until `n` outbox rows are delivered.
    pub fn wait_delivered(&mut self, n: i64) {
        self.wait_stored(
            "rows delivered",
            "SELECT count(*) FROM outbox WHERE state = 'delivered'",
            n,
        );
    }

    /// Waits until a row was given up for good (`failed`).
    pub fn wait_given_up(&mut self) {
        self.wait_stored(
            "rows failed",
            "SELECT count(*) FROM outbox WHERE state = 'failed'",
            1,
        );
    }

    /// Waits until an incident matching `filter` (SQL on `incidents`) is
    /// stored: the engine decided, whatever its log line says.
    pub fn wait_incident(&mut self, filter: &str) {
        self.wait_stored(filter, &incidents_matching(filter), 1);
    }

    /// Waits until the daemon's stored interval counters (`ingest_stats`:
    /// received, traffic, …) add up to `n`: its state, not its log.
    pub fn wait_counter(&mut self, key: &str, n: u64) {
        let sql = format!("SELECT coalesce(sum({key}), 0) FROM ingest_stats");
        self.wait_stored(key, &sql, n as i64);
    }

    /// SIGTERM, a clean exit, and the whole log.
    pub fn stop(mut self) -> Vec<String> {
        self.signal("-TERM");
        let exit = self.child.wait().unwrap();
        // The reader thread ends with the child's stderr.
        let rest: Vec<String> = self.lines.iter().collect();
        self.seen.extend(rest);
        assert!(
            exit.success(),
            "serve exits cleanly on SIGTERM:\n{}",
            self.seen.join("\n")
        );
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Daemon {
    /// A failed test must not leave its daemon running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` in a tracing line.
pub fn field(line: &str, key: &str) -> u64 {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 2;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Sends datagrams paced so the kernel's receive buffer never overflows:
/// these tests are about accounting, not load.
pub fn send_udp(port: u16, datagrams: &[Vec<u8>]) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in datagrams {
        sock.send_to(d, ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// An accepted request: lower-cased headers and the body.
pub type Request = (Vec<(String, String)>, String);

/// Each webhook body's `status`, as JSON text ("\"firing\"").
pub fn webhook_statuses(got: &[Request]) -> Vec<String> {
    got.iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["status"].to_string())
        .collect()
}

/// A real HTTP/1.1 receiver on loopback for webhook tests: it answers the
/// scripted statuses in turn (then 200) and keeps the requests it accepted.
/// A scripted 0 answers nothing for 10 s, then closes.
pub struct Receiver {
    pub port: u16,
    pub accepted: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
    pub attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    pub fn start(port: u16, script: Vec<u16>) -> Receiver {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (acc, att) = (accepted.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Head, then as much body as Content-Length says.
                let (head_end, length) = loop {
                    let Ok(n) = s.read(&mut chunk) else {
                        break (0, 0);
                    };
                    if n == 0 {
                        break (0, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                if head_end == 0 {
                    continue;
                }
                while buf.len() < head_end + length {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let n = att.fetch_add(1, Ordering::SeqCst);
                let status = script.get(n).copied().unwrap_or(200);
                if status == 0 {
                    // A receiver that hangs: no answer for a while, then a close.
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(10));
                        drop(s);
                    });
                    continue;
                }
                if status == 200 {
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                        .collect();
                    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                    acc.lock().unwrap().push((headers, body));
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            port,
            accepted,
            attempts,
        }
    }

    /// Waits (30 s at most) until a body it accepted satisfies `wanted`; all of them.
    pub fn wait_body(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_bodies(what, |bodies| bodies.iter().any(&wanted))
    }

    /// Waits (30 s at most) until the JSON bodies it accepted satisfy `done`; them.
    pub fn wait_bodies(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let bodies: Vec<Value> = self
                .accepted
                .lock()
                .unwrap()
                .iter()
                .map(|(_, b)| serde_json::from_str(b).unwrap())
                .collect();
            if done(&bodies) {
                return bodies;
            }
            assert!(Instant::now() < deadline, "no {what} among {bodies:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` requests were accepted; returns their (headers, body).
    pub fn wait_accepted(&self, n: usize) -> Vec<Request> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.accepted.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} webhooks arrived",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the daemon to exit by itself (60 s at most); its status and whole log.
    pub fn wait_exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let rest: Vec<String> = self.lines.iter().collect();
                self.seen.extend(rest);
                return (status, std::mem::take(&mut self.seen));
            }
            self.seen.extend(self.lines.try_iter());
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(port, path, "localhost", "");
    (status, body)
}

/// A GET on loopback addressed to `host`, with more header lines (each
/// ending in CRLF): (status, the head lower-cased, the body).
pub fn http_request(port: u16, path: &str, host: &str, headers: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        browser::dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head, body)
}

/// Whether a webhook body fires for `backend/server`.
pub fn fires_for(b: &serde_json::Value, backend: &str, server: &str) -> bool {
    b["status"] == "firing"
        && b["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["backend"] == backend && i["server"] == server)
}

/// The stored events HAProxy logged, without those hapwatch adds of its own
/// (a reload it told from the workers' PIDs).
pub fn logged_events(events: Vec<Value>) -> Vec<Value> {
    events
        .into_iter()
        .filter(|e| e["template"] != "haproxy_reload")
        .collect()
}

/// A captured stream as if it were logged now: every header time and accept
/// date moved so the first line is at `start_ms` (UTC), the rest as captured.
/// (The `local` envelope and httplog/tcplog accept dates of the 2.6 captures.)
pub fn datagrams_from(stream: &str, start_ms: i64) -> Vec<Vec<u8>> {
    use jiff::civil::DateTime;
    let header = |text: &str| DateTime::strptime("%Y %b %e %H:%M:%S", format!("2026 {text}")).ok();
    let all = datagrams(stream);
    let first = all
        .iter()
        .find_map(|d| {
            let t = String::from_utf8_lossy(d);
            let at = t.find('>')? + 1;
            header(t.get(at..at + 15)?)
        })
        .expect("a header time");
    let first_ms = first
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond();
    let delta = jiff::SignedDuration::from_millis(start_ms - first_ms);
    let moved = |dt: DateTime| dt.checked_add(delta).unwrap();
    all.iter()
        .map(|d| {
            let mut t = String::from_utf8_lossy(d).into_owned();
            if let Some(at) = t.find('>').map(|i| i + 1) {
                if let Some(dt) = t.get(at..at + 15).and_then(header) {
                    t.replace_range(
                        at..at + 15,
                        &moved(dt).strftime("%b %e %H:%M:%S").to_string(),
                    );
                }
            }
            // [23/Nov/2026:01:23:33.398]
            if let Some(open) = t.find("/2026:").and_then(|i| t[..i].rfind('[')) {
                let span = open + 1..open + 21;
                if let Some(dt) = t
                    .get(span.clone())
                    .and_then(|s| DateTime::strptime("%d/%b/%Y:%H:%M:%S", s).ok())
                {
                    t.replace_range(span, &moved(dt).strftime("%d/%b/%Y:%H:%M:%S").to_string());
                }
            }
            t.into_bytes()
        })
        .collect()
}
