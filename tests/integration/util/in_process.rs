//! A daemon started inside the test process (`hapwatch::daemon`), on
//! sockets bound at port 0 and handed to it: no port race, and waits are on
//! its state (counters, the store), never on its log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hapwatch::counters::Stats;
use hapwatch::daemon::{Addresses, Control, Daemon, DaemonError};

pub struct InProcess {
    pub addresses: Addresses,
    pub db: std::path::PathBuf,
    /// Added to the system's wall clock: a step is a store here.
    pub clock_offset_ms: Arc<std::sync::atomic::AtomicI64>,
    control: Control,
    stats: Arc<Stats>,
    run: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
}

impl InProcess {
    /// Starts a daemon from a config's text (listen on port 0 to let the kernel pick).
    pub fn start(toml: &str) -> InProcess {
        let config = hapwatch::config::Config::from_toml(toml).unwrap();
        config.validate().unwrap();
        let lock = hapwatch::daemon::lock(&config).unwrap();
        let bound = hapwatch::daemon::bind(&config).unwrap();
        let clock_offset_ms = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let wall = hapwatch::timezone::WallClock::offset(clock_offset_ms.clone());
        let daemon = Daemon::start_with_clock(config, lock, bound, wall).unwrap();
        InProcess {
            addresses: daemon.addresses().clone(),
            db: daemon.db().file().expect("a SQLite store").to_owned(),
            clock_offset_ms,
            control: daemon.control(),
            stats: daemon.stats(),
            run: Some(std::thread::spawn(move || {
                daemon.run(std::future::pending())
            })),
        }
    }

    pub fn udp_port(&self) -> u16 {
        self.addresses.udp().expect("no UDP listener").port()
    }

    /// Waits until `what` of the daemon's counters holds (60 s at most).
    pub fn wait(&self, what: &str, done: impl Fn(&hapwatch::counters::Snapshot) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.stats.snapshot();
            if done(&now) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not reached ({now:?})");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Steps the daemon's wall clock by `delta_ms` (as NTP or `date -s`
    /// would) and waits until its pipeline noticed.
    pub fn step_clock(&self, delta_ms: i64) {
        let seen = self.stats.snapshot().clock_steps;
        self.clock_offset_ms
            .fetch_add(delta_ms, std::sync::atomic::Ordering::Relaxed);
        self.wait("the clock step noticed", |s| s.clock_steps > seen);
    }

    /// Waits until the store says `sql` (one integer) is at least `n`.
    pub fn wait_stored(&self, what: &str, sql: &str, n: i64) {
        super::wait_stored(&self.db, what, sql, n, || {
            format!("counters {:?}", self.stats.snapshot())
        });
    }

    /// Waits until `n` messages were received and handled by the pipeline.
    pub fn wait_handled(&self, n: u64) {
        self.wait("messages handled", |s| {
            s.received >= n && s.parsed + s.parse_errors_total() + s.queue_drops >= n
        });
    }

    /// Stops it as SIGTERM would (sockets closed, queue drained, windows
    /// stored); its counters at the end.
    pub fn stop(mut self) -> hapwatch::counters::Snapshot {
        self.control.stop();
        let run = self.run.take().unwrap();
        run.join().unwrap().unwrap();
        self.stats.snapshot()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.control.stop();
            let _ = run.join();
        }
    }
}
