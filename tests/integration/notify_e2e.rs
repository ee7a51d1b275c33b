//! Notifications you can trust, end to end: a real HAProxy 2.6 checking
//! backend servers we kill and restart (`inter 300ms fall 2 rise 2`), a real
//! SMTP server (aiosmtpd, STARTTLS + AUTH) and a webhook receiver. Each test
//! counts what every channel got once the outbox has nothing left to send.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::util::haproxy::{origin, start_haproxy, HAPROXY};
use crate::util::smtp::Smtp;
use crate::util::*;
use serde_json::Value;

struct Stack {
    dir: tempfile::TempDir,
    ca: PathBuf,
    log_port: u16,
    front: u16,
    backend: String,
    smtp_port: u16,
    smtp: Smtp,
    hooks: Receiver,
    origins: Vec<(u16, Option<Child>)>,
    haproxy: Option<Child>,
}

impl Stack {
    /// A backend of `servers` servers, each up; None when a program is missing.
    fn new(backend: &str, servers: usize) -> Option<Stack> {
        if !installed(&[HAPROXY]) || !crate::util::smtp::aiosmtpd_available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = crate::util::smtp::certificates(dir.path());
        let smtp = Smtp::start(0, &cert, &key, &dir.path().join("mails.jsonl"));
        let smtp_port = smtp.port;
        let origins = (0..servers)
            .map(|_| {
                let port = free_port();
                (port, Some(origin(port, dir.path())))
            })
            .collect();
        Some(Stack {
            ca,
            log_port: free_port(),
            front: free_port(),
            backend: backend.into(),
            smtp_port,
            smtp,
            hooks: Receiver::start(0, vec![]),
            origins,
            haproxy: None,
            dir,
        })
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("h.db")
    }

    fn db_arg(&self) -> String {
        self.db().to_str().unwrap().to_owned()
    }

    fn mail_channel(&self) -> String {
        format!(
            "[[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             username = \"hapwatch\"\npassword = \"s3cret\"\nca_file = {:?}\n\
             from = \"hapwatch@example.org\"\nto = [\"ops@example.org\"]\n",
            self.smtp_port, self.ca
        )
    }

    fn hook_channel(&self) -> String {
        format!(
            "[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\n",
            self.hooks.port
        )
    }

    /// Writes the config: `[notify] group_wait`, more top-level sections, channels.
    fn write_config(&self, group_wait: &str, sections: &str, channels: &str) -> PathBuf {
        ConfigBuilder::new(self.dir.path())
            .set("parse", "timezone", "\"Europe/Paris\"")
            .set("notify", "group_wait", &format!("{group_wait:?}"))
            .set("notify", "retry_min", "\"100ms\"")
            .set("notify", "retry_max", "\"500ms\"")
            .http()
            .toml(sections)
            .listen(&format!("udp://127.0.0.1:{}", self.log_port), "")
            .toml(channels)
            .write()
    }

    fn start_haproxy(&mut self) {
        let servers: String = self
            .origins
            .iter()
            .enumerate()
            .map(|(n, (port, _))| {
                format!(
                    "    server s{} 127.0.0.1:{port} check inter 300ms fall 2 rise 2\n",
                    n + 1
                )
            })
            .collect();
        self.haproxy = Some(start_haproxy(
            self.dir.path(),
            &format!("    log 127.0.0.1:{} local0\n", self.log_port),
            "    option httplog\n    option log-health-checks\n",
            &format!(
                "frontend fe\n    bind 127.0.0.1:{}\n    default_backend {b}\nbackend {b}\n{servers}",
                self.front,
                b = self.backend
            ),
        ));
    }

    /// Kills server `n` (1-based) and waits for its `nth` DOWN in the store.
    fn kill(&mut self, n: usize, nth: usize, daemon: &Daemon) {
        if let Some(mut c) = self.origins[n - 1].1.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        self.wait_events(n, "srv_down", nth, daemon);
    }

    /// Starts server `n` again and waits for its `nth` UP in the store.
    fn revive(&mut self, n: usize, nth: usize, daemon: &Daemon) {
        let port = self.origins[n - 1].0;
        self.origins[n - 1].1 = Some(origin(port, self.dir.path()));
        self.wait_events(n, "srv_up", nth, daemon);
    }

    fn wait_events(&self, n: usize, kind: &str, nth: usize, daemon: &Daemon) {
        let server = format!("{}/s{n}", self.backend);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = wait_json_lines(
                &[
                    "events",
                    "--db",
                    &self.db_arg(),
                    "--server",
                    &server,
                    "--kind",
                    kind,
                    "--json",
                ],
                daemon,
            );
            if got.len() >= nth {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {} {kind} of {server}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no outbox row is waiting or queued: what was owed is
    /// delivered (or settled), so the counts below are final.
    fn wait_settled(&self, daemon: &Daemon) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.outbox();
            let open = rows
                .iter()
                .filter(|r| r["state"] == "waiting" || r["state"] == "queued")
                .count();
            if open == 0 {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "the outbox did not settle: {rows:?}\n{}",
                daemon.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn outbox(&self) -> Vec<Value> {
        if !self.db().exists() {
            return Vec::new();
        }
        json_lines(&["outbox", "--db", &self.db_arg(), "--all", "--json"])
    }

    fn hook_bodies(&self) -> Vec<Value> {
        self.hooks
            .accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in self
            .haproxy
            .iter_mut()
            .chain(self.origins.iter_mut().filter_map(|(_, c)| c.as_mut()))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn subjects(mails: &[Value]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn statuses(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| {
            format!(
                "{} {}",
                b["status"].as_str().unwrap(),
                b["incident"]["kind"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_sigkill_inside_the_group_wait_loses_no_page() {
    let Some(mut s) = Stack::new("be_api", 2) else {
        return;
    };
    // Long enough that the kill surely falls inside it.
    let cfg = s.write_config(
        "10s",
        "",
        &format!("{}{}", s.mail_channel(), s.hook_channel()),
    );
    let daemon = Daemon::start(&cfg, 1);
    s.start_haproxy();
    s.kill(1, 1, &daemon);
    // The DOWN is stored, its notification still waits for its group: crash now.
    let rows = s.outbox();
    // Per channel: the DOWN, and the degraded notice (1 of 2) to be folded into it.
    assert!(
        rows.iter().filter(|r| r["state"] == "waiting").count() == 4,
        "two waiting rows per channel: {rows:?}"
    );
    daemon.kill();
    let daemon = Daemon::start(&cfg, 1);
    s.smtp.wait_mails(1);
    s.hooks.wait_accepted(1);
    s.revive(1, 1, &daemon);
    s.wait_settled(&daemon);
    daemon.stop();

    let mails = s.smtp.mails();
    let subjects = subjects(&mails);
    assert_eq!(
        mails.len(),
        2,
        "one DOWN and one resolved mail: {subjects:?}"
    );
    assert!(
        subjects[0].starts_with("[hapwatch] DOWN be_api/s1 on 127.0.0.1"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[hapwatch] RESOLVED be_api/s1 on 127.0.0.1: UP again after"),
        "{subjects:?}"
    );
    assert_eq!(mails[1]["in_reply_to"], mails[0]["message_id"]);
    assert_eq!(
        statuses(&s.hook_bodies()),
        ["firing server_down", "resolved server_down"]
    );
}

#[test]
fn a_down_undone_within_the_wait_sends_nothing_even_across_a_sigkill() {
    let Some(mut s) = Stack::new("be_api", 2) else {
        return;
    };
    // Long enough for the restart and the server's return to fit in it.
    let cfg = s.write_config(
        "30s",
        "",
        &format!("{}{}", s.mail_channel(), s.hook_channel()),
    );
    let daemon = Daemon::start(&cfg, 1);
    s.start_haproxy();
    s.kill(1, 1, &daemon);
    daemon.kill();
    let daemon = Daemon::start(&cfg, 1);
    s.revive(1, 1, &daemon);
    let rows = s.wait_settled(&daemon);
    daemon.stop();
    assert!(s.smtp.mails().is_empty(), "{:?}", s.smtp.mails());
    assert!(s.hook_bodies().is_empty(), "{:?}", s.hook_bodies());
    // Both channels' firings (the DOWN and the degraded notice) and their
    // resolves are recorded as cancelled, with why.
    let noted = |text: &str| {
        rows.iter()
            .filter(|r| r["state"] == "cancelled" && r["note"].as_str().unwrap().contains(text))
            .count()
    };
    assert_eq!(noted("resolved within the group wait"), 4, "{rows:?}");
    assert_eq!(noted("undone within the group wait"), 4, "{rows:?}");
}

#[test]
fn a_backend_that_lost_both_servers_is_one_critical_page_and_no_orphan_resolve() {
    let Some(mut s) = Stack::new("be_pair", 2) else {
        return;
    };
    let cfg = s.write_config(
        "2s",
        "",
        &format!("{}{}", s.mail_channel(), s.hook_channel()),
    );
    let daemon = Daemon::start(&cfg, 1);
    s.start_haproxy();
    // Both killed within a few ms: degraded, two DOWNs and "no server available".
    for n in 0..2 {
        let mut c = s.origins[n].1.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
    s.wait_events(1, "srv_down", 1, &daemon);
    s.wait_events(2, "srv_down", 1, &daemon);
    let fired = s.smtp.wait_mails(1);
    // One comes back: the backend resolves, and s2, still DOWN, is owed its page.
    s.revive(1, 1, &daemon);
    s.smtp.wait_mails(2);
    s.revive(2, 1, &daemon);
    let rows = s.wait_settled(&daemon);
    daemon.stop();

    let mails = s.smtp.mails();
    let subjects = subjects(&mails);
    assert_eq!(mails.len(), 3, "{subjects:?}\n{rows:?}");
    assert!(
        subjects[0].starts_with(
            "[hapwatch] CRITICAL be_pair on 127.0.0.1: no server available (s1, s2 DOWN)"
        ),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[hapwatch] DOWN be_pair/s2 on 127.0.0.1")
            && subjects[1].ends_with("(+1 more)"),
        "{subjects:?}"
    );
    assert!(
        subjects[2].starts_with("[hapwatch] RESOLVED be_pair/s2 on 127.0.0.1: UP again after"),
        "{subjects:?}"
    );
    assert_eq!(mails[1]["in_reply_to"], fired[0]["message_id"]);
    assert_eq!(mails[2]["in_reply_to"], mails[1]["message_id"]);
    // People read it: the zone is named, evidence is text, no JSON, no epoch numbers.
    let body = fired[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with("CRITICAL be_pair on 127.0.0.1: no server available"),
        "{body}"
    );
    assert!(body.contains(" CET"), "{body}");
    assert!(!body.contains('{') && !body.contains("_ms"), "{body}");
    let second = mails[1]["body"].as_str().unwrap();
    assert!(
        second.contains("\nRESOLVED be_pair on 127.0.0.1: server s1 is UP (s2 still DOWN) after"),
        "{second}"
    );

    let hooks = s.hook_bodies();
    assert_eq!(
        statuses(&hooks),
        [
            "firing backend_down",
            "firing server_down",
            "resolved server_down"
        ],
        "{hooks:?}"
    );
    assert_eq!(hooks[0]["version"], 2);
    assert_eq!(hooks[0]["severity"], "critical");
    assert_eq!(hooks[1]["incidents"][1]["kind"], "backend_down");
    assert_eq!(hooks[1]["incidents"][1]["status"], "resolved");
    // s1's DOWN and the degraded notice were superseded and resolved silently.
    assert!(rows.iter().any(|r| r["state"] == "superseded"), "{rows:?}");
    assert!(rows.iter().any(|r| r["state"] == "cancelled"
        && r["status"] == "resolved"
        && r["note"].as_str().unwrap().contains("superseded")));
}

#[test]
fn a_channel_added_by_a_reload_gets_the_next_firing_and_its_resolve() {
    let Some(mut s) = Stack::new("be_api", 2) else {
        return;
    };
    let cfg = s.write_config("1s", "", &s.hook_channel());
    let mut daemon = Daemon::start(&cfg, 1);
    s.start_haproxy();
    s.write_config(
        "1s",
        "",
        &format!("{}{}", s.hook_channel(), s.mail_channel()),
    );
    // check-config says what the reload will change, against what the daemon runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let said = loop {
        let said = hapwatch(&["check-config", cfg.to_str().unwrap()]);
        if said.contains("  reload ") || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        said.contains("reload    would change the daemon's channels")
            && said.contains("added mail; removed -; changed -"),
        "{said}"
    );
    daemon.signal("-HUP");
    daemon.wait_reloads(1);
    assert!(daemon.try_seen("added=mail"), "{}", daemon.seen.join("\n"));
    s.kill(1, 1, &daemon);
    s.smtp.wait_mails(1);
    s.revive(1, 1, &daemon);
    s.smtp.wait_mails(2);
    s.wait_settled(&daemon);
    let log = daemon.stop();
    let mails = s.smtp.mails();
    assert_eq!(mails.len(), 2, "{:?}", subjects(&mails));
    assert_eq!(
        statuses(&s.hook_bodies()),
        ["firing server_down", "resolved server_down"]
    );
    assert!(
        !log.iter().any(|l| l.contains("no longer configured")),
        "{log:?}"
    );
}

#[test]
fn one_down_server_is_one_notice_and_degraded_follows_flapping_and_silences() {
    let Some(mut s) = Stack::new("be_api", 3) else {
        return;
    };
    // No wait: each change is its own message, so every notice is counted.
    let cfg = s.write_config(
        "0s",
        "[incidents]\nflap_changes = 4\nflap_quiet = \"1h\"\n",
        &s.hook_channel(),
    );
    let mut daemon = Daemon::start(&cfg, 1);
    s.start_haproxy();
    // One of three DOWN: 1/3 is over the 25 % share, yet one notice.
    s.kill(3, 1, &daemon);
    let first = s.hooks.wait_accepted(1);
    let body: Value = serde_json::from_str(&first[0].1).unwrap();
    assert_eq!(body["incidents"].as_array().unwrap().len(), 1, "{body}");
    assert!(body["title"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] DOWN be_api/s3 on 127.0.0.1 ("));
    // Five changes make it flapping; more are absorbed.
    s.revive(3, 1, &daemon);
    s.kill(3, 2, &daemon);
    s.revive(3, 2, &daemon);
    s.kill(3, 3, &daemon);
    s.revive(3, 3, &daemon);
    s.kill(3, 4, &daemon);
    s.revive(3, 4, &daemon);
    s.wait_settled(&daemon);
    // A silenced server's DOWN makes no degraded notice either.
    hapwatch(&[
        "silence",
        "add",
        "--db",
        &s.db_arg(),
        "--backend",
        "be_api",
        "--server",
        "s2",
        "--for",
        "1h",
        "--reason",
        "deploy",
    ]);
    daemon.wait_health("the silence read", |h| h["silences_active"] == 1);
    s.kill(2, 1, &daemon);
    let rows = s.wait_settled(&daemon);
    daemon.stop();

    let kinds = statuses(&s.hook_bodies());
    assert_eq!(
        kinds,
        [
            "firing server_down",
            "resolved server_down",
            "firing server_down",
            "resolved server_down",
            "firing flapping"
        ],
        "{rows:?}"
    );
    assert!(rows
        .iter()
        .any(|r| r["state"] == "silenced" && r["note"].as_str().unwrap().contains("deploy")));
    let degraded = json_lines(&[
        "incidents",
        "--db",
        &s.db_arg(),
        "--backend",
        "be_api",
        "--since",
        "1h",
        "--json",
    ]);
    // Degraded opened only with the first two DOWNs, folded into their notices.
    let opened = degraded
        .iter()
        .filter(|i| i["kind"] == "backend_degraded")
        .count();
    assert_eq!(opened, 2, "{degraded:?}");
}

/// A self-signed relay certificate as OpenSSL 3 makes it (CA:TRUE), for 127.0.0.1.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (cert, key)
}

const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";

/// A daemon on UDP (port 0) mailing through the relay at `smtp`.
fn mail_config(dir: &Path, smtp: u16, ca: &Path) -> PathBuf {
    ConfigBuilder::new(dir)
        .set("notify", "group_wait", "\"0s\"")
        .set("notify", "retry_min", "\"100ms\"")
        .udp()
        .relay_mail("mail", smtp, ca)
        .write()
}

#[test]
fn a_relays_own_self_signed_certificate_in_ca_file_is_trusted() {
    if !crate::util::smtp::aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "relay");
    let smtp = Smtp::start(0, &cert, &key, &dir.path().join("mails.jsonl"));
    let cfg = mail_config(dir.path(), smtp.port, &cert);
    let out = hapwatch(&["test-alert", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.trim(), "mail: sent");
    let daemon = Daemon::start(&cfg, 1);
    send_udp(daemon.port(0), &[DOWN.to_vec()]);
    let mails = smtp.wait_mails(2);
    daemon.stop();
    assert!(mails[1]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] DOWN be_x/s1"));
    assert_eq!(mails[1]["tls"], true);
    assert_eq!(mails[1]["login"], "hapwatch");
}

#[test]
fn a_wrong_relay_certificate_is_a_clear_error_and_a_failed_row_not_a_retry_storm() {
    if !crate::util::smtp::aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "relay");
    let (other, _) = self_signed(dir.path(), "someone-else");
    let smtp = Smtp::start(0, &cert, &key, &dir.path().join("mails.jsonl"));
    let cfg = mail_config(dir.path(), smtp.port, &other);

    let (text, _) = hapwatch_fails(&["test-alert", "--config", cfg.to_str().unwrap()]);
    for want in [
        "mail: FAILED (permanent",
        "127.0.0.1:",
        "is not trusted",
        "it presented subject \"CN=relay\", issuer \"CN=relay\", SHA-256 ",
        "ca_file",
        "CN=someone-else",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }

    let daemon = Daemon::start(&cfg, 1);
    send_udp(daemon.port(0), &[DOWN.to_vec()]);
    let db = dir.path().join("h.db");
    let rows = wait_outbox_state(&["--db", db.to_str().unwrap()], "failed", &daemon);
    let log = daemon.stop();
    let failed: Vec<&Value> = rows.iter().filter(|r| r["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert_eq!(failed[0]["attempts"], 1, "failed at once, not retried");
    assert!(failed[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("SHA-256"));
    assert_eq!(
        log.iter().filter(|l| l.contains("is not trusted")).count(),
        1,
        "logged once: {log:?}"
    );
    assert!(smtp.mails().is_empty());
    assert_eq!(
        smtp.auth_attempts(),
        0,
        "no credential went to an untrusted server"
    );
}
