//! Email from a running daemon to a real SMTP server (Debian's aiosmtpd, with
//! STARTTLS and AUTH required): one mail when a server goes DOWN, one when it
//! is back, threaded; and a mail server that is down for a while loses nothing.
//!
//! Skipped when aiosmtpd is missing, unless HAPWATCH_E2E=1 (CI installs it).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

const DOWN: &[u8] = b"<129>Nov 23 01:23:33 haproxy[1]: Server be_x/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms. 3 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
const UP: &[u8] = b"<133>Nov 23 01:25:00 haproxy[1]: Server be_x/s1 is UP, reason: Layer7 check passed, code: 200, check duration: 3ms. 4 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";

fn aiosmtpd_available() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("HAPWATCH_E2E").is_none(),
            "HAPWATCH_E2E=1 but python3-aiosmtpd is missing"
        );
        eprintln!("skipped: python3-aiosmtpd is not installed");
    }
    ok
}

/// A test CA and a server certificate for 127.0.0.1 signed by it:
/// (CA certificate, server certificate, server key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        p("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=hapwatch test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

struct Smtp {
    child: Child,
    out: PathBuf,
}

impl Smtp {
    fn start(port: u16, cert: &Path, key: &Path, out: &Path) -> Smtp {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args([cert, key, out])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Smtp {
            child,
            out: out.to_owned(),
        }
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_mails(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let m = self.mails();
            if m.len() >= n {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} mails arrived",
                m.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, udp: u16, smtp: u16, ca: &Path) -> PathBuf {
    let cfg = dir.join("hapwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\npath = {:?}\n[notify]\nretry_min = \"100ms\"\nretry_max = \"300ms\"\n\
             [[listen]]\nurl = \"udp://127.0.0.1:{udp}\"\n\
             [[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp}\n\
             tls = \"starttls\"\nusername = \"hapwatch\"\npassword = \"s3cret\"\nca_file = {ca:?}\n\
             from = \"hapwatch <hapwatch@example.org>\"\nto = [\"ops@example.org\", \"oncall@example.org\"]\n",
            dir.join("h.db")
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
    let (udp, smtp_port) = (free_port(), free_port());
    let smtp = Smtp::start(smtp_port, &cert, &key, &dir.path().join("mails.jsonl"));
    let daemon = Daemon::start(&config(dir.path(), udp, smtp_port, &ca), 1);
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
        "[hapwatch] DOWN be_x/s1 on 127.0.0.1 (Layer4 timeout) — 3 active servers left"
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
}

#[test]
fn a_mail_server_down_for_a_while_gets_the_mail_once_it_is_back() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let (udp, smtp_port) = (free_port(), free_port());
    let mut daemon = Daemon::start(&config(dir.path(), udp, smtp_port, &ca), 1);
    send_udp(udp, &[DOWN.to_vec()]);
    daemon.wait_log("notification failed; will retry");
    let smtp = Smtp::start(smtp_port, &cert, &key, &dir.path().join("mails.jsonl"));
    smtp.wait_mails(1);
    daemon.wait_log("notification delivered");
    daemon.stop();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "delivered once");
    assert!(mails[0]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[hapwatch] DOWN be_x/s1"));
}
