//! `hapwatch serve`: the daemon. Sockets (tokio tasks) → a bounded queue →
//! the parse/aggregate thread → the writer thread → SQLite.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::{Config, ListenerConfig};
use crate::incidents::Engine;
use crate::ingest::listen::Listen;
use crate::ingest::{tcp, udp, unix, Batch, Sink, BATCH_MESSAGES};
use crate::pipeline::{Processor, TimeSource};
use crate::stats::{Snapshot, Stats};
use crate::store::writer::{IngestRow, Retention, WriteOp, Writer};

/// A reloaded parser and config, waiting for the pipeline thread to pick up.
type Reload = Arc<Mutex<Option<(Arc<hapwatch_parsers::Parser>, Config)>>>;

/// How long shutdown waits for a store that refuses writes.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where a reloaded config goes: the pipeline (formats, zone, routing) and
/// delivery (the channels' senders).
struct Reloads {
    pipeline: Reload,
    store: mpsc::SyncSender<WriteOp>,
    channels: tokio::sync::watch::Sender<Vec<crate::notify::ChannelConfig>>,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The hapwatch config (TOML); defaults apply without one.
    #[arg(long, value_name = "FILE", env = "HAPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where to receive syslog (repeatable); replaces the config's listeners.
    /// udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH. Default udp://127.0.0.1:5140.
    #[arg(long = "listen", value_name = "URL")]
    pub listen: Vec<Listen>,
    /// The SQLite file (default: the config's, else hapwatch.db in the state directory).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub formats: crate::formats::FormatArgs,
    /// How often the daemon logs and stores its own counters (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stats_interval: Option<Duration>,
    /// Messages waiting for the parser before new ones are dropped (default 65536).
    #[arg(long)]
    pub queue: Option<usize>,
    /// Serve /healthz, /metrics and /health/haproxy here (e.g. 127.0.0.1:9140).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
}

impl ServeArgs {
    /// The config file with this command line's overrides.
    fn config(&self) -> anyhow::Result<Config> {
        // As the CLI: --config, $HAPWATCH_CONFIG, else the package's file (without --db).
        let file = self.config.clone().or_else(|| {
            self.db
                .is_none()
                .then(crate::config::system_config)
                .flatten()
        });
        let mut c = Config::load(file.as_deref())?;
        if !self.listen.is_empty() {
            c.listen = self
                .listen
                .iter()
                .cloned()
                .map(ListenerConfig::new)
                .collect();
        }
        if let Some(db) = &self.db {
            c.storage.path = Some(db.clone());
        }
        self.formats.apply(&mut c.parse);
        if let Some(i) = self.stats_interval {
            c.daemon.stats_interval = i;
        }
        if let Some(q) = self.queue {
            c.daemon.queue = q.max(1);
        }
        if let Some(addr) = self.http {
            c.http.listen = Some(addr);
        }
        Ok(c)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    raise_open_files();
    let config = args.config()?;
    let parser = Arc::new(crate::formats::parser_for(&config.parse)?);
    let db = config.db_path();
    // One daemon per store: a second one stops here, before touching any socket.
    let mut guard = crate::store::guard::StoreGuard::acquire(&db)?;
    let conn = crate::store::open_write(&db)?;
    guard.watch()?;
    tracing::info!(db = %db.display(), window = ?config.storage.window, "storing");
    let stats = Arc::new(Stats::default());
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let writer = Writer::spawn_waking(
        conn,
        Some(Retention {
            windows: config.storage.retain_windows,
            events: config.storage.retain_events,
            samples: config.storage.samples_kept(),
        }),
        stats.writer_counters(),
        Some(outbox_wake.clone()),
    );
    // `queue` counts messages; the channel holds batches of up to BATCH_MESSAGES.
    let observed = Arc::new(crate::observe::Observed::default());
    let (tx, rx) = mpsc::sync_channel::<Batch>((config.daemon.queue / BATCH_MESSAGES).max(4));
    let reload: Reload = Arc::default();
    let (engine, outbox) = {
        // Carry on where the last run stopped: open incidents, each server's
        // last state, and the notifications owed.
        let conn = crate::store::open_read(&db)?;
        let since = crate::timezone::now_ms() - config.storage.retain_events.as_millis() as i64;
        let (next_id, open, fleet) = crate::store::incidents::restore(&conn, since)
            .context("cannot read the open incidents")?;
        if !open.is_empty() {
            tracing::info!(open = open.len(), "incidents still open from the last run");
        }
        let (waiting, unreadable) = crate::store::outbox::waiting(&conn)?;
        if !unreadable.is_empty() {
            tracing::error!(rows = ?unreadable, "outbox rows in their group wait cannot be read back; marked failed");
            let ops = unreadable
                .into_iter()
                .map(|id| crate::notify::OutboxOp::Settle {
                    id,
                    state: crate::notify::RowState::Failed,
                    note: "its change could not be read back after a restart".into(),
                    message: None,
                })
                .collect();
            let _ = writer.tx.send(WriteOp::Incidents(Vec::new(), ops));
        }
        let outbox = crate::notify::group::Restored {
            now_ms: crate::timezone::now_ms(),
            legacy_max: crate::store::outbox::legacy_max(&conn)?,
            next_row: crate::store::outbox::next_id(&conn)?,
            waiting,
            sent: crate::store::outbox::sent_firings(&conn, since)?,
            withheld: crate::store::outbox::withheld_firings(&conn, since)?,
        };
        if !outbox.waiting.is_empty() {
            tracing::info!(
                rows = outbox.waiting.len(),
                "notifications still in their group wait from the last run"
            );
        }
        (
            Engine::new(config.incidents.clone(), next_id, open, fleet)
                .with_host_limit(config.limits.hosts)
                .with_server_idle(config.limits.route_idle),
            outbox,
        )
    };
    let mut reconcile_tx = None;
    // Delivery tells the pipeline which channels fail: incidents of their own.
    let (health_tx, health_rx) = mpsc::channel();
    let processor = {
        let mut p = Processor::new(
            parser,
            &config,
            writer.tx.clone(),
            stats.clone(),
            TimeSource::Live,
        )
        .with_engine(engine, crate::store::open_read(&db)?, outbox)
        .with_channel_health(health_rx)
        .with_observed(observed.clone());
        if let (true, Some(host)) = (config.reconcile.enabled(), config.reconcile.host.clone()) {
            let (tx, rx) = mpsc::sync_channel(4);
            let (health_tx, health_rx) = mpsc::channel();
            reconcile_tx = Some((tx, health_tx));
            p = p.with_reconcile(rx, host, health_rx);
        }
        let (stats, store, reload) = (stats.clone(), writer.tx.clone(), reload.clone());
        let interval = config.daemon.stats_interval;
        let baseline = (stats.snapshot(), crate::timezone::now_ms());
        std::thread::Builder::new()
            .name("hapwatch-pipeline".into())
            .spawn(move || process(&mut p, rx, &stats, &store, interval, &reload, baseline))
            .context("cannot start the pipeline thread")?
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    if let Some(addr) = config.http.listen {
        let listener = rt
            .block_on(crate::http::bind(addr))
            .with_context(|| format!("cannot bind the HTTP server on {addr}"))?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the HTTP endpoints are reachable from the network");
        }
        tracing::info!(http = %listener.local_addr()?, "serving /healthz, /metrics, /health/haproxy");
        let state = Arc::new(crate::http::State {
            observed: observed.clone(),
            stats: stats.clone(),
            started_ms: crate::timezone::now_ms(),
        });
        rt.spawn(crate::http::serve(
            listener,
            state,
            config.limits.http_connections,
            config.limits.http_idle,
        ));
    }
    if let Some((tx, health)) = reconcile_tx {
        tracing::info!(every = ?config.reconcile.interval, "reconciling with HAProxy's stats");
        rt.spawn(crate::reconcile::run(config.reconcile.clone(), tx, health));
    }
    let (channels_tx, channels_rx) = tokio::sync::watch::channel(config.channel.clone());
    record_channels(&writer.tx, &config);
    let delivery = rt.spawn(crate::notify::outbox::run(
        db.clone(),
        channels_rx,
        config.notify.clone(),
        writer.tx.clone(),
        outbox_wake,
        stats.notifications_failed.clone(),
        health_tx,
    ));
    if config.channel.is_empty() {
        tracing::info!("no notification channel configured: incidents go to this log only");
    }
    let result = rt.block_on(listen_until_signal(
        &args,
        config,
        tx,
        stats.clone(),
        Reloads {
            pipeline: reload,
            store: writer.tx.clone(),
            channels: channels_tx,
        },
        &guard,
    ));
    delivery.abort();
    // A store that refuses writes (a full disk) must not hold the exit past
    // systemd's stop timeout: after this, what it refuses is counted as lost.
    writer.stop_by(Instant::now() + STOP_GRACE);
    // The sockets are closed: the pipeline drains the queue, closes every window and stops.
    rt.shutdown_timeout(Duration::from_secs(1));
    let pipeline = processor.join();
    writer.finish();
    // Held until the last write: no replay or second daemon mid-drain.
    drop(guard);
    log_totals(&stats.snapshot());
    if pipeline.is_err() {
        anyhow::bail!("the pipeline thread failed; windows still open were lost");
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// Open files up to the hard limit: the connection caps of `[limits]` then
/// leave descriptors for delivery (SMTP, webhooks) and the store.
#[allow(unsafe_code)] // libc has no safe getrlimit/setrlimit
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let soft = lim.rlim_cur;
            // "Unlimited" is refused for open files: the kernel's own cap is the most.
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|n| n.trim().parse::<libc::rlim_t>().ok())
                .unwrap_or(1 << 20);
            lim.rlim_cur = lim.rlim_max.min(nr_open);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(
                    from = soft,
                    to = lim.rlim_max,
                    "raised the open files limit"
                );
            }
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HAPWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .try_init();
}

/// Binds every listener, then waits for SIGINT/SIGTERM (stop) and SIGHUP (reload).
async fn listen_until_signal(
    args: &ServeArgs,
    config: Config,
    tx: mpsc::SyncSender<Batch>,
    stats: Arc<Stats>,
    reloads: Reloads,
    guard: &crate::store::guard::StoreGuard,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    // Unix socket files to remove at exit.
    let mut bound_sockets: Vec<std::path::PathBuf> = Vec::new();
    for l in config.listeners() {
        if let Listen::Udp(addr) | Listen::Tcp(addr) = &l.url {
            if !addr.ip().is_loopback() && l.allow.is_empty() {
                tracing::warn!(listen = %l.url, "anyone who reaches this address can send logs (and forge DOWN/UP): set `allow` to HAProxy's networks");
            }
        }
        let sink = Sink::new(tx.clone(), stats.clone(), stats.listener(l.url.to_string()));
        match &l.url {
            Listen::Udp(addr) => {
                let (sockets, granted) = udp::bind(*addr, l.sockets, l.recv_buffer)
                    .with_context(|| format!("cannot bind {}", l.url))?;
                let bound = sockets[0].local_addr()?;
                log_buffer(&l, granted);
                tracing::info!(listen = %format!("udp://{bound}"), sockets = sockets.len(), "listening");
                for s in sockets {
                    if let Some(inode) = crate::ingest::kernel::socket_inode(&s) {
                        sink.listener
                            .udp_inodes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(inode);
                    }
                    tasks.spawn(udp::run(s, l.allow.clone(), sink.clone()));
                }
            }
            Listen::Tcp(addr) => {
                let listener = tcp::bind(*addr)
                    .await
                    .with_context(|| format!("cannot bind {}", l.url))?;
                tracing::info!(listen = %format!("tcp://{}", listener.local_addr()?), "listening");
                let limits = tcp::Limits {
                    connections: config.limits.tcp_connections,
                    idle: config.limits.tcp_idle,
                };
                tasks.spawn(tcp::run(listener, l.allow.clone(), sink, limits));
            }
            Listen::Unix(path) => {
                if !l.allow.is_empty() {
                    anyhow::bail!(
                        "{}: `allow` does not apply to a unix socket (use socket_mode)",
                        l.url
                    );
                }
                let gid = match &l.socket_group {
                    Some(g) => Some(unix::group_id(g).with_context(|| {
                        format!(
                            "{}: socket_group {g:?} is not a group on this machine",
                            l.url
                        )
                    })?),
                    None => None,
                };
                let (socket, granted) = unix::bind(path, l.socket_mode, gid, l.recv_buffer)
                    .with_context(|| format!("cannot bind {}", l.url))?;
                bound_sockets.push(path.clone());
                log_buffer(&l, granted);
                tracing::info!(listen = %l.url, "listening");
                tasks.spawn(unix::run(socket, sink));
            }
        }
    }
    drop(tx);
    sd_ready();

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut running = config;
    let mut failure = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            e = store_failure(guard, &stats) => {
                tracing::error!(error = %e, "the store is unusable; stopping rather than accept what cannot be kept");
                stats.set_store_error(e.clone());
                failure = Some(e);
                break;
            }
            _ = hup.recv() => {
                if let Some(next) = reload_config(args, &running, &reloads) {
                    running = next;
                }
            }
        }
    }
    tracing::info!("shutting down");
    // The kernel forgets a socket's drop count when it closes: read it first.
    let _ = stats.snapshot();
    tasks.shutdown().await;
    for path in bound_sockets {
        let _ = std::fs::remove_file(path);
    }
    match failure {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// Resolves when the store can no longer be used: its file deleted or
/// replaced, or the writer finding it corrupt or read-only. Checked every 2 s.
async fn store_failure(guard: &crate::store::guard::StoreGuard, stats: &Stats) -> String {
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

fn log_buffer(l: &ListenerConfig, granted: usize) {
    // Linux reports twice the usable size it granted.
    if granted / 2 < l.recv_buffer {
        tracing::warn!(
            listen = %l.url, requested = l.recv_buffer, granted = granted / 2,
            hint = %format!("sysctl -w net.core.rmem_max={}; to keep it, copy /usr/share/doc/hapwatch/examples/60-hapwatch-sysctl.conf into /etc/sysctl.d/", l.recv_buffer),
            "the kernel granted a smaller receive buffer than recv_buffer: raise net.core.rmem_max to avoid drops under bursts"
        );
    } else {
        tracing::info!(listen = %l.url, recv_buffer = granted / 2, "receive buffer");
    }
}

/// SIGHUP: formats, the timezone, routing and channels apply at once;
/// listeners and the database path need a restart, which is said in the log.
fn reload_config(args: &ServeArgs, running: &Config, reloads: &Reloads) -> Option<Config> {
    let next = args
        .config()
        .and_then(|c| Ok((Arc::new(crate::formats::parser_for(&c.parse)?), c)));
    match next {
        Ok((parser, config)) => {
            if config.db_path() != running.db_path()
                || format!("{:?}", config.listeners()) != format!("{:?}", running.listeners())
                || config.storage.window != running.storage.window
            {
                tracing::warn!("listeners, storage path and window size change only on restart");
            }
            let diff = crate::notify::ChannelDiff::against(
                &crate::notify::fingerprints(&running.channel),
                &config.channel,
            );
            tracing::info!(
                formats = parser.custom_formats().len(),
                channels = config.channel.len(),
                added = %diff.added.join(","),
                removed = %diff.removed.join(","),
                changed = %diff.changed.join(","),
                "config reloaded"
            );
            reloads.channels.send_replace(config.channel.clone());
            record_channels(&reloads.store, &config);
            *reloads.pipeline.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((parser, config.clone()));
            Some(config)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "config reload failed; keeping the running config");
            None
        }
    }
}

/// Stores which channels delivery now uses, so `check-config` can say what a
/// reload would change.
fn record_channels(store: &mpsc::SyncSender<WriteOp>, config: &Config) {
    let channels = crate::notify::fingerprints(&config.channel);
    let _ = store.send(WriteOp::Channels(channels, crate::timezone::now_ms()));
}

/// Tells systemd (Type=notify) that the sockets are bound.
fn sd_ready() {
    sd_notify(b"READY=1");
}

/// A message to systemd's notification socket, when there is one.
fn sd_notify(msg: &[u8]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Ok(s) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = s.send_to(msg, path);
    }
}

/// Half the watchdog period systemd asks for (WatchdogSec=), if it asks.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec / 2))
}

/// The pipeline thread: parse and aggregate each message; once a second,
/// close due windows; every stats interval, log and store the counters.
fn process(
    p: &mut Processor,
    rx: mpsc::Receiver<Batch>,
    stats: &Stats,
    store: &mpsc::SyncSender<WriteOp>,
    stats_interval: Duration,
    reload: &Mutex<Option<(Arc<hapwatch_parsers::Parser>, Config)>>,
    baseline: (Snapshot, i64),
) {
    const TICK: Duration = Duration::from_secs(1);
    // The pipeline thread pets systemd's watchdog: a stuck pipeline gets restarted.
    let watchdog = watchdog_interval();
    let mut next_pet = Instant::now();
    let mut next_tick = Instant::now() + TICK;
    let mut next_stats = Instant::now() + stats_interval;
    let mut steps = crate::timezone::StepWatch::new(crate::timezone::now_ms(), Instant::now());
    // Taken before any socket is bound, so the first interval misses nothing.
    let (mut prev, mut prev_at) = baseline;
    let mut handled = 0u32;
    loop {
        // Grouped notifications are due between ticks: wake for them too.
        let group_due = p
            .next_group_deadline()
            .map(|t| Duration::from_millis((t - crate::timezone::now_ms()).max(0) as u64));
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(group_due.map_or(wait, |g| g.min(wait))) {
            Ok(batch) => {
                for m in batch.iter() {
                    p.handle(m.bytes, m.peer, batch.received_ms, m.oversized);
                }
                handled += 1;
                // Reading the clock costs; under load, look at it every 16 batches.
                if !handled.is_multiple_of(16) {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if p.next_group_deadline()
            .is_some_and(|t| t <= crate::timezone::now_ms())
        {
            p.flush_groups(crate::timezone::now_ms());
        }
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        next_tick = now + TICK;
        if let Some(delta_ms) = steps.check(crate::timezone::now_ms(), now) {
            tracing::warn!(
                step = %humantime::format_duration(Duration::from_secs((delta_ms.unsigned_abs() + 500) / 1000)),
                direction = %if delta_ms > 0 { "forward" } else { "back" },
                "system clock stepped; timers moved with it"
            );
            p.clock_stepped(delta_ms);
        }
        if let Some(every) = watchdog {
            if now >= next_pet {
                sd_notify(b"WATCHDOG=1");
                next_pet = now + every;
            }
        }
        if let Some((parser, config)) = reload.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.reconfigure(parser, &config);
            tracing::info!("reloaded config applied to the pipeline");
        }
        p.tick(crate::timezone::now_ms());
        if now >= next_stats {
            next_stats = now + stats_interval;
            let at = crate::timezone::now_ms();
            let snap = stats.snapshot();
            report(&prev, &snap, at - prev_at, store, stats);
            (prev, prev_at) = (snap, at);
        }
    }
    p.finish();
    let at = crate::timezone::now_ms();
    report(&prev, &stats.snapshot(), at - prev_at, store, stats);
}

/// Logs one interval's counters and stores them as a row of `ingest_stats`.
fn report(
    prev: &Snapshot,
    now: &Snapshot,
    interval_ms: i64,
    store: &mpsc::SyncSender<WriteOp>,
    stats: &Stats,
) {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let by_reason: serde_json::Map<String, serde_json::Value> = now
        .parse_errors
        .iter()
        .zip(&prev.parse_errors)
        .filter(|((_, n), (_, p))| n > p)
        .map(|((k, n), (_, p))| ((*k).to_owned(), (n - p).into()))
        .collect();
    let listeners: Vec<serde_json::Value> = now
        .listeners
        .iter()
        .map(|(name, rx, bytes, denied, drops)| {
            let before = prev.listeners.iter().find(|l| &l.0 == name);
            let b = |f: fn(&(String, u64, u64, u64, u64)) -> u64| before.map_or(0, f);
            serde_json::json!({
                "listener": name,
                "received": d(*rx, b(|l| l.1)),
                "bytes": d(*bytes, b(|l| l.2)),
                "denied": d(*denied, b(|l| l.3)),
                "socket_drops": d(*drops, b(|l| l.4)),
            })
        })
        .collect();
    let row = IngestRow {
        ts_ms: crate::timezone::now_ms(),
        interval_ms,
        received: d(now.received, prev.received),
        bytes: d(now.bytes, prev.bytes),
        parsed: d(now.parsed, prev.parsed),
        traffic: d(now.traffic, prev.traffic),
        events: d(now.events, prev.events),
        parse_errors: d(now.parse_errors_total(), prev.parse_errors_total()),
        oversized: d(now.oversized, prev.oversized),
        denied: d(now.denied, prev.denied),
        queue_drops: d(now.queue_drops, prev.queue_drops),
        socket_drops: d(now.socket_drops, prev.socket_drops),
        rows_written: d(now.rows_written, prev.rows_written),
        detail: serde_json::json!({ "parse_errors": by_reason, "listeners": listeners })
            .to_string(),
    };
    tracing::info!(
        received = row.received, bytes = row.bytes, parsed = row.parsed, traffic = row.traffic,
        events = row.events, parse_errors = row.parse_errors, queue_drops = row.queue_drops,
        socket_drops = row.socket_drops, denied = row.denied, oversized = row.oversized,
        rows_written = row.rows_written, by_reason = %serde_json::Value::Object(by_reason),
        "ingest"
    );
    if let Some(sample) = stats.take_sample() {
        tracing::warn!(%sample, "a message hapwatch could not parse (one sample per interval)");
    }
    let _ = store.send(WriteOp::Ingest(row));
}

fn log_totals(s: &Snapshot) {
    tracing::info!(
        received = s.received, bytes = s.bytes, parsed = s.parsed, traffic = s.traffic,
        events = s.events, parse_errors = s.parse_errors_total(), queue_drops = s.queue_drops,
        socket_drops = s.socket_drops, denied = s.denied, oversized = s.oversized,
        rows_written = s.rows_written, write_errors = s.write_errors, rows_rejected = s.rows_rejected,
        tcp_refused = s.refused,
        notifications_failed = s.notifications_failed, by_reason = %s.parse_errors_text(","),
        "totals"
    );
}
