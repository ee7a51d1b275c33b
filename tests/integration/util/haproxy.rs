//! A real HAProxy (Debian's `haproxy`) and backend servers to kill and restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// Runs HAProxy in the foreground with `global` lines, the shared defaults
/// (http mode, short timeouts) plus `defaults`, and the `proxies` sections.
pub fn start_haproxy(dir: &std::path::Path, global: &str, defaults: &str, proxies: &str) -> Child {
    let cfg = dir.join("haproxy.cfg");
    let text = format!(
        "global\n{global}defaults\n    mode http\n    log global\n{defaults}    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n{proxies}"
    );
    std::fs::write(&cfg, text).unwrap();
    Command::new(HAPROXY)
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A backend server we can kill and start again: Python's http.server.
pub fn origin(port: u16, dir: &std::path::Path) -> std::process::Child {
    let child = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}
