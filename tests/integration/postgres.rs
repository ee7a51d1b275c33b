//! A daemon on PostgreSQL: everything it stores lives in the database (no
//! SQLite file appears), it pages as on SQLite, and the CLI given the same
//! config reads the same history from there.

use crate::util::*;

pub const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
pub const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

#[test]
fn a_daemon_on_postgresql_pages_once_and_the_cli_reads_its_history_there() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let config = ConfigBuilder::new(dir.path())
        .set("storage", "postgres", &format!("{url:?}"))
        .set("notify", "retry_min", "\"50ms\"")
        .set("parse", "timezone", "\"UTC\"")
        .udp()
        .http()
        .webhook("ops", receiver.port, "")
        .write();
    let daemon = Daemon::start(&config, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec(), traffic_now(200), traffic_now(503)]);
    receiver.wait_accepted(1);
    send_udp(udp, &[UP.to_vec()]);
    let got = receiver.wait_accepted(2);
    // The console reads the same database.
    let http = daemon.http_port();
    let (code, fleet) = http_get(http, "/?format=json");
    assert_eq!(code, 200, "{fleet}");
    assert!(fleet.contains("be_x"), "{fleet}");
    let (code, list) = http_get(http, "/incidents?format=json");
    assert_eq!(code, 200, "{list}");
    let id = serde_json::from_str::<serde_json::Value>(&list).unwrap()["history"][0]["id"].clone();
    let (code, page) = http_get(http, &format!("/incidents/{id}?format=json"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("delivered"), "{page}");
    let (code, backend) = http_get(http, "/backends/be_x?format=json");
    assert_eq!(code, 200, "{backend}");
    daemon.stop();

    let statuses = webhook_statuses(&got);
    assert_eq!(statuses, ["\"firing\"", "\"resolved\""]);
    assert!(
        !dir.path().join("h.db").exists(),
        "nothing is stored in the SQLite file"
    );
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM events"), 2);
    assert_eq!(
        postgres::count(
            &url,
            "SELECT count(*) FROM outbox WHERE state = 'delivered'"
        ),
        2
    );
    assert_eq!(
        postgres::count(&url, "SELECT count(*) FROM delivery_attempts"),
        2
    );

    let config = config.to_str().unwrap();
    let incidents = json_lines(&["incidents", "--config", config, "--since", "30d", "--json"]);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["kind"], "server_down");
    assert_eq!(incidents[0]["server"], "s1");
    assert!(incidents[0]["resolved_at"].is_string(), "{incidents:?}");
    let events = json_lines(&["events", "--config", config, "--since", "30d", "--json"]);
    assert_eq!(events.len(), 2);
    let stats = json_lines(&["stats", "--config", config, "--since", "1h", "--json"]);
    assert_eq!(stats[0]["requests"], 2, "{stats:?}");
    let one = json_lines(&["incident", "--config", config, &id.to_string(), "--json"]);
    assert_eq!(one[0]["deliveries"].as_array().unwrap().len(), 2);
    hapwatch(&[
        "silence",
        "add",
        "--config",
        config,
        "--backend",
        "be_x",
        "--for",
        "1h",
        "--reason",
        "deploy",
    ]);
    let silences = json_lines(&["silence", "list", "--config", config, "--json"]);
    assert_eq!(silences.len(), 1, "{silences:?}");
    let outbox = json_lines(&["outbox", "--config", config, "--all", "--json"]);
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    let digest = hapwatch(&["digest", "--config", config, "--since", "30d"]);
    assert!(digest.contains("be_x"), "{digest}");
    let checked = hapwatch(&["check-config", config]);
    assert!(checked.contains("postgresql://"), "{checked}");
}

#[test]
fn a_sigkill_inside_the_group_wait_on_postgresql_loses_no_page_and_sends_none_twice() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, vec![]);
    let config = ConfigBuilder::new(dir.path())
        .set("storage", "postgres", &format!("{url:?}"))
        // Long enough that the kill surely falls inside it.
        .set("notify", "group_wait", "\"10s\"")
        .set("notify", "retry_min", "\"50ms\"")
        .udp()
        .webhook("ops", receiver.port, "")
        .write();
    let daemon = Daemon::start(&config, 1);
    send_udp(daemon.port(0), &[DOWN.to_vec()]);
    // The DOWN is stored and its notification waits for its group: crash now.
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'waiting'",
        1,
    );
    daemon.kill();
    assert!(receiver.accepted.lock().unwrap().is_empty());

    let daemon = Daemon::start(&config, 1);
    let got = receiver.wait_accepted(1);
    send_udp(daemon.port(0), &[UP.to_vec()]);
    let got_all = receiver.wait_accepted(2);
    postgres::wait_count(
        &url,
        "SELECT count(*) FROM outbox WHERE state = 'delivered'",
        2,
    );
    daemon.stop();
    let statuses = webhook_statuses(&got_all);
    assert_eq!(got[0].1, got_all[0].1);
    assert_eq!(statuses, ["\"firing\"", "\"resolved\""], "each once");
    assert_eq!(postgres::count(&url, "SELECT count(*) FROM incidents"), 1);
}
