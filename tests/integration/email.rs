//! Email from a running daemon to a real SMTP server (Debian's aiosmtpd, with
//! STARTTLS and AUTH required): one mail when a server goes DOWN, one when it
//! is back, threaded; and a mail server that is down for a while loses nothing.
//!
//! Skipped when aiosmtpd is missing, unless HAPWATCH_E2E=1 (CI installs it).

use std::path::{Path, PathBuf};

use crate::util::smtp::*;
use crate::util::*;

const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

/// A daemon on UDP (port 0) mailing through the relay at `smtp`.
fn config(dir: &Path, smtp: u16, ca: &Path) -> PathBuf {
    let cfg = dir.join("hapwatch.toml");
    // The password comes from a private file, as a shared config would have it.
    let pw = dir.join("smtp-password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[storage]\npath = {:?}\n[notify]\nretry_min = \"100ms\"\nretry_max = \"300ms\"\n\
             [[listen]]\nurl = \"udp://127.0.0.1:0\"\n\
             [[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp}\n\
             tls = \"starttls\"\nusername = \"hapwatch\"\npassword = \"file:{}\"\nca_file = {ca:?}\n\
             from = \"hapwatch <hapwatch@example.org>\"\nto = [\"ops@example.org\", \"oncall@example.org\"]\n",
            dir.join("h.db"),
            pw.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_down_and_its_recovery_are_two_threaded_mails_over_starttls_with_auth() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let smtp = Smtp::start(0, &cert, &key, &dir.path().join("mails.jsonl"));
    let smtp_port = smtp.port;
    let daemon = Daemon::start(&config(dir.path(), smtp_port, &ca), 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    smtp.wait_mails(1);
    send_udp(udp, &[UP.to_vec()]);
    let mails = smtp.wait_mails(2);
    daemon.stop();
    assert_eq!(
        smtp.mails().len(),
        2,
        "exactly one DOWN and one resolved mail"
    );

    for m in &mails {
        assert_eq!(m["tls"], true, "STARTTLS was used");
        assert_eq!(m["login"], "hapwatch", "AUTH was used");
        assert_eq!(
            m["to"],
            serde_json::json!(["ops@example.org", "oncall@example.org"])
        );
    }
    assert_eq!(
        mails[0]["subject"],
        "[hapwatch] DOWN be_x/s1 on 127.0.0.1 (Layer4 timeout) — 3 of 4 servers left"
    );
    assert!(mails[1]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] RESOLVED be_x/s1 on 127.0.0.1"));
    assert_eq!(
        mails[1]["in_reply_to"], mails[0]["message_id"],
        "the resolve threads under its firing"
    );
    let body = mails[1]["body"].as_str().unwrap();
    assert!(
        body.contains("resolved") && body.contains("UP again"),
        "{body}"
    );
    // The timeline, as stored when the mail left.
    assert!(
        body.contains("Timeline of #") && body.contains("opened: server be_x/s1 is DOWN"),
        "{body}"
    );
    assert!(
        body.contains("Server be_x/s1 is UP, reason: Layer7 check passed"),
        "{body}"
    );
}

#[test]
fn a_mail_server_down_for_a_while_gets_the_mail_once_it_is_back() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let smtp_port = free_port();
    let mut daemon = Daemon::start(&config(dir.path(), smtp_port, &ca), 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_retry_pending();
    let smtp = Smtp::start(smtp_port, &cert, &key, &dir.path().join("mails.jsonl"));
    smtp.wait_mails(1);
    daemon.wait_delivered(1);
    let log = daemon.stop();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "delivered once");
    // Failures were logged, the password never.
    assert!(log.iter().any(|l| l.contains("notification failed")));
    assert!(
        !log.iter().any(|l| l.contains("s3cret")),
        "a secret reached the log"
    );
    assert!(mails[0]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] DOWN be_x/s1"));
}

#[test]
fn a_mail_server_slower_than_the_timeout_is_given_up_on_and_retried_once() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    // The first DATA is answered after 10 s; the channel waits 2 s.
    let smtp = Smtp::start_slow(0, &cert, &key, &dir.path().join("mails.jsonl"), 10);
    let smtp_port = smtp.port;
    let cfg = config(dir.path(), smtp_port, &ca);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "tls = \"starttls\"\n",
            "tls = \"starttls\"\ntimeout = \"2s\"\n",
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_retry_pending();
    smtp.wait_mails(1);
    daemon.wait_delivered(1);
    let log = daemon.stop();
    assert_eq!(smtp.mails().len(), 1, "the stalled attempt kept nothing");
    let failed = log
        .iter()
        .find(|l| l.contains("notification failed"))
        .unwrap();
    assert!(failed.contains("attempts=1"), "{failed}");
    let delivered = log
        .iter()
        .find(|l| l.contains("notification delivered"))
        .unwrap();
    assert!(delivered.contains("attempts=2"), "{delivered}");
}

#[test]
fn implicit_tls_works_too() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let smtp = Smtp::start_mode(0, &cert, &key, &dir.path().join("mails.jsonl"), "tls");
    let smtp_port = smtp.port;
    let cfg = config(dir.path(), smtp_port, &ca);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("tls = \"starttls\"", "tls = \"tls\"");
    std::fs::write(&cfg, text).unwrap();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    // That server speaks only TLS from the first byte: a mail arriving is the proof.
    let mails = smtp.wait_mails(1);
    daemon.stop();
    assert_eq!(mails[0]["login"], "hapwatch", "AUTH was used");
    assert!(mails[0]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] DOWN be_x/s1"));
}

#[test]
fn a_plain_relay_under_the_default_starttls_fails_with_a_hint_to_set_tls_none() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let relay = Smtp::start_mode(0, &cert, &key, &dir.path().join("mails.jsonl"), "plain");
    let smtp_port = relay.port;
    let cfg = dir.path().join("hapwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp_port}\n\
             from = \"hapwatch@example.org\"\nto = [\"ops@example.org\"]\n"
        ),
    )
    .unwrap();
    let (text, _) = hapwatch_fails(&["test-alert", "--config", cfg.to_str().unwrap()]);
    assert!(
        text.contains("FAILED (permanent") && text.contains("set tls = \"none\""),
        "{text}"
    );
    // With tls = "none", the same relay takes the mail.
    let plain = std::fs::read_to_string(&cfg).unwrap() + "tls = \"none\"\n";
    std::fs::write(&cfg, plain).unwrap();
    assert_eq!(
        hapwatch(&["test-alert", "--config", cfg.to_str().unwrap()]).trim(),
        "mail: sent"
    );
}

#[test]
fn digest_send_mails_the_digest_now_to_the_digest_channels() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let smtp = Smtp::start(0, &cert, &key, &dir.path().join("mails.jsonl"));
    let smtp_port = smtp.port;
    let cfg = config(dir.path(), smtp_port, &ca);
    let text = std::fs::read_to_string(&cfg).unwrap() + "[digest]\nchannels = [\"mail\"]\n";
    std::fs::write(&cfg, text).unwrap();
    let daemon = Daemon::start(&cfg, 1);
    let udp = daemon.port(0);
    send_udp(udp, &[DOWN.to_vec()]);
    smtp.wait_mails(1);
    daemon.stop();
    let out = hapwatch(&["digest", "--config", cfg.to_str().unwrap(), "--send"]);
    assert_eq!(out.trim(), "mail: sent");
    let mails = smtp.wait_mails(2);
    assert!(mails[1]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] digest "));
    assert!(
        mails[1]["body"].as_str().unwrap().contains("be_x"),
        "{mails:?}"
    );
}
