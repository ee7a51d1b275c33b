//! The on-call workflow against a running daemon: acknowledgements.

use crate::util::*;
use serde_json::Value;

/// be_x's last server goes: a critical `backend_down`.
const LAST_DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
const NO_SERVER: &[u8] = b"<128>Nov 23 01:23:33 haproxy[1]: backend be_x has no server available!";
const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

/// Firing rows of `id` (its page and reminders) created after `after_ms`.
fn firings_after(db: &std::path::Path, id: i64, after_ms: i64) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM outbox WHERE incident_id = ?1 AND status = 'firing' AND created_at > ?2",
        [id, after_ms],
        |r| r.get(0),
    )
    .unwrap()
}

fn acknowledges(bodies: &[Value]) -> usize {
    bodies
        .iter()
        .filter(|b| b["event_action"] == "acknowledge")
        .count()
}

fn acked_at(db: &std::path::Path, id: i64) -> (i64, Option<i64>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT acked_at, notified_at FROM acks WHERE incident_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn an_ack_stops_reminders_tells_pagerduty_once_and_its_resolve_says_who() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(0, vec![]);
    let pd = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"0s\"")
        .set("notify", "repeat_critical", "\"1s\"")
        .set("notify", "retry_min", "\"50ms\"")
        .udp()
        .webhook("ops", hook.port, "")
        .channel(&format!(
            "name = \"pd\"\ntype = \"pagerduty\"\nurl = \"http://127.0.0.1:{}/v2/enqueue\"\nrouting_key = \"R0UT1NG\"\n",
            pd.port
        ))
        .write();
    let db = dir.path().join("h.db");
    let db_s = db.to_str().unwrap();
    let daemon = Daemon::start(&cfg, 1);
    send_udp(daemon.port(0), &[LAST_DOWN.to_vec(), NO_SERVER.to_vec()]);

    // The page, then a reminder a second later: reminders are on.
    let is_reminder = |b: &Value| {
        b["incident"]["kind"] == "backend_down"
            && b["text"].as_str().unwrap().contains("still open after")
    };
    let bodies = hook.wait_body("reminder", is_reminder);
    let id = bodies.iter().find(|b| is_reminder(b)).unwrap()["incident"]["id"]
        .as_i64()
        .unwrap();

    // Unknown and resolved incidents cannot be acknowledged; an empty reason neither.
    let (_, err) = hapwatch_fails(&["ack", "--db", db_s, "#999", "--reason", "x"]);
    assert!(err.contains("no incident #999"), "{err}");
    let (_, err) = hapwatch_fails(&["ack", "--db", db_s, &id.to_string(), "--reason", " "]);
    assert!(err.contains("--reason is empty"), "{err}");

    let said = hapwatch(&[
        "ack",
        "--db",
        db_s,
        &format!("#{id}"),
        "--reason",
        "rebooting lb1",
        "--by",
        "alice",
    ]);
    assert!(
        said.contains(&format!(
            "incident #{id} acknowledged by alice: rebooting lb1"
        )),
        "{said}"
    );
    // PagerDuty is told, on the trigger's dedup key.
    let pages = pd.wait_body("acknowledge", |b| b["event_action"] == "acknowledge");
    let key = format!("hapwatch-{id}");
    let ack = pages
        .iter()
        .find(|b| b["event_action"] == "acknowledge")
        .unwrap();
    assert_eq!(ack["dedup_key"], key.as_str(), "{pages:?}");
    assert!(
        pages
            .iter()
            .any(|b| b["event_action"] == "trigger" && b["dedup_key"] == key.as_str()),
        "its trigger went first: {pages:?}"
    );
    assert_eq!(ack["routing_key"], "R0UT1NG");
    wait_stored(
        &db,
        "the ack settled",
        &format!("SELECT count(*) FROM acks WHERE incident_id = {id} AND notified_at IS NOT NULL"),
        1,
        String::new,
    );
    let (_, Some(settled)) = acked_at(&db, id) else {
        unreachable!()
    };

    // A restart owes PagerDuty nothing more, and reminders stay off.
    drop(daemon.stop());
    let mut daemon = Daemon::start(&cfg, 1);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(firings_after(&db, id, settled), 0, "no reminder once acked");
    let list = json_lines(&["incidents", "--db", db_s, "--open", "--json"]);
    let row = list.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(
        (row["ack"]["by"].as_str(), row["ack"]["reason"].as_str()),
        (Some("alice"), Some("rebooting lb1"))
    );
    let table = hapwatch(&["incidents", "--db", db_s]);
    assert!(table.contains("acked"), "{table}");
    let one = hapwatch(&["incident", "--db", db_s, &id.to_string()]);
    assert!(one.contains("acked     by alice at "), "{one}");

    // Taken back, the reminders resume.
    let said = hapwatch(&["unack", "--db", db_s, &id.to_string()]);
    assert!(said.contains("no longer acknowledged"), "{said}");
    let unacked_at = hapwatch::timezone::now_ms();
    wait_stored(
        &db,
        "a reminder after the unack",
        &format!(
            "SELECT count(*) FROM outbox WHERE incident_id = {id} AND status = 'firing' AND created_at > {unacked_at}"
        ),
        1,
        String::new,
    );
    let (_, err) = hapwatch_fails(&["unack", "--db", db_s, &id.to_string()]);
    assert!(err.contains("is not acknowledged"), "{err}");

    // Acked again, then resolved: the resolve says who.
    hapwatch(&[
        "ack",
        "--db",
        db_s,
        &id.to_string(),
        "--reason",
        "on it",
        "--by",
        "bob",
    ]);
    pd.wait_bodies("the second acknowledge", |b| acknowledges(b) == 2);
    wait_stored(
        &db,
        "the second ack settled",
        &format!("SELECT count(*) FROM acks WHERE incident_id = {id} AND notified_at IS NOT NULL"),
        1,
        String::new,
    );
    send_udp(daemon.port(0), &[UP.to_vec()]);
    let bodies = hook.wait_body("resolve", |b| {
        b["status"] == "resolved" && b["incident"]["id"] == id
    });
    daemon.wait_delivered(1);
    let log = daemon.stop();
    let resolve = bodies
        .iter()
        .find(|b| b["status"] == "resolved" && b["incident"]["id"] == id)
        .unwrap();
    assert_eq!(resolve["incident"]["ack"]["by"], "bob", "{resolve}");
    assert!(
        resolve["text"]
            .as_str()
            .unwrap()
            .contains("(acknowledged by bob)"),
        "{resolve}"
    );
    // Resolved: the ack stays in the history, and a resolved incident cannot be acked.
    let (_, err) = hapwatch_fails(&["ack", "--db", db_s, &id.to_string(), "--reason", "x"]);
    assert!(err.contains("already resolved"), "{err}\n{log:?}");
    let pages = pd.wait_bodies("PagerDuty's events", |_| true);
    assert_eq!(
        acknowledges(&pages),
        2,
        "one per ack, none again after the restart: {pages:?}"
    );
}

#[test]
fn the_heartbeat_beats_while_healthy_and_is_withheld_while_the_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let beat = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set(
            "heartbeat",
            "url",
            &format!("\"http://127.0.0.1:{}/ping\"", beat.port),
        )
        .set("heartbeat", "every", "\"200ms\"")
        .set("heartbeat", "method", "\"POST\"")
        .http()
        .udp()
        .write();
    let said = hapwatch(&["check-config", cfg.to_str().unwrap()]);
    assert!(
        said.contains(&format!(
            "  heartbeat http://127.0.0.1:{}/… every",
            beat.port
        )),
        "{said}"
    );
    let mut daemon = Daemon::start(&cfg, 1);
    beat.wait_accepted(2);

    // Another process holds the write lock: the daemon's next write is held.
    let holder = rusqlite::Connection::open(dir.path().join("h.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    send_udp(daemon.port(0), &[LAST_DOWN.to_vec()]);
    daemon.wait_store_retrying(true);
    let before = beat.accepted.lock().unwrap().len();
    let withheld = |h: &Value| h["heartbeats"]["withheld"].as_u64().unwrap_or(0);
    let (_, health) = http_get(daemon.http_port(), "/healthz");
    let withheld_before = withheld(&serde_json::from_str(&health).unwrap());
    // Three beat periods pass with the store refusing writes.
    daemon.wait_health("three more beats withheld", |h| {
        withheld(h) >= withheld_before + 3
    });
    let during = beat.accepted.lock().unwrap().len();
    // One beat may have been on its way when the lock began; none after.
    assert!(during <= before + 1, "{before} then {during}");

    holder.execute_batch("COMMIT").unwrap();
    daemon.wait_store_retrying(false);
    beat.wait_accepted(during + 1);
    let (_, metrics) = http_get(daemon.http_port(), "/metrics");
    daemon.stop();
    assert!(
        metrics.contains("hapwatch_heartbeats_total{outcome=\"withheld\"} "),
        "{metrics}"
    );
    assert!(!metrics.contains("hapwatch_heartbeats_total{outcome=\"sent\"} 0\n"));
}

/// A HAProxy 2.x configuration with native email alerts, as people run them.
const MAILERS_CFG: &str = "\
global
    log 127.0.0.1:514 local0

mailers ops
    mailer smtp1 192.0.2.10:587
    mailer smtp2 192.0.2.11:25
    timeout mail 20s

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    email-alert mailers ops
    email-alert from haproxy@example.org
    email-alert to ops@example.org

backend be_api
    server a1 127.0.0.1:8081 check

listen li_web
    bind 127.0.0.1:8080
    server w1 127.0.0.1:8082 check

backend be_db
    email-alert level notice
    email-alert to dba@example.org
    server d1 127.0.0.1:8083 check
";

#[test]
fn haproxys_mailers_become_channels_that_check_config_accepts() {
    use crate::util::haproxy::HAPROXY;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, MAILERS_CFG).unwrap();
    // It is a configuration HAProxy itself takes.
    if installed(&[HAPROXY]) {
        let check = std::process::Command::new(HAPROXY)
            .args(["-c", "-f"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let out = hapwatch(&["import-haproxy", cfg.to_str().unwrap()]);
    let parsed: Value = serde_json::to_value(toml::from_str::<toml::Table>(&out).unwrap()).unwrap();
    let channels = parsed["channel"].as_array().unwrap();
    let keys = [
        "name",
        "smtp_host",
        "smtp_port",
        "to",
        "min_severity",
        "resolved",
        "backends",
    ];
    let rows: Vec<String> = channels
        .iter()
        .map(|c| keys.map(|k| c[k].to_string()).join(" "))
        .collect();
    assert_eq!(
        rows,
        [
            r#""ops-smtp1" "192.0.2.10" 587 ["ops@example.org"] "warning" false ["be_api","li_web"]"#,
            r#""ops-smtp2" "192.0.2.11" 25 ["ops@example.org"] "warning" false ["be_api","li_web"]"#,
            r#""ops-smtp1-2" "192.0.2.10" 587 ["dba@example.org"] "info" true ["be_db"]"#,
            r#""ops-smtp2-2" "192.0.2.11" 25 ["dba@example.org"] "info" true ["be_db"]"#,
        ],
        "{out}"
    );
    assert!(
        channels
            .iter()
            .all(|c| c["timeout"] == "20000ms" && c["tls"] == "none"),
        "{out}"
    );
    // Appended to a hapwatch config, check-config takes it.
    let config = ConfigBuilder::new(dir.path()).udp().toml(&out).write();
    let said = hapwatch(&["check-config", config.to_str().unwrap()]);
    assert!(said.contains("ops-smtp1-2"), "{said}");

    // A mistake is named with its line.
    std::fs::write(&cfg, MAILERS_CFG.replace("level notice", "level loud")).unwrap();
    let (_, err) = hapwatch_fails(&["import-haproxy", cfg.to_str().unwrap()]);
    assert!(
        err.contains("line 26") && err.contains("emerg, alert"),
        "{err}"
    );
}

fn down(backend_server: &str) -> Vec<u8> {
    format!("<129>Nov 23 01:23:33 haproxy[1]: Server {backend_server} is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.").into_bytes()
}

fn up(backend_server: &str) -> Vec<u8> {
    format!("<133>Nov 23 01:25:00 haproxy[1]: Server {backend_server} is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.").into_bytes()
}

/// (incident's server, row status, row state, note) of every outbox row of `backend`.
fn outbox_rows(db: &std::path::Path, backend: &str) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT coalesce(i.server, i.kind), o.status, o.state, coalesce(o.note, '') FROM outbox o
             JOIN incidents i ON i.id = o.incident_id WHERE i.backend = ?1 ORDER BY o.id",
        )
        .unwrap();
    stmt.query_map([backend], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_maintenance_window_holds_what_it_covers_and_notifies_what_outlasts_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(0, vec![]);
    let now = hapwatch::timezone::now_ms();
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    // Long enough for the lines to arrive inside it on a busy machine.
    let end_ms = now + 8000;
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"0s\"")
        .http()
        .udp()
        .webhook("ops", hook.port, "")
        .toml(&format!(
            "[[maintenance]]\nname = \"patch\"\nbackends = [\"be_x\"]\nstart = {:?}\nend = {:?}\nreason = \"kernel updates\"\n",
            at(now - 60_000),
            at(end_ms)
        ))
        .write();
    let db = dir.path().join("h.db");
    let db_s = db.to_str().unwrap();
    let said = hapwatch(&["check-config", cfg.to_str().unwrap()]);
    assert!(said.contains("  maintenance patch: 20"), "{said}");
    assert!(said.contains(", hosts *, backends be_x"), "{said}");
    let mut daemon = Daemon::start(&cfg, 1);
    daemon.wait_health("the window on", |h| h["maintenance_active"] == 1);
    let udp = daemon.port(0);
    // Inside the window: s1 goes down for good, s2 goes down and comes back;
    // be_y is not covered.
    send_udp(
        udp,
        &[
            down("be_x/s1"),
            down("be_x/s2"),
            up("be_x/s2"),
            down("be_y/s9"),
        ],
    );
    hook.wait_body("be_y's DOWN, at once", |b| fires_for(b, "be_y", "s9"));
    // When the window ends, what is still wrong is notified, once.
    let bodies = hook.wait_body("s1's DOWN after the window", |b| fires_for(b, "be_x", "s1"));
    assert!(
        hapwatch::timezone::now_ms() >= end_ms,
        "s1 was notified before the window ended: {bodies:?}"
    );
    send_udp(udp, &[up("be_x/s1")]);
    let bodies = hook.wait_body("s1's resolve", |b| b["status"] == "resolved");
    assert!(
        !bodies.iter().any(|b| b.to_string().contains("\"s2\"")),
        "s2 recovered inside the window: never notified: {bodies:?}"
    );
    let fired = bodies.iter().filter(|b| fires_for(b, "be_x", "s1")).count();
    assert_eq!(fired, 1, "{bodies:?}");
    let rows = outbox_rows(&db, "be_x");
    let s2: Vec<_> = rows.iter().filter(|r| r.0 == "s2").collect();
    assert_eq!(s2.len(), 2, "{rows:?}");
    assert_eq!((s2[0].1.as_str(), s2[0].2.as_str()), ("firing", "silenced"));
    assert!(s2[0].3.starts_with("maintenance patch:"), "{rows:?}");
    assert_eq!(
        (s2[1].1.as_str(), s2[1].2.as_str()),
        ("resolved", "cancelled")
    );
    assert!(s2[1].3.contains("held by maintenance patch"), "{rows:?}");

    // A window from the CLI: the daemon reads it, holds be_z, and its removal releases it.
    let said = hapwatch(&[
        "maintenance",
        "add",
        "--db",
        db_s,
        "--backend",
        "be_z",
        "--every",
        "daily 00:00-24:00",
        "--timezone",
        "UTC",
        "--reason",
        "migration",
    ]);
    assert!(
        said.starts_with("maintenance #1: daily 00:00-24:00 (UTC)"),
        "{said}"
    );
    daemon.wait_health("two windows known, one on", |h| {
        h["maintenance_active"] == 1
    });
    let list = json_lines(&[
        "maintenance",
        "list",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
    ]);
    let on: Vec<(&str, bool)> = list
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(on, [("patch", false), ("#1", true)]);
    send_udp(udp, &[down("be_z/s1")]);
    wait_stored(
        &db,
        "be_z's DOWN held",
        "SELECT count(*) FROM outbox WHERE state = 'silenced' AND note LIKE 'maintenance #1:%'",
        1,
        String::new,
    );
    hapwatch(&["maintenance", "remove", "--db", db_s, "1"]);
    hook.wait_body("be_z's DOWN once the window is gone", |b| {
        fires_for(b, "be_z", "s1")
    });
    let (_, err) = hapwatch_fails(&["maintenance", "remove", "--db", db_s, "1"]);
    assert!(err.contains("no maintenance #1"), "{err}");
    daemon.stop();
}

#[test]
fn an_ack_while_the_trigger_waits_in_its_group_follows_the_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let pd = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"3s\"")
        .udp()
        .channel(&format!(
            "name = \"pd\"\ntype = \"pagerduty\"\nurl = \"http://127.0.0.1:{}/v2/enqueue\"\nrouting_key = \"R0UT1NG\"\n",
            pd.port
        ))
        .write();
    let db = dir.path().join("h.db");
    let mut daemon = Daemon::start(&cfg, 1);
    send_udp(daemon.port(0), &[down("be_x/s1")]);
    daemon.wait_incident("server = 's1'");
    // Acked within the group wait: PagerDuty does not know the key yet.
    hapwatch(&[
        "ack",
        "--db",
        db.to_str().unwrap(),
        "1",
        "--reason",
        "seen it",
    ]);
    let pages = pd.wait_body("the acknowledge", |b| b["event_action"] == "acknowledge");
    daemon.stop();
    let actions: Vec<&str> = pages
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge"], "{pages:?}");
}

/// One line from `lb-edge`'s HAProxy.
fn edge(message: &str) -> Vec<u8> {
    format!("<129>Nov 23 01:23:33 lb-edge haproxy[7]: {message}").into_bytes()
}

fn all_gone(backend: &str) -> [Vec<u8>; 2] {
    [
        edge(&format!("Server {backend}/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.")),
        edge(&format!("backend {backend} has no server available!")),
    ]
}

#[test]
fn most_of_a_hosts_backends_down_at_once_are_one_host_notice_and_its_resolve_says_what_came_back() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(0, vec![]);
    let cfg = ConfigBuilder::new(dir.path())
        .set("notify", "group_wait", "\"1s\"")
        .udp()
        .webhook("ops", hook.port, "")
        .write();
    let db = dir.path().join("h.db");
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    // Four backends known; three lose every server within the group wait.
    let mut lines = vec![edge("Health check for server be_d/s1 succeeded, reason: Layer7 check passed, code: 200, check duration: 2ms, status: 2/2 UP.")];
    for b in ["be_a", "be_b", "be_c"] {
        lines.extend(all_gone(b));
    }
    send_udp(udp, &lines);
    let bodies = hook.wait_body("the host's notice", |b| b["status"] == "firing");
    // Its backends' and servers' firings were superseded, not sent.
    wait_stored(
        &db,
        "the backends' notices superseded",
        "SELECT count(*) FROM outbox WHERE state = 'superseded' AND note LIKE '%its host lb-edge%'",
        6,
        String::new,
    );
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["incident"]["kind"], "host_down", "{bodies:?}");
    assert!(
        bodies[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("[hapwatch] HOST DOWN lb-edge: 2 of 3 backends have no server available"),
        "{bodies:?}"
    );
    // One comes back: two of four is no longer most. The resolve says what
    // came back and what did not, and those still down are owed their own notices.
    send_udp(
        udp,
        &[edge("Server be_a/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.")],
    );
    let bodies = hook.wait_bodies("the resolve and the notices still owed", |b| b.len() >= 4);
    daemon.stop();
    let resolve = bodies.iter().find(|b| b["status"] == "resolved").unwrap();
    assert_eq!(
        resolve["incident"]["resolution"], "back: be_a; still down: be_b, be_c",
        "{bodies:?}"
    );
    let mut owed: Vec<String> = bodies[1..]
        .iter()
        .filter(|b| b["status"] == "firing")
        .map(|b| {
            let i = &b["incident"];
            format!(
                "{} {}",
                i["kind"].as_str().unwrap(),
                i["backend"].as_str().unwrap()
            )
        })
        .collect();
    owed.sort();
    assert_eq!(
        owed,
        ["backend_down be_b", "backend_down be_c"],
        "be_a came back inside the host's notice, never notified: {bodies:?}"
    );
    assert_eq!(bodies.len(), 4, "{bodies:?}");
}
