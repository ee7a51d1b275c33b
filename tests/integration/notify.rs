//! Webhook delivery from a running daemon to a real HTTP receiver: signed,
//! in order, retried until accepted, and kept across a SIGKILL.

use crate::util::*;
use serde_json::Value;

const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

/// A daemon on UDP (port 0) with one signed webhook to `hook`, retrying fast.
fn config(dir: &std::path::Path, hook: u16) -> ConfigBuilder {
    ConfigBuilder::new(dir)
        .set("notify", "retry_min", "\"50ms\"")
        .set("notify", "retry_max", "\"200ms\"")
        .udp()
        .webhook("ops", hook, "secret = \"s3cret\"\n")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[test]
fn a_down_and_up_become_a_signed_firing_then_resolved_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let daemon = Daemon::start(&config(dir.path(), receiver.port).write(), 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    receiver.wait_accepted(1);
    send_udp(udp, &[UP.to_vec()]);
    let got = receiver.wait_accepted(2);
    daemon.stop();

    let bodies: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(bodies[1]["status"], "resolved");
    assert_eq!(bodies[0]["incident"]["id"], bodies[1]["incident"]["id"]);
    assert_eq!(bodies[0]["incident"]["kind"], "server_down");
    assert_eq!(bodies[0]["incident"]["detail"]["reason"], "Layer4 timeout");
    assert_eq!(bodies[1]["incident"]["resolution"], "UP again");
    assert!(bodies[0]["title"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] DOWN be_x/s1 on 127.0.0.1 (Layer4 timeout)"));
    let id = bodies[0]["incident"]["id"].to_string();
    let db = dir.path().join("h.db");
    let one = json_lines(&["incident", "--db", db.to_str().unwrap(), &id, "--json"]);
    let deliveries = one[0]["deliveries"].as_array().unwrap();
    let states: Vec<(&str, bool)> = deliveries
        .iter()
        .map(|d| (d["status"].as_str().unwrap(), d["delivered_at"].is_string()))
        .collect();
    assert_eq!(states, [("firing", true), ("resolved", true)]);

    for (headers, body) in &got {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let want: String = ring::hmac::sign(&key, body.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            header(headers, "x-hapwatch-signature"),
            format!("sha256={want}")
        );
        assert_eq!(header(headers, "content-type"), "application/json");
    }
}

#[test]
fn a_receiver_answering_500_gets_the_notification_once_it_answers_200() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![500, 503]);
    let mut daemon = Daemon::start(&config(dir.path(), receiver.port).write(), 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    receiver.wait_accepted(1);
    daemon.wait_delivered(1);
    let log = daemon.stop();
    assert_eq!(
        receiver.attempts.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "two failures, one success"
    );
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1, "delivered once");
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("notification failed; will retry"))
            .count(),
        2
    );
}

#[test]
fn notifications_pending_at_a_sigkill_are_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let cfg = config(dir.path(), hook).write();
    // Nothing listens on the webhook's port yet.
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_retry_pending();
    daemon.kill();

    let receiver = Receiver::start(hook, vec![]);
    let daemon = Daemon::start(&cfg, 1);
    let got = receiver.wait_accepted(1);
    daemon.stop();
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["incident"]["summary"], "server be_x/s1 is DOWN");
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
}

#[test]
fn a_5xx_burst_is_one_rule_incident_fired_and_resolved_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let cfg = config(dir.path(), receiver.port)
        .set("parse", "timezone", "\"UTC\"")
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);

    // 40 × 503 among 60 requests: 67 % 5xx.
    let mut burst: Vec<Vec<u8>> = (0..40).map(|_| traffic_now(503)).collect();
    burst.extend((0..20).map(|_| traffic_now(200)));
    send_udp(udp, &burst);
    let got = receiver.wait_accepted(1);
    // Healthy traffic brings the share under 2.5 %: 40 of 2,060.
    send_udp(
        udp,
        &(0..2000).map(|_| traffic_now(200)).collect::<Vec<_>>(),
    );
    let got2 = receiver.wait_accepted(2);
    daemon.wait_incident("backend = 'be_api' AND resolved_at IS NOT NULL");
    let log = daemon.stop();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("ALERT backend be_api: 5xx share"))
            .count(),
        1,
        "fired once"
    );

    let firing: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["incident"]["kind"], "rule");
    assert_eq!(firing["incident"]["detail"]["rule"], "5xx_share");
    // Evidence: the last window's traffic as the incident opened.
    let window = &firing["incident"]["detail"]["last_window"];
    assert!(window["requests"].as_u64().unwrap() >= 20, "{window}");
    assert!(window["5xx_share"].as_f64().unwrap() > 0.05, "{window}");
    assert!(firing["title"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] ERRORS be_api on 127.0.0.1"));
    let resolved: Value = serde_json::from_str(&got2[1].1).unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["incident"]["id"], firing["incident"]["id"]);

    let db = dir.path().join("h.db");
    let id = firing["incident"]["id"].to_string();
    let one = json_lines(&["incident", "--db", db.to_str().unwrap(), &id, "--json"]);
    let evidence = one[0]["evidence"].as_array().unwrap();
    let s5xx: u64 = evidence.iter().map(|e| e["s5xx"].as_u64().unwrap()).sum();
    assert_eq!(s5xx, 40, "the burst is in the evidence: {evidence:?}");
}

#[test]
fn silences_hold_notifications_and_test_alert_and_outbox_report() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let cfg = config(dir.path(), receiver.port).http().write();
    let cfg_s = cfg.to_str().unwrap();

    // test-alert reaches the channel directly.
    let out = hapwatch(&["test-alert", "--config", cfg_s]);
    assert_eq!(out.trim(), "ops: sent");
    let test: Value = serde_json::from_str(&receiver.wait_accepted(1)[0].1).unwrap();
    assert!(test["title"].as_str().unwrap().contains("be_test/test1"));

    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    let added = hapwatch(&[
        "silence",
        "add",
        "--config",
        cfg_s,
        "--backend",
        "be_x",
        "--for",
        "1h",
        "--reason",
        "deploy",
    ]);
    assert!(added.starts_with("silence #1 until"), "{added}");
    let list = json_lines(&["silence", "list", "--config", cfg_s, "--json"]);
    assert_eq!((list.len(), list[0]["backend"].as_str()), (1, Some("be_x")));
    // The daemon reads silences every second.
    daemon.wait_health("the silence read", |h| h["silences_active"] == 1);
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_incident("backend = 'be_x' AND server = 's1'");
    hapwatch(&["silence", "remove", "--config", cfg_s, "1"]);
    // Another backend is not silenced.
    let other = String::from_utf8(DOWN.to_vec())
        .unwrap()
        .replace("be_x/s1", "be_y/s9");
    send_udp(udp, &[other.into_bytes()]);
    let got = receiver.wait_accepted(2);
    // be_x's recovery: its DOWN was never sent, so neither is its resolve.
    send_udp(udp, &[UP.to_vec()]);
    daemon.wait_incident("server = 's1' AND kind = 'server_down' AND resolved_at IS NOT NULL");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    daemon.stop();
    assert_eq!(
        receiver.accepted.lock().unwrap().len(),
        2,
        "test alert + be_y only"
    );
    let body: Value = serde_json::from_str(&got[1].1).unwrap();
    assert_eq!(body["incident"]["backend"], "be_y");

    let outbox = json_lines(&["outbox", "--config", cfg_s, "--all", "--json"]);
    let mut states: Vec<(&str, &str, i64)> = outbox
        .iter()
        .map(|r| {
            (
                r["state"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    states.sort();
    // be_x's firing is recorded as silenced and its resolve as not sent.
    assert_eq!(
        states,
        [
            ("cancelled", "resolved", 0),
            ("delivered", "firing", 1),
            ("silenced", "firing", 0)
        ],
        "{outbox:?}"
    );
}

#[test]
fn a_flapping_server_is_one_flapping_notification_and_one_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let cfg = config(dir.path(), receiver.port)
        .set("incidents", "flap_quiet", "\"3s\"")
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    // 10 changes, DOWN and UP in turn, ending UP.
    for i in 0..10 {
        send_udp(
            udp,
            &[if i % 2 == 0 {
                DOWN.to_vec()
            } else {
                UP.to_vec()
            }],
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let got = receiver.wait_accepted(2);
    daemon.wait_incident("server = 's1' AND kind = 'flapping' AND resolved_at IS NOT NULL");
    // Nothing else follows once it is stable (the group wait is 2 s).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    daemon.stop();
    assert_eq!(receiver.accepted.lock().unwrap().len(), 2, "not 10");
    let bodies: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(
        (
            bodies[0]["status"].as_str(),
            bodies[0]["incident"]["kind"].as_str()
        ),
        (Some("firing"), Some("flapping"))
    );
    assert_eq!(
        (
            bodies[1]["status"].as_str(),
            bodies[1]["incident"]["kind"].as_str()
        ),
        (Some("resolved"), Some("flapping"))
    );
    assert!(bodies[0]["title"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] FLAPPING be_x/s1"));
}

#[test]
fn a_hanging_receiver_is_timed_out_and_retried_without_holding_up_another() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Receiver::start(0, vec![0]);
    let fast = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "retry_min", "\"50ms\"")
        .set("notify", "retry_max", "\"200ms\"")
        .udp()
        .webhook("ops", slow.port, "secret = \"s3cret\"\ntimeout = \"1s\"\n")
        .webhook("fast", fast.port, "")
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    // The other channel is not held up by the hang.
    fast.wait_accepted(1);
    assert_eq!(slow.accepted.lock().unwrap().len(), 0);
    daemon.wait_retry_pending();
    let got = slow.wait_accepted(1);
    // Both channels' rows delivered: `fast` at once, `ops` on its second attempt.
    daemon.wait_delivered(2);
    daemon.stop();
    assert_eq!(got.len(), 1);
    assert_eq!(
        slow.attempts.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one hung attempt, one delivered"
    );
}

#[test]
fn a_refusal_or_a_redirect_fails_the_row_at_once_instead_of_retrying_for_a_day() {
    for status in [400, 302] {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start(0, vec![status]);
        let cfg = config(dir.path(), receiver.port).write();
        let mut daemon = Daemon::start(&cfg, 1);
        let udp = daemon.port(0);
        send_udp(udp, &[DOWN.to_vec()]);
        daemon.wait_given_up();
        let rows = wait_outbox_state(&["--config", cfg.to_str().unwrap()], "failed", &daemon);
        daemon.stop();
        let failed: Vec<&Value> = rows.iter().filter(|r| r["state"] == "failed").collect();
        assert_eq!(failed.len(), 1, "{rows:?}");
        assert_eq!(failed[0]["attempts"], 1);
        let error = failed[0]["last_error"].as_str().unwrap();
        assert!(error.starts_with(&format!("HTTP {status}")), "{error}");
        if status == 302 {
            assert!(error.contains("redirect"), "{error}");
        }
        assert_eq!(
            receiver.attempts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one attempt, no retry"
        );
    }
}

#[test]
fn a_channel_that_keeps_failing_is_an_incident_on_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Receiver::start(0, vec![400]);
    let ops = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"0s\"")
        .set("notify", "retry_min", "\"50ms\"")
        .udp()
        .webhook("bad", bad.port, "")
        .webhook("ops", ops.port, "")
        .write();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    // The DOWN is refused by `bad` (400, permanent): `ops` hears that too.
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_incident("kind = 'channel'");
    ops.wait_accepted(2);
    // `bad` accepts again with the resolve: the channel incident resolves.
    send_udp(udp, &[UP.to_vec()]);
    let got = ops.wait_accepted(4);
    daemon.stop();
    let seen: Vec<String> = got
        .iter()
        .map(|(_, b)| {
            let v: Value = serde_json::from_str(b).unwrap();
            format!(
                "{} {}",
                v["status"].as_str().unwrap(),
                v["incident"]["kind"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "firing channel",
        "resolved channel",
        "firing server_down",
        "resolved server_down",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} in {seen:?}");
    }
    let channel: Value = got
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap())
        .find(|v| v["incident"]["kind"] == "channel")
        .unwrap();
    let title = channel["title"].as_str().unwrap();
    assert!(
        title.contains("CHANNEL FAILING") && title.contains("bad") && title.contains("HTTP 400"),
        "{title}"
    );
    // `bad` itself is never told about its own failure.
    assert!(bad
        .accepted
        .lock()
        .unwrap()
        .iter()
        .all(|(_, b)| !b.contains("\"kind\":\"channel\"")));
}

#[test]
fn a_silence_for_a_backend_the_logs_never_named_is_refused_and_backend_slash_server_works() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let cfg = config(dir.path(), receiver.port).write();
    let cfg_s = cfg.to_str().unwrap();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    receiver.wait_accepted(1);
    let (_, err) = hapwatch_fails(&[
        "silence",
        "add",
        "--config",
        cfg_s,
        "--backend",
        "be_z",
        "--for",
        "1h",
        "--reason",
        "typo",
    ]);
    assert!(
        err.contains("did you mean \"be_x\"") && err.contains("--force"),
        "{err}"
    );
    hapwatch(&[
        "silence", "add", "--config", cfg_s, "--server", "be_x/s1", "--for", "1h", "--reason",
        "deploy",
    ]);
    let list = json_lines(&["silence", "list", "--config", cfg_s, "--json"]);
    daemon.stop();
    assert_eq!(
        (list[0]["backend"].as_str(), list[0]["server"].as_str()),
        (Some("be_x"), Some("s1"))
    );
}

#[test]
fn a_failed_row_is_sent_again_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![400]);
    let cfg = config(dir.path(), receiver.port).write();
    let cfg_s = cfg.to_str().unwrap();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    let rows = wait_outbox_state(&["--config", cfg_s], "failed", &daemon);
    let row = rows.iter().find(|r| r["state"] == "failed").unwrap()["id"].clone();
    let id = row.to_string();
    let said = hapwatch(&["outbox", "--config", cfg_s, "--retry", &format!("#{id}")]);
    assert!(said.contains("will be sent again"), "{said}");
    let got = receiver.wait_accepted(1);
    let rows = wait_outbox_state(&["--config", cfg_s, "--all"], "delivered", &daemon);
    daemon.stop();
    assert_eq!(got.len(), 1);
    assert!(rows
        .iter()
        .any(|r| r["id"] == row && r["state"] == "delivered"));
}
