//! Debian's Alertmanager (`prometheus-alertmanager`), clustered on loopback:
//! real instances gossiping their notification logs, as an on-call team runs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    child: Child,
    pub port: u16,
}

impl Alertmanager {
    /// `n` instances peered with each other, notifying the webhook at
    /// `127.0.0.1:hook/hook` (resolved too); None if not installed (a failure
    /// under HAPWATCH_E2E=1). `resolve_timeout` is how long an alert not
    /// posted again stays firing.
    pub fn cluster(
        dir: &Path,
        n: usize,
        hook: u16,
        resolve_timeout: &str,
    ) -> Option<Vec<Alertmanager>> {
        if !super::installed(&[ALERTMANAGER]) {
            return None;
        }
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: {resolve_timeout}\n\
                 route:\n  receiver: hook\n  group_by: [alertname, host, backend, server]\n  \
                 group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: hook\n    webhook_configs:\n      \
                 - url: http://127.0.0.1:{hook}/hook\n        send_resolved: true\n"
            ),
        )
        .unwrap();
        let cluster: Vec<u16> = (0..n).map(|_| super::free_port()).collect();
        let mut all = Vec::new();
        for (i, gossip) in cluster.iter().enumerate() {
            let port = super::free_port();
            let storage = dir.join(format!("am{i}"));
            let mut cmd = Command::new(ALERTMANAGER);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--cluster.listen-address=127.0.0.1:{gossip}"))
                .arg(format!("--cluster.advertise-address=127.0.0.1:{gossip}"))
                // The second instance waits this long for the first one's
                // notification before sending its own.
                .arg("--cluster.peer-timeout=5s")
                .arg("--cluster.settle-timeout=2s")
                .arg("--log.level=warn");
            for (j, peer) in cluster.iter().enumerate() {
                if j != i {
                    cmd.arg(format!("--cluster.peer=127.0.0.1:{peer}"));
                }
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            all.push(Alertmanager { child, port });
        }
        for am in &all {
            am.wait_ready();
        }
        // Ready and peered: each lists the other as a member.
        for am in &all {
            let deadline = Instant::now() + Duration::from_secs(30);
            while am.status()["cluster"]["peers"]
                .as_array()
                .map_or(0, Vec::len)
                < n
            {
                assert!(
                    Instant::now() < deadline,
                    "Alertmanager cluster did not form"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(all)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && super::http_get(self.port, "/-/ready").0 == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager on {} not ready",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&super::http_get(self.port, "/api/v2/status").1).unwrap_or_default()
    }

    /// The alerts it holds (`/api/v2/alerts`, active or not).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let body = super::http_get(self.port, "/api/v2/alerts").1;
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// Where hapwatch posts to it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v2/alerts", self.port)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
