//! The daemon: sockets (tokio tasks) → a bounded queue → the pipeline thread
//! → the writer thread → SQLite, with delivery, the HTTP endpoints and
//! reconciliation beside them. `Daemon::start` takes a config and sockets
//! already bound (`bind`, or port-0 sockets of a test), so a daemon can run
//! in-process; `run` serves until stopped and then drains everything.

mod bind;
mod os;
mod reload;
mod restore;
pub(crate) use restore::restore;
mod tick;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub use bind::{bind, BindError, Bound, BoundListener, Socket};
pub use os::{raise_open_files, ready};

use crate::config::Config;
use crate::counters::Stats;
use crate::ingest::listen::Listen;
use crate::ingest::{tcp, udp, unix, Batch, Sink, BATCH_MESSAGES};
use crate::pipeline::{Processor, TimeSource};
use crate::store::guard::StoreGuard;
use crate::store::writer::{Retention, Writer};
use crate::timezone::WallClock;

/// How long shutdown waits for a store that refuses writes.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Parser(#[from] crate::parser::ParserError),
    #[error("cannot read what the last run left in {path}: {source}")]
    Restore {
        path: String,
        source: crate::store::DbError,
    },
    #[error("cannot merge the local spool {path} into the shared store: {source}")]
    Spool {
        path: String,
        source: crate::store::DbError,
    },
    #[error("cannot start {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    /// The store file went away or refuses writes: stopping rather than
    /// accepting what cannot be kept.
    #[error("the store is unusable: {0}")]
    StoreFailed(String),
    #[error("the pipeline thread failed; windows still open were lost")]
    PipelineFailed,
}

/// The store, held by this process: one daemon per store. Taken before any
/// socket is bound, so that a second daemon on the same config stops before it
/// could take a socket (a unix socket file) from the first.
pub struct StoreLock {
    guard: StoreGuard,
}

/// Takes the store `config` names, or says which process holds it.
pub fn lock(config: &Config) -> Result<StoreLock, DaemonError> {
    Ok(StoreLock {
        guard: StoreGuard::acquire(&config.db_path())?,
    })
}

/// Where a started daemon receives.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// Each listener with its real port.
    pub listeners: Vec<Listen>,
    pub http: Option<SocketAddr>,
}

impl Addresses {
    /// The first UDP listener's address (most tests need just that).
    pub fn udp(&self) -> Option<SocketAddr> {
        self.listeners.iter().find_map(|l| match l {
            Listen::Udp(a) => Some(*a),
            _ => None,
        })
    }

    pub fn tcp(&self) -> Option<SocketAddr> {
        self.listeners.iter().find_map(|l| match l {
            Listen::Tcp(a) => Some(*a),
            _ => None,
        })
    }
}

enum Request {
    Stop,
    Reload(Box<Config>),
}

/// Stops or reloads a running daemon, from any thread.
#[derive(Clone)]
pub struct Control {
    tx: tokio::sync::mpsc::UnboundedSender<Request>,
}

impl Control {
    pub fn stop(&self) {
        let _ = self.tx.send(Request::Stop);
    }

    /// Applies a new config (what SIGHUP does): formats, zone, routing, channels.
    pub fn reload(&self, config: Config) {
        let _ = self.tx.send(Request::Reload(Box::new(config)));
    }
}

/// A started daemon: receiving, storing and delivering until `run` returns.
pub struct Daemon {
    rt: tokio::runtime::Runtime,
    config: Config,
    db: crate::store::Location,
    guard: StoreGuard,
    writer: Writer,
    stats: Arc<Stats>,
    pipeline: std::thread::JoinHandle<()>,
    listeners: tokio::task::JoinSet<()>,
    delivery: tokio::task::JoinHandle<()>,
    reloads: reload::Reloads,
    control: Control,
    requests: tokio::sync::mpsc::UnboundedReceiver<Request>,
    addresses: Addresses,
    unix_paths: Vec<PathBuf>,
    /// Several nodes on one store: the thread renewing the lease, and what stops it.
    lease: Option<(std::thread::JoinHandle<()>, mpsc::Sender<()>)>,
}

impl Daemon {
    /// Opens the store (one daemon per store), carries on from what the last
    /// run left, and starts receiving on `bound`.
    pub fn start(config: Config, lock: StoreLock, bound: Bound) -> Result<Daemon, DaemonError> {
        Daemon::start_with_clock(config, lock, bound, WallClock::system())
    }

    /// As `start`, reading the wall clock from `wall` (a test steps it).
    pub fn start_with_clock(
        config: Config,
        lock: StoreLock,
        bound: Bound,
        wall: WallClock,
    ) -> Result<Daemon, DaemonError> {
        let parser = Arc::new(crate::parser::parser_for(&config.parse)?);
        let db = config.store();
        // Named once: /healthz, the console and each delivery attempt say the same.
        let node = config.cluster.node();
        let stats = Arc::new(Stats::default());
        let outbox_wake = Arc::new(tokio::sync::Notify::new());
        // On PostgreSQL other nodes may share the store: one decides at a time.
        let role = matches!(db, crate::store::Location::Postgres(_)).then(|| {
            let group = config.cluster.group.as_str();
            crate::cluster::Role::new(node.as_str().into(), group.into(), config.cluster.lease)
        });
        let (guard, writer) =
            open_store(&config, lock, (&stats, role.clone()), &wall, &outbox_wake)?;
        let conn = db.open_read()?;
        let (engine, outbox, settle) = restore::restore(&config, &db, &conn, wall.now_ms())?;
        // Alone on the store this node decides from the start; with others,
        // it settles them once it takes its group's lease (and restores again).
        if role.is_none() && !settle.is_empty() {
            let _ = writer
                .tx
                .send(crate::store::writer::WriteOp::Incidents(Vec::new(), settle));
        }
        let observed = Arc::new(crate::view::Observed::default());
        let beat = (stats.clone(), observed.clone());
        let observed_for_repost = observed.clone();
        // `queue` counts messages; the channel holds batches of up to BATCH_MESSAGES.
        let (tx, rx) = mpsc::sync_channel::<Batch>((config.daemon.queue / BATCH_MESSAGES).max(4));
        let pipeline_reload = tick::Reload::default();
        // Delivery tells the pipeline which channels fail: incidents of their own.
        let (health_tx, health_rx) = mpsc::channel();
        let processor = Processor::new(
            parser,
            &config,
            writer.tx.clone(),
            stats.clone(),
            TimeSource::Live,
        )
        .with_wall_clock(wall.clone())
        .with_engine(engine, conn, outbox)
        .with_channel_health(health_rx)
        .with_observed(observed.clone());
        let processor = match &role {
            Some(role) => processor.with_cluster(role.clone(), db.clone(), &config),
            None => processor,
        };
        let (processor, reconcile) = with_reconcile(processor, &config);
        let pipeline = spawn_pipeline(
            processor,
            rx,
            (stats.clone(), writer.tx.clone(), pipeline_reload.clone()),
            wall.clone(),
            config.daemon.stats_interval,
        )?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| DaemonError::Start {
                what: "the runtime",
                source,
            })?;
        let http = match bound.http {
            Some(listener) => {
                let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
                let state = crate::http::State {
                    observed,
                    stats: stats.clone(),
                    started_ms: wall.now_ms(),
                    wall: wall.clone(),
                    node: node.clone(),
                    cluster: role.clone(),
                    console: crate::console::Pages::new(crate::console::Console {
                        node: node.clone(),
                        location: db.clone(),
                        window_s: config.storage.window.as_secs().max(1) as i64,
                    }),
                    auth: config.http.auth(),
                    loopback_hosts_only: loopback && !config.http.auth().required(),
                };
                Some(serve_http(&rt, listener, state, &config)?)
            }
            None => None,
        };
        if let Some((tx, health)) = reconcile {
            for r in config.reconcile.iter().filter(|r| r.enabled()) {
                tracing::info!(host = ?r.host, every = ?r.interval, "reconciling with HAProxy's stats");
                rt.spawn(crate::reconcile::run(r.clone(), tx.clone(), health.clone()));
            }
        }
        let (channels_tx, channels_rx) = tokio::sync::watch::channel(config.channel.clone());
        reload::record_channels(&writer.tx, &config, wall.now_ms());
        let wiring = crate::notify::outbox::Wiring {
            location: db.clone(),
            cfg: config.notify.clone(),
            store: writer.tx.clone(),
            wake: outbox_wake,
            failed: stats.notifications_failed.clone(),
            health: health_tx,
            wall: wall.clone(),
            ran: stats.outbox_ran_ms.clone(),
            node: node.into(),
            cluster: role.clone(),
            spool: role.is_some().then(|| config.db_path()),
        };
        rt.spawn(crate::notify::repost::run(
            crate::notify::repost::Wiring {
                location: db.clone(),
                stats: stats.clone(),
                observed: observed_for_repost,
                wall: wall.clone(),
            },
            channels_rx.clone(),
        ));
        let delivery = rt.spawn(crate::notify::outbox::run(wiring, channels_rx));
        rt.spawn(crate::heartbeat::run(
            config.heartbeat.clone(),
            beat.0,
            beat.1,
            wall.clone(),
        ));
        if config.channel.is_empty() {
            tracing::info!("no notification channel configured: incidents go to this log only");
        }
        let (listeners, addresses, unix_paths) =
            receive(&config, bound.listeners, &tx, &stats, &wall, rt.handle());
        // The listeners hold the only senders now: when they stop, the pipeline drains and ends.
        drop(tx);
        let (requests_tx, requests) = tokio::sync::mpsc::unbounded_channel();
        let lease = match role {
            Some(role) => {
                let (stop, stopped) = mpsc::channel();
                let thread =
                    crate::cluster::spawn_lease(db.clone(), role, stopped).map_err(|source| {
                        DaemonError::Start {
                            what: "the lease thread",
                            source,
                        }
                    })?;
                Some((thread, stop))
            }
            None => None,
        };
        Ok(Daemon {
            reloads: reload::Reloads {
                pipeline: pipeline_reload,
                store: writer.tx.clone(),
                channels: channels_tx,
                wall,
            },
            rt,
            config,
            db,
            guard,
            writer,
            stats,
            pipeline,
            listeners,
            delivery,
            control: Control { tx: requests_tx },
            requests,
            addresses: Addresses {
                listeners: addresses,
                http,
            },
            unix_paths,
            lease,
        })
    }

    /// `{pid, listeners, http, db}` as JSON (`serve --ready-file`), written
    /// whole and then renamed: a reader never sees half of it.
    pub fn write_ready_file(&self, path: &Path) -> std::io::Result<()> {
        let a = &self.addresses;
        let ready = serde_json::json!({
            "pid": std::process::id(),
            "listeners": a.listeners.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "http": a.http.map(|h| h.to_string()),
            "db": self.db.to_string(),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{ready}\n"))?;
        std::fs::rename(tmp, path)
    }

    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    pub fn db(&self) -> &crate::store::Location {
        &self.db
    }

    /// Serves until `Control::stop`, the store failing, or `until` completing
    /// (signals, for `serve`); then closes the sockets, drains the queue,
    /// closes every window and stops.
    pub fn run(self, until: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let Daemon {
            rt,
            mut config,
            guard,
            writer,
            stats,
            pipeline,
            mut listeners,
            delivery,
            reloads,
            mut requests,
            unix_paths,
            lease,
            ..
        } = self;
        let failure = rt.block_on(async {
            tokio::pin!(until);
            loop {
                tokio::select! {
                    () = &mut until => return None,
                    request = requests.recv() => match request {
                        Some(Request::Reload(next)) => {
                            config = reload::apply(std::mem::take(&mut config), *next, &reloads);
                        }
                        Some(Request::Stop) | None => return None,
                    },
                    e = store_failure(&guard, &stats) => {
                        tracing::error!(error = %e, "the store is unusable; stopping rather than accept what cannot be kept");
                        stats.set_store_error(e.clone());
                        return Some(e);
                    }
                }
            }
        });
        tracing::info!("shutting down");
        // The kernel forgets a socket's drop count when it closes: read it first.
        let _ = stats.snapshot();
        rt.block_on(listeners.shutdown());
        for path in &unix_paths {
            let _ = std::fs::remove_file(path);
        }
        delivery.abort();
        // The writer ends when the last sender of its queue is gone.
        drop(reloads);
        // A store that refuses writes (a full disk) must not hold the exit past
        // systemd's stop timeout: after this, what it refuses is counted as lost.
        writer.stop_by(Instant::now() + STOP_GRACE);
        // The sockets are closed: the pipeline drains the queue, closes every window and stops.
        rt.shutdown_timeout(Duration::from_secs(1));
        let pipeline = pipeline.join();
        writer.finish();
        // Given up once the last decision is committed: the next node need not wait it out.
        if let Some((thread, stop)) = lease {
            drop(stop);
            let _ = thread.join();
        }
        // Held until the last write: no replay or second daemon mid-drain.
        drop(guard);
        tick::log_totals(&stats.snapshot());
        if pipeline.is_err() {
            return Err(DaemonError::PipelineFailed);
        }
        match failure {
            Some(e) => Err(DaemonError::StoreFailed(e)),
            None => Ok(()),
        }
    }
}

/// The channels that carry HAProxy's stats to the pipeline, when `[reconcile]` is on.
type ReconcileFeed = (
    crate::reconcile::Latest,
    mpsc::Sender<(String, Option<String>)>,
);

/// Connects the pipeline to the reconcile tasks when `[reconcile]` is on.
fn with_reconcile(processor: Processor, config: &Config) -> (Processor, Option<ReconcileFeed>) {
    let polled = config.reconcile.iter().filter(|r| r.enabled()).count();
    if polled == 0 {
        return (processor, None);
    }
    let latest = crate::reconcile::Latest::default();
    let (health_tx, health_rx) = mpsc::channel();
    (
        processor.with_reconcile(latest.clone(), health_rx),
        Some((latest, health_tx)),
    )
}

/// The store for writing: the lock taken, the file watched, the writer thread
/// started (pruning by `wall`, waking delivery after each commit).
fn open_store(
    config: &Config,
    lock: StoreLock,
    (stats, role): (&Stats, Option<Arc<crate::cluster::Role>>),
    wall: &WallClock,
    outbox_wake: &Arc<tokio::sync::Notify>,
) -> Result<(StoreGuard, Writer), DaemonError> {
    let db = config.store();
    let mut guard = lock.guard;
    let conn = db.open_write()?;
    // The SQLite file is watched; a PostgreSQL store's health is its connection's.
    if db.file().is_some() {
        guard.watch()?;
    }
    tracing::info!(store = %db, window = ?config.storage.window, "storing");
    let counters = crate::store::writer::WriterCounters {
        cluster: role,
        ..stats.writer_counters()
    };
    let spool = match db {
        crate::store::Location::Postgres(_) => Some(open_spool(config, &conn, &counters, wall)?),
        crate::store::Location::Sqlite(_) => None,
    };
    let writer = Writer::spawn_waking(
        conn,
        Some(Retention {
            windows: config.storage.retain_windows,
            events: config.storage.retain_events,
            samples: config.storage.samples_kept(),
            wall: wall.clone(),
        }),
        counters,
        Some(outbox_wake.clone()),
        spool,
    );
    Ok((guard, writer))
}

/// The local spool a node on a shared store fails open to (`[storage]
/// path`); what a crash left spooled is merged before anything else.
fn open_spool(
    config: &Config,
    shared: &crate::store::Db,
    counters: &crate::store::writer::WriterCounters,
    wall: &WallClock,
) -> Result<crate::store::spool::Spool, DaemonError> {
    let path = config.db_path();
    let node = config.cluster.node();
    let mut spool =
        crate::store::spool::Spool::open(&path, config.storage.postgres_timeout, &node)?;
    let store = |source| DaemonError::Spool {
        path: path.display().to_string(),
        source,
    };
    if spool.pending().map_err(store)? {
        tracing::warn!(spool = %path.display(), "merging what the local spool kept from the last run");
        spool
            .merge_into(shared, counters, wall.now_ms())
            .map_err(store)?;
    }
    Ok(spool)
}

/// The pipeline thread, with what it shares: (counters, the store, reloads).
fn spawn_pipeline(
    mut processor: Processor,
    rx: mpsc::Receiver<Batch>,
    (stats, store, reload): (
        Arc<Stats>,
        mpsc::SyncSender<crate::store::writer::WriteOp>,
        tick::Reload,
    ),
    wall: WallClock,
    interval: Duration,
) -> Result<std::thread::JoinHandle<()>, DaemonError> {
    // Taken before anything is received, so the first interval misses nothing.
    let baseline = (stats.snapshot(), wall.now_ms());
    std::thread::Builder::new()
        .name("hapwatch-pipeline".into())
        .spawn(move || {
            let shared = tick::Shared {
                stats: &stats,
                store: &store,
                reload: &reload,
                wall: &wall,
            };
            tick::run(&mut processor, rx, shared, interval, baseline)
        })
        .map_err(|source| DaemonError::Start {
            what: "the pipeline thread",
            source,
        })
}

/// The HTTP endpoints on `listener`; where they answer.
fn serve_http(
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    state: crate::http::State,
    config: &Config,
) -> Result<SocketAddr, DaemonError> {
    let addr = listener.local_addr().map_err(|source| DaemonError::Start {
        what: "the HTTP server",
        source,
    })?;
    tracing::info!(console = %format!("http://{addr}/"), "serving the console, /healthz, /metrics, /health/haproxy");
    rt.spawn(crate::http::serve(
        listener,
        Arc::new(state),
        config.limits.http_connections,
        config.limits.http_idle,
    ));
    Ok(addr)
}

/// One task per socket, each feeding the pipeline's queue through its own sink.
fn receive(
    config: &Config,
    bound: Vec<BoundListener>,
    tx: &mpsc::SyncSender<Batch>,
    stats: &Arc<Stats>,
    wall: &WallClock,
    rt: &tokio::runtime::Handle,
) -> (tokio::task::JoinSet<()>, Vec<Listen>, Vec<PathBuf>) {
    let mut tasks = tokio::task::JoinSet::new();
    let (mut addresses, mut unix_paths) = (Vec::new(), Vec::new());
    for l in bound {
        let sink = Sink::new(
            tx.clone(),
            stats.clone(),
            stats.listener(l.config.url().to_string()),
            wall.clone(),
        );
        tracing::info!(listen = %l.url, "listening");
        addresses.push(l.url.clone());
        match l.socket {
            Socket::Udp(sockets) => {
                for s in sockets {
                    if let Some(inode) = crate::ingest::kernel::socket_inode(&s) {
                        sink.listener
                            .udp_inodes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(inode);
                    }
                    tasks.spawn_on(udp::run(s, l.config.allow().to_vec(), sink.clone()), rt);
                }
            }
            Socket::Tcp(listener) => {
                let limits = tcp::Limits {
                    connections: config.limits.tcp_connections,
                    idle: config.limits.tcp_idle,
                };
                tasks.spawn_on(
                    tcp::run(listener, l.config.allow().to_vec(), sink, limits),
                    rt,
                );
            }
            Socket::Unix(socket, path) => {
                unix_paths.push(path);
                tasks.spawn_on(unix::run(socket, sink), rt);
            }
        }
    }
    (tasks, addresses, unix_paths)
}

/// Resolves when the store can no longer be used: its file deleted or
/// replaced, or the writer finding it corrupt or read-only. Checked every 2 s.
async fn store_failure(guard: &StoreGuard, stats: &Stats) -> String {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(e) = stats.store_error() {
            return e;
        }
        if let Err(e) = guard.check() {
            return e.to_string();
        }
    }
}
