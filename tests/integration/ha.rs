//! Two nodes on one PostgreSQL: a real HAProxy logs to both, every event is
//! stored once, every request counted once, every transition paged once;
//! and when the deciding node is SIGKILLed inside the group wait, the other
//! takes the lease and pages what was owed, once. Groups receiving different
//! load balancers (shards) decide side by side over one history.

use crate::util::haproxy::{start_haproxy, HAPROXY};
use crate::util::*;

use crate::postgres::{DOWN, UP};

/// A node named `name` on the database at `url`, paging `receiver`.
fn node(dir: &std::path::Path, name: &str, url: &str, receiver: u16, group_wait: &str) -> Daemon {
    node_in("default", dir, name, url, receiver, group_wait)
}

/// A node of `group` (`[cluster] group`).
fn node_in(
    group: &str,
    dir: &std::path::Path,
    name: &str,
    url: &str,
    receiver: u16,
    group_wait: &str,
) -> Daemon {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = ConfigBuilder::new(&dir)
        .set("storage", "postgres", &format!("{url:?}"))
        .set("cluster", "node", &format!("{name:?}"))
        .set("cluster", "group", &format!("{group:?}"))
        .set("cluster", "lease", "\"2s\"")
        .set("notify", "retry_min", "\"50ms\"")
        .set("notify", "group_wait", &format!("{group_wait:?}"))
        .set("parse", "timezone", "\"UTC\"")
        .udp()
        .http()
        .webhook("ops", receiver, "")
        .write();
    Daemon::start(&config, 1)
}

/// Waits until `daemon` says it decides, or that it stands by while another
/// node holds the lease (a node starts standing by: that alone says nothing).
fn wait_deciding(daemon: &mut Daemon, deciding: bool) {
    daemon.wait_health("the lease", |h| {
        let c = &h["cluster"];
        let leader = c["leader"].as_str().unwrap_or_default();
        c["deciding"] == deciding && (deciding || !leader.is_empty())
    });
}

#[test]
fn a_real_haproxy_logging_to_two_nodes_is_stored_counted_and_paged_once() {
    let Some(url) = postgres::database() else {
        return;
    };
    if !installed(&[HAPROXY]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let mut a = node(dir.path(), "a", &url, receiver.port, "1s");
    wait_deciding(&mut a, true);
    let mut b = node(dir.path(), "b", &url, receiver.port, "1s");
    wait_deciding(&mut b, false);
    let (front, origin, dead) = (free_port(), free_port(), free_port());
    // Both nodes get every line: HAProxy's two `log` lines.
    let mut haproxy = start_haproxy(
        dir.path(),
        &format!(
            "    log 127.0.0.1:{} local0\n    log 127.0.0.1:{} local1\n",
            a.port(0),
            b.port(0)
        ),
        "    option httplog\n    option log-health-checks\n",
        &format!("frontend fe_ha\n    bind 127.0.0.1:{front}\n    default_backend be_ha\nbackend be_ha\n    server up1 127.0.0.1:{origin} check inter 100ms\n    server dead1 127.0.0.1:{dead} check inter 100ms fall 2\nfrontend fe_origin\n    bind 127.0.0.1:{origin}\n    http-request return status 200 content-type text/plain string ok\n"),
    );
    // The DOWN is paged (by whichever node decides).
    let got = receiver.wait_accepted(1);
    assert_eq!(webhook_statuses(&got), ["\"firing\""]);
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", front)).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /ha HTTP/1.1\r\nHost: ha\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
    // Each node received the 20 requests of fe_ha and fe_origin's 20.
    postgres::wait_count(
        &url,
        "SELECT coalesce(sum(traffic), 0)::bigint FROM ingest_stats",
        80,
    );
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    // Stopping closes every window: both nodes write theirs.
    a.stop();
    b.stop();

    let got = receiver.accepted.lock().unwrap().clone();
    let bodies: std::collections::HashSet<&String> = got.iter().map(|(_, b)| b).collect();
    assert_eq!(bodies.len(), got.len(), "a notification was sent twice");
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM outbox WHERE state = 'delivered'"
        ),
        got.len() as i64
    );
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM incidents WHERE server = 'dead1' AND kind = 'server_down'"
        ),
        1
    );
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM events WHERE server = 'dead1' AND kind = 'state_change'"
        ),
        1,
        "the DOWN both nodes received is stored once"
    );
    // Each node parsed every event; each is stored once.
    let parsed = postgres::count(&url, "SELECT sum(events)::bigint FROM ingest_stats");
    let stored = postgres::count(&url, "SELECT count(*) FROM events");
    assert!(stored > 0);
    assert_eq!(
        parsed,
        2 * stored,
        "{parsed} parsed by two nodes, {stored} stored"
    );
    assert_eq!(
        postgres::count(
            &url,
            "SELECT coalesce(sum(requests), 0)::bigint FROM windows WHERE backend = 'be_ha'"
        ),
        20,
        "the requests both nodes received are counted once"
    );
    assert!(postgres::count(&url, "SELECT count(*) FROM window_claims") > 0);
}

#[test]
fn a_sigkill_of_the_deciding_node_inside_the_group_wait_is_paged_once_by_the_other() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    // Long enough that the kill surely falls inside it.
    let wait = "6s";
    let mut a = node(dir.path(), "a", &url, receiver.port, wait);
    wait_deciding(&mut a, true);
    let mut b = node(dir.path(), "b", &url, receiver.port, wait);
    wait_deciding(&mut b, false);
    send_udp(a.port(0), &[DOWN.to_vec()]);
    send_udp(b.port(0), &[DOWN.to_vec()]);
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'waiting'",
        1,
    );
    a.kill();
    assert!(receiver.accepted.lock().unwrap().is_empty());
    // b takes the lease once a's lapses, and sends what a had waiting.
    wait_deciding(&mut b, true);
    let got = receiver.wait_accepted(1);
    assert_eq!(webhook_statuses(&got), ["\"firing\""]);
    send_udp(b.port(0), &[UP.to_vec()]);
    let got = receiver.wait_accepted(2);
    // a, back, stands by: b holds the lease.
    let mut a = node(dir.path(), "a", &url, receiver.port, wait);
    wait_deciding(&mut a, false);
    send_udp(a.port(0), &[UP.to_vec()]);
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'delivered'",
        2,
    );
    a.stop();
    b.stop();
    assert_eq!(webhook_statuses(&got), ["\"firing\"", "\"resolved\""]);
    assert_eq!(receiver.accepted.lock().unwrap().len(), 2);
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM incidents"), 1);
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM events"), 2);
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM delivery_attempts WHERE node = 'b' AND outcome = 'delivered'"
        ),
        2,
        "b delivered both"
    );
}

#[test]
fn a_sigkill_of_the_deciding_node_mid_send_is_delivered_once_by_the_other() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The first attempt fails; the second hangs (a's send in flight); then 200.
    let receiver = Receiver::start(0, vec![503, 0]);
    let mut a = node(dir.path(), "a", &url, receiver.port, "0s");
    wait_deciding(&mut a, true);
    let mut b = node(dir.path(), "b", &url, receiver.port, "0s");
    wait_deciding(&mut b, false);
    send_udp(a.port(0), &[DOWN.to_vec()]);
    send_udp(b.port(0), &[DOWN.to_vec()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while receiver.attempts.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "a never sent twice");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // a is inside its second send, the row claimed: kill it there.
    a.kill();
    wait_deciding(&mut b, true);
    let got = receiver.wait_accepted(1);
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'delivered'",
        1,
    );
    b.stop();
    assert_eq!(webhook_statuses(&got), ["\"firing\""]);
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
    // (a's failed attempt may have died with it, before its record was committed.)
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM delivery_attempts WHERE outcome = 'delivered'"
        ),
        1
    );
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM delivery_attempts WHERE node = 'b' AND outcome = 'delivered'"
        ),
        1
    );
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM outbox WHERE claim_node IS NOT NULL"
        ),
        0,
        "no claim outlives its attempt"
    );
}

#[test]
fn a_silence_made_through_one_node_holds_on_the_other() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let mut a = node(dir.path(), "a", &url, receiver.port, "0s");
    wait_deciding(&mut a, true);
    let a_config = dir.path().join("a").join("hapwatch.toml");
    let a_config = a_config.to_str().unwrap();
    hapwatch(&[
        "silence",
        "add",
        "--config",
        a_config,
        "--backend",
        "be_x",
        "--for",
        "1h",
        "--reason",
        "deploy",
    ]);
    let mut b = node(dir.path(), "b", &url, receiver.port, "0s");
    wait_deciding(&mut b, false);
    // b decides from now on.
    a.stop();
    wait_deciding(&mut b, true);
    send_udp(b.port(0), &[DOWN.to_vec()]);
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'silenced'",
        1,
    );
    b.stop();
    assert!(receiver.accepted.lock().unwrap().is_empty());
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM incidents"), 1);
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM outbox WHERE state <> 'silenced'"
        ),
        0
    );
}

/// A state line from the load balancer `host` (its syslog header names it).
fn from_host(line: &[u8], host: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    text.replacen(" haproxy[1]:", &format!(" {host} haproxy[1]:"), 1)
        .into_bytes()
}

#[test]
fn two_groups_receiving_different_load_balancers_decide_side_by_side_over_one_history() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let mut eu = node_in("eu", dir.path(), "eu-1", &url, receiver.port, "0s");
    let mut us = node_in("us", dir.path(), "us-1", &url, receiver.port, "0s");
    // Each decides for its own group, at once (one lease would leave us-1 standing by).
    wait_deciding(&mut eu, true);
    wait_deciding(&mut us, true);
    send_udp(eu.port(0), &[from_host(DOWN, "lb-eu")]);
    send_udp(us.port(0), &[from_host(DOWN, "lb-us")]);
    let got = receiver.wait_accepted(2);
    assert_eq!(webhook_statuses(&got), ["\"firing\"", "\"firing\""]);
    let groups = |host: &str| {
        postgres::count(
            &url,
            &format!(
                "SELECT count(*) FROM incidents WHERE host = '{host}' AND grp = '{}'",
                &host[3..]
            ),
        )
    };
    assert_eq!((groups("lb-eu"), groups("lb-us")), (1, 1));
    // Made through eu-1's config, an ack of lb-us's incident is us-1's to settle.
    let us_incident = postgres::count(&url, "SELECT id FROM incidents WHERE host = 'lb-us'");
    let eu_config = dir.path().join("eu-1").join("hapwatch.toml");
    let said = hapwatch(&[
        "ack",
        "--config",
        eu_config.to_str().unwrap(),
        &us_incident.to_string(),
        "--reason",
        "on it",
        "--by",
        "alice",
    ]);
    assert!(said.contains("acknowledged by alice"), "{said}");
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM acks WHERE notified_at IS NOT NULL",
        1,
    );
    // A restart reads back its own group's incidents only: eu-1 resolves
    // lb-eu's and leaves lb-us's to us-1.
    eu.stop();
    let mut eu = node_in("eu", dir.path(), "eu-1", &url, receiver.port, "0s");
    wait_deciding(&mut eu, true);
    send_udp(eu.port(0), &[from_host(UP, "lb-eu")]);
    send_udp(us.port(0), &[from_host(UP, "lb-us")]);
    let got = receiver.wait_accepted(4);
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'delivered'",
        4,
    );
    eu.stop();
    us.stop();
    assert_eq!(
        webhook_statuses(&got),
        ["\"firing\"", "\"firing\"", "\"resolved\"", "\"resolved\""]
    );
    assert_eq!(
        receiver.accepted.lock().unwrap().len(),
        4,
        "each paged once"
    );
    let resolved_us = got
        .iter()
        .map(|(_, body)| serde_json::from_str::<serde_json::Value>(body).unwrap())
        .find(|b| b["status"] == "resolved" && b["incident"]["host"] == "lb-us")
        .expect("lb-us's resolve");
    assert_eq!(
        resolved_us["incident"]["ack"]["by"], "alice",
        "its resolve says who acked: {resolved_us}"
    );
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM incidents WHERE resolved_at IS NULL"
        ),
        0
    );
    // The two groups numbered side by side without taking the same id: an
    // id taken twice would have been refused, a row missing here.
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM outbox"), 4);
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM incidents"), 2);
    assert!(
        postgres::count(&url, "SELECT max(id) FROM incidents") > 1000,
        "the second group numbered from a block of its own"
    );
}
