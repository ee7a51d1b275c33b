//! Faults the daemon must ride out without losing what it accepted.

use crate::util::*;

/// A config that stores in `db` and listens on UDP (port 0), reading the fixtures' log-formats.
fn store_config(dir: &std::path::Path, db: &std::path::Path) -> std::path::PathBuf {
    ConfigBuilder::new(dir)
        .db(db)
        .fixture_formats()
        .http()
        .udp()
        .write()
}

/// Every event and every traffic line of the `default` stream is in the store
/// at `db`, and the daemon's log never admitted losing a batch.
fn assert_default_stream_stored(db: &std::path::Path, log: &[String]) {
    assert!(
        !log.iter().any(|l| l.contains("this batch is lost")),
        "{log:#?}"
    );
    let labels = expected("default");
    let db = db.to_str().unwrap();
    let events = logged_events(json_lines(&[
        "events", "--db", db, "--since", "1h", "--json",
    ]));
    let want_events = labels
        .iter()
        .filter(|l| l["kind"] != "http" && l["kind"] != "tcp")
        .count();
    assert_eq!(events.len(), want_events);
    let rows = json_lines(&[
        "stats",
        "--db",
        db,
        "--by",
        "host",
        "--since",
        "2026-11-22T00:00:00Z",
        "--json",
    ]);
    let traffic = labels
        .iter()
        .filter(|l| l["kind"] == "http" || l["kind"] == "tcp")
        .count() as u64;
    assert_eq!(
        rows.iter()
            .map(|r| r["requests"].as_u64().unwrap())
            .sum::<u64>(),
        traffic
    );
}

#[test]
fn a_database_locked_for_seconds_delays_writes_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let mut daemon = Daemon::start(&store_config(dir.path(), &db), 1);
    let udp = daemon.port(0);

    // Another process takes the write lock and keeps it past the writer's 5 s busy timeout.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let stream = datagrams("default");
    send_udp(udp, &stream);
    daemon.wait_taken(stream.len() as u64);
    daemon.wait_store_retrying(true);
    holder.execute_batch("COMMIT").unwrap();
    daemon.wait_store_retrying(false);
    let log = daemon.stop();
    assert_default_stream_stored(&db, &log);
}

/// A small tmpfs of our own, so that filling it fills nobody else's disk.
/// Unmounted (lazily, in case a daemon still holds it) when dropped.
struct Volume(std::path::PathBuf);

impl Volume {
    /// Mounts one, or explains why not: it needs root (CAP_SYS_ADMIN), which
    /// CI has. Under HAPWATCH_E2E=1 a failure to mount fails the test.
    fn mount(at: std::path::PathBuf, size: &str) -> Option<Volume> {
        std::fs::create_dir_all(&at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Volume(at)),
            other => {
                cannot_run(&format!("a tmpfs cannot be mounted: {other:?}"));
                None
            }
        }
    }

    /// Writes a file until the volume refuses with ENOSPC.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => return path,
                Err(e) => panic!("filling the volume: {e}"),
            }
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_holds_writes_with_a_clear_error_and_loses_nothing_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = Volume::mount(dir.path().join("vol"), "8m") else {
        return;
    };
    let db = volume.0.join("h.db");
    let mut daemon = Daemon::start(&store_config(dir.path(), &db), 1);
    let udp = daemon.port(0);

    let filler = volume.fill();
    let stream = datagrams("default");
    send_udp(udp, &stream);
    daemon.wait_taken(stream.len() as u64);
    daemon.wait_store_retrying(true);
    // Still alive and taking messages while the disk is full (one that stores nothing).
    send_udp(udp, &[b"not a haproxy line".to_vec()]);
    daemon.wait_taken(stream.len() as u64 + 1);

    std::fs::remove_file(filler).unwrap();
    daemon.wait_store_retrying(false);
    let log = daemon.stop();
    // SQLite's own words for ENOSPC, and their end.
    let said = |text: &str| log.iter().any(|l| l.contains(text));
    assert!(said("database or disk is full"), "{log:#?}");
    assert!(
        said("database writes resumed; nothing was lost"),
        "{log:#?}"
    );
    assert_default_stream_stored(&db, &log);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn sigkill_mid_stream_leaves_a_sound_database_that_the_next_run_continues() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let cfg = ConfigBuilder::new(dir.path()).db(&db).udp().write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let stream = datagrams("default");
    send_udp(udp, &stream);
    daemon.wait_received(stream.len() as u64);
    // Killed once some events are committed, while windows are still open.
    let db_arg = db.to_str().unwrap();
    let committed = wait_json_lines(
        &["events", "--db", db_arg, "--since", "1h", "--json"],
        &daemon,
    )
    .len() as i64;
    daemon.kill();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(
        events >= committed,
        "committed events survive: {events} < {committed}"
    );
    let open: i64 = conn
        .query_row(
            "SELECT count(*) FROM incidents WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);

    // The next run opens the same file, carries the open incidents on, and stops cleanly.
    // Restored before the daemon says it is ready.
    let daemon = Daemon::start(&cfg, 1);
    let log = daemon.stop();
    assert_eq!(
        open > 0,
        log.iter()
            .any(|l| l.contains("incidents still open from the last run")),
        "{log:#?}"
    );
}

#[test]
fn a_burst_beyond_capacity_is_dropped_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny socket buffer and queue, so that a burst must overflow both.
    let (udp, mut daemon) = burst_daemon(dir.path(), &[("queue", "64")], "recv_buffer = 4096\n");
    let lines = datagrams("default");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    for i in 0..200_000 {
        if sock
            .send_to(&lines[i % lines.len()], ("127.0.0.1", udp))
            .is_ok()
        {
            sent += 1;
        }
    }
    sent += still_taking_messages(&mut daemon, &sock, udp);
    let (socket_drops, queue_drops) = accounted(&daemon.stop(), sent);
    assert!(
        socket_drops > 0 && queue_drops > 0,
        "the burst overflowed both"
    );
}

/// A daemon on a UDP port, with more `[daemon]` keys (key, TOML value) and `[[listen]]` keys.
fn burst_daemon(
    dir: &std::path::Path,
    daemon_keys: &[(&str, &str)],
    listen_keys: &str,
) -> (u16, Daemon) {
    let cfg = daemon_keys
        .iter()
        .fold(
            ConfigBuilder::new(dir).db(&dir.join("b.db")),
            |b, (k, v)| b.set("daemon", k, v),
        )
        .listen("udp://127.0.0.1:0", listen_keys)
        .write();
    let daemon = Daemon::start(&cfg, 1);
    (daemon.port(0), daemon)
}

/// Every datagram sent is accounted for in the daemon's final totals: taken
/// in, or dropped by the kernel and reported; and every one taken in was
/// parsed, refused, or dropped from the full queue and reported.
/// Returns (socket drops, queue drops).
fn accounted(log: &[String], sent: u64) -> (u64, u64) {
    let totals = log.iter().find(|l| l.contains(" totals ")).unwrap();
    eprintln!("sent={sent} {totals}");
    let (received, socket_drops, queue_drops) = (
        field(totals, "received"),
        field(totals, "socket_drops"),
        field(totals, "queue_drops"),
    );
    assert_eq!(received + socket_drops, sent, "{totals}");
    assert_eq!(
        field(totals, "parsed") + field(totals, "parse_errors") + queue_drops,
        received,
        "{totals}"
    );
    (socket_drops, queue_drops)
}

#[test]
fn a_million_datagrams_at_once_are_taken_or_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped defaults: the burst meets the buffers a real install has.
    let (udp, mut daemon) = burst_daemon(dir.path(), &[], "");
    const TOTAL: usize = 1_000_000;
    const SENDERS: usize = 2;
    let lines = std::sync::Arc::new(datagrams("default"));
    let started = std::time::Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let lines = lines.clone();
            std::thread::spawn(move || burst(udp, &lines, TOTAL / SENDERS, t))
        })
        .collect();
    let sent: u64 = senders.into_iter().map(|h| h.join().unwrap()).sum();
    let took = started.elapsed();
    eprintln!(
        "sent {sent} datagrams in {took:?} ({:.0}/s)",
        sent as f64 / took.as_secs_f64()
    );
    let marker_from = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = sent + still_taking_messages(&mut daemon, &marker_from, udp);
    accounted(&daemon.stop(), sent);
}

/// Still alive and still taking messages after a burst: a marker, sent until
/// it is seen, also shows the socket was read empty (FIFO) before the stop.
/// Returns how many markers were sent.
fn still_taking_messages(daemon: &mut Daemon, sock: &std::net::UdpSocket, udp: u16) -> u64 {
    let marker = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_m/marker is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut sent = 0;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon stopped taking messages"
        );
        sock.send_to(marker, ("127.0.0.1", udp)).unwrap();
        sent += 1;
        std::thread::sleep(std::time::Duration::from_millis(200));
        if daemon.has_incident("server = 'marker'") {
            return sent;
        }
    }
}

/// Sends `count` datagrams to `port` as fast as this machine can: sendmmsg,
/// 64 per call, cycling through `lines` from `offset`. Returns how many the
/// kernel took (on loopback it takes them all, dropping at the receiver).
#[allow(unsafe_code)] // sendmmsg has no safe wrapper in std
fn burst(port: u16, lines: &[Vec<u8>], count: usize, offset: usize) -> u64 {
    use std::os::fd::AsRawFd as _;
    const BATCH: usize = 64;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    let mut sent = 0usize;
    while sent < count {
        let n = BATCH.min(count - sent);
        let mut iov: Vec<libc::iovec> = (0..n)
            .map(|i| {
                let line = &lines[(offset + sent + i) % lines.len()];
                libc::iovec {
                    iov_base: line.as_ptr() as *mut libc::c_void,
                    iov_len: line.len(),
                }
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: an all-zero mmsghdr is valid: no name, no control data.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: the headers point into `iov`, which points into `lines`;
        // both outlive the call.
        let done = unsafe { libc::sendmmsg(sock.as_raw_fd(), headers.as_mut_ptr(), n as u32, 0) };
        assert!(done > 0, "sendmmsg: {}", std::io::Error::last_os_error());
        sent += done as usize;
    }
    sent as u64
}

#[test]
fn a_second_daemon_on_the_same_store_refuses_to_start_and_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let sock = dir.path().join("log.sock");
    let cfg = ConfigBuilder::new(dir.path())
        .db(&db)
        .listen(&format!("unix://{}", sock.display()), "")
        .write();
    let mut first = Daemon::start(&cfg, 1);
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&sock).unwrap());
    let before = inode();
    let (_, err) = hapwatch_fails(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "is in use by another hapwatch (pid {})",
            first.pid()
        )),
        "{err}"
    );
    // It stopped before binding: the first one's socket file is still its own.
    assert_eq!(inode(), before, "the socket file was replaced");
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    client
        .send_to(b"<134>Nov 23 01:23:33 haproxy[1]: still here", &sock)
        .unwrap();
    first.wait_received(1);
    first.stop();
}

#[test]
fn a_store_deleted_under_the_daemon_stops_it_with_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let daemon = Daemon::start(&store_config(dir.path(), &db), 1);
    std::fs::remove_file(&db).unwrap();
    let (status, log) = daemon.wait_exit();
    assert!(!status.success(), "{log:?}");
    let said = log
        .iter()
        .find(|l| l.contains("the store is unusable"))
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert!(
        said.contains(db.to_str().unwrap()) && said.contains("deleted"),
        "{said}"
    );
}

#[test]
fn a_read_only_store_is_refused_at_start_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = Volume::mount(dir.path().join("vol"), "8m") else {
        return;
    };
    let db = volume.0.join("h.db");
    let cfg = store_config(dir.path(), &db);
    Daemon::start(&cfg, 1).stop();
    // Root ignores file modes; a read-only filesystem it cannot write.
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&volume.0)
        .status()
        .unwrap();
    assert!(remount.success());
    let (_, err) = hapwatch_fails(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn a_full_disk_still_delivers_what_is_in_the_outbox_and_lets_sigterm_end_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = Volume::mount(dir.path().join("vol"), "8m") else {
        return;
    };
    let hook = free_port();
    let db = volume.0.join("h.db");
    let cfg = ConfigBuilder::new(dir.path())
        .db(&db)
        .set("notify", "group_wait", "\"0s\"")
        .set("notify", "retry_min", "\"100ms\"")
        .set("notify", "retry_max", "\"200ms\"")
        .http()
        .udp()
        .webhook("ops", hook, "")
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    // Nothing listens yet: the notification is queued and retried.
    send_udp(udp, &[b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.".to_vec()]);
    daemon.wait_retry_pending();
    let _filler = volume.fill();
    daemon.wait_store_retrying(true);
    // The disk is still full, and the receiver is up: it gets the notification.
    let receiver = Receiver::start(hook, vec![]);
    receiver.wait_accepted(1);
    // SIGTERM ends it although the store still refuses what it holds, saying so.
    let log = daemon.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("shutting down while the database still refuses writes")),
        "{log:#?}"
    );
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
}

#[test]
fn a_corrupt_store_stops_the_daemon_instead_of_losing_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let cfg = store_config(dir.path(), &db);
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &datagrams("default"));
    daemon.stop();
    // Every page but the first (the schema) overwritten.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());
    bytes[4096..].fill(0xA5);
    std::fs::write(&db, &bytes).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hapwatch"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        send_udp(udp, &datagrams("default")[..20]);
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "it went on as if healthy"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut err = String::new();
    use std::io::Read as _;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("malformed") || err.contains("not a database") || err.contains("corrupt"),
        "{err}"
    );
}
