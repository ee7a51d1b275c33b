//! A real SMTP server for the tests: Debian's aiosmtpd (tests/integration/smtp_server.py),
//! STARTTLS and AUTH required, with a test CA made by openssl.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub fn aiosmtpd_available() -> bool {
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
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
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

pub struct Smtp {
    child: Child,
    out: PathBuf,
    /// Where it listens (the kernel's pick when started on port 0).
    pub port: u16,
}

impl Smtp {
    pub fn start(port: u16, cert: &Path, key: &Path, out: &Path) -> Smtp {
        Smtp::start_mode(port, cert, key, out, "starttls")
    }

    /// `mode`: "starttls" or "tls" (implicit TLS).
    pub fn start_mode(port: u16, cert: &Path, key: &Path, out: &Path, mode: &str) -> Smtp {
        Smtp::start_with(port, cert, key, out, mode, 0)
    }

    /// STARTTLS, answering the first message's DATA only after `stall_s` seconds.
    pub fn start_slow(port: u16, cert: &Path, key: &Path, out: &Path, stall_s: u32) -> Smtp {
        Smtp::start_with(port, cert, key, out, "starttls", stall_s)
    }

    fn start_with(
        port: u16,
        cert: &Path,
        key: &Path,
        out: &Path,
        mode: &str,
        stall_s: u32,
    ) -> Smtp {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/integration/smtp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args([cert, key, out])
            .arg(mode)
            .arg(stall_s.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("smtp_server.py said {line:?}"));
        Smtp {
            child,
            out: out.to_owned(),
            port,
        }
    }

    pub fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// How many times a client tried to authenticate.
    pub fn auth_attempts(&self) -> usize {
        let mut path = self.out.as_os_str().to_owned();
        path.push(".auth");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    }

    pub fn wait_mails(&self, n: usize) -> Vec<Value> {
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
