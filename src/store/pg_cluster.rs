//! A throwaway PostgreSQL cluster for a test process: initdb into a
//! temporary directory, a server on a unix socket there only (no TCP), and
//! durability off (`fsync=off`: the tests lose nothing they need). A
//! watchdog stops the server and removes the directory when the test
//! process is gone, however it ends. Also included by the integration tests.
//! Under HAPWATCH_E2E (as CI sets it) a cluster that cannot start fails the
//! test asking for it; elsewhere that test is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Cluster {
    /// The socket directory (and the data directory's parent).
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
}

/// PostgreSQL's programs: the newest Debian installs, else whatever is on PATH.
fn program(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs PostgreSQL's programs as `postgres` when we are root (initdb refuses root).
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Cluster {
    /// Starts a cluster, or says why not (PostgreSQL not installed, initdb failed).
    pub fn start() -> Result<Cluster, String> {
        let initdb = program("initdb");
        let postgres = program("postgres");
        if !postgres.exists() && !initdb.is_absolute() {
            return Err("PostgreSQL is not installed (no initdb)".into());
        }
        let root = is_root();
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hapwatch-pg-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if root {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status();
            if !owned.is_ok_and(|s| s.success()) {
                return Err(format!("cannot give {} to postgres", dir.display()));
            }
        }
        let data = dir.join("data");
        let out = as_owner(&initdb, root)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", initdb.display()))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = 5432;
        // The server, and a watchdog that stops it (fast shutdown) and removes
        // the directory once this process is gone.
        let server = format!(
            "{} -D {} -k {} -p {port} -c listen_addresses= -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            postgres.display(),
            data.display(),
            dir.display()
        );
        let owner = if root {
            "setpriv --reuid=postgres --regid=postgres --clear-groups "
        } else {
            ""
        };
        let script = format!(
            "{owner}{server} >{log} 2>&1 & pg=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 1; done; \
             kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
            log = dir.join("server.log").display(),
            parent = std::process::id(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let cluster = Cluster {
            dir,
            port,
            user: "postgres".into(),
        };
        // The server says "ready" in its pid file once it takes connections
        // (the socket appears earlier, while it still refuses them).
        let pid_file = data.join("postmaster.pid");
        let ready = || {
            std::fs::read_to_string(&pid_file)
                .is_ok_and(|t| t.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(cluster.dir.join("server.log"));
                return Err(format!(
                    "postgres did not start: {}",
                    log.unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// A key=value connection string for `dbname` on this cluster.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={dbname}",
            self.dir.display(),
            self.port,
            self.user
        )
    }

    /// The cluster of this test process, started by the first caller; None
    /// (said once) where PostgreSQL cannot run and HAPWATCH_E2E is not set.
    pub fn shared() -> Option<&'static Cluster> {
        static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
        CLUSTER
            .get_or_init(|| match Cluster::start() {
                Ok(c) => Some(c),
                Err(why) => {
                    assert!(
                        std::env::var_os("HAPWATCH_E2E").is_none(),
                        "HAPWATCH_E2E=1 but PostgreSQL cannot run: {why}"
                    );
                    eprintln!("skipped on PostgreSQL: {why}");
                    None
                }
            })
            .as_ref()
    }

    /// A fresh database: its key=value connection string.
    pub fn database(&self) -> String {
        static CREATED: AtomicU32 = AtomicU32::new(0);
        let name = format!("scratch_{}", CREATED.fetch_add(1, Relaxed));
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .and_then(|mut admin| admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("a database on the test cluster");
        self.url(&name)
    }
}
