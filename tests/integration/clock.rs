//! System clock steps (NTP, an operator's `date -s`) under a running daemon.
//! libfaketime (Debian's package) moves the daemon's wall clock while its
//! monotonic clock runs on, as a real step does.

use crate::util::*;
use serde_json::Value;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

/// Sets the daemon's clock offset from the real time ("+0", "-3h", …).
fn set_offset(control: &std::path::Path, offset: &str) {
    // Written whole and renamed, so the daemon never reads half an offset.
    let tmp = control.with_extension("tmp");
    std::fs::write(&tmp, offset).unwrap();
    std::fs::rename(&tmp, control).unwrap();
}

/// A daemon whose wall clock follows the offset in the returned control file
/// (a step moves the wall clock only, as NTP or `date -s` do).
fn faked_clock_daemon(
    dir: &std::path::Path,
    cfg: &std::path::Path,
) -> (Daemon, std::path::PathBuf) {
    let control = dir.join("faketime");
    set_offset(&control, "+0");
    let daemon = Daemon::start_with_env(
        cfg,
        1,
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", control.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    (daemon, control)
}

#[test]
fn clock_steps_neither_stall_notifications_nor_raise_false_silence() {
    if !installed(&[LIBFAKETIME]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Two refusals, then accepted: retries are pending across a step.
    let receiver = Receiver::start(0, vec![503, 503]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("incidents", "silence_after", "\"5m\"")
        .set("notify", "group_wait", "\"2s\"")
        .set("notify", "retry_min", "\"2s\"")
        .set("notify", "retry_max", "\"4s\"")
        .http()
        .udp()
        .webhook("ops", receiver.port, "")
        .write();
    let (mut daemon, control) = faked_clock_daemon(dir.path(), &cfg);
    let udp = daemon.port(0);

    // A DOWN waits 2 s in its group; the clock steps back 3 h meanwhile.
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_received(1);
    set_offset(&control, "-3h");
    daemon.wait_health("clock steps", |h| h["clock_steps"].as_u64() >= Some(1));
    // Its first delivery fails; with its retry pending, the clock steps back again.
    daemon.wait_retry_pending();
    set_offset(&control, "-6h");
    daemon.wait_health("clock steps", |h| h["clock_steps"].as_u64() >= Some(2));
    // Without the step handled, the group or the retry would wait 3 h.
    let firing = receiver.wait_accepted(1);

    // Forward 6 h: the host's last message is not 6 h old.
    set_offset(&control, "+0");
    daemon.wait_health("clock steps", |h| h["clock_steps"].as_u64() >= Some(3));
    send_udp(udp, &[UP.to_vec()]);
    let got = receiver.wait_accepted(2);
    let log = daemon.stop();

    let bodies: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = bodies
        .iter()
        .map(|b| {
            (
                b["incident"]["kind"].as_str().unwrap(),
                b["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("server_down", "firing"), ("server_down", "resolved")],
        "and no silence incident"
    );
    assert_eq!(firing.len(), 1);
    let steps: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("system clock stepped"))
        .collect();
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert!(
        steps[0].contains("direction=back") && steps[0].contains("step=3h"),
        "{steps:#?}"
    );
    assert!(steps[2].contains("direction=forward") && steps[2].contains("step=6h"));
}

/// In this process, with the daemon's wall clock injected and stepped: no
/// libfaketime needed.
#[test]
fn a_step_forward_past_expire_after_does_not_expire_a_fresh_notification() {
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let daemon = InProcess::start(
        &ConfigBuilder::new(dir.path())
            .set("notify", "group_wait", "\"0s\"")
            .set("notify", "retry_min", "\"500ms\"")
            .set("notify", "retry_max", "\"1s\"")
            .set("notify", "expire_after", "\"1h\"")
            .udp()
            .webhook("ops", hook, "")
            .text(),
    );
    // Nobody listens yet: it is retried; then the wall clock jumps 25 h ahead.
    send_udp(daemon.udp_port(), &[DOWN.to_vec()]);
    daemon.wait_stored(
        "a failed attempt waiting for its retry",
        "SELECT count(*) FROM outbox WHERE state = 'queued' AND attempts > 0",
        1,
    );
    daemon.step_clock(25 * 3_600_000);
    let receiver = Receiver::start(hook, vec![]);
    let got = receiver.wait_accepted(1);
    let db = daemon.db.clone();
    let end = daemon.stop();
    assert_eq!(end.notifications_failed, 0, "nothing expired");
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["status"], "firing");
    let states: Vec<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT state FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(states, ["delivered"], "delivered, not expired");
}
