//! `hapwatch serve`: flags → config → bound sockets → `daemon::Daemon`, with
//! SIGINT/SIGTERM as stop and SIGHUP as reload.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Config, ListenerConfig};
use crate::daemon::{Control, Daemon};
use crate::ingest::listen::Listen;

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
    pub formats: crate::parser::FormatArgs,
    /// How often the daemon logs and stores its own counters (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stats_interval: Option<Duration>,
    /// Messages waiting for the parser before new ones are dropped (default 65536).
    #[arg(long)]
    pub queue: Option<usize>,
    /// Serve the console, /healthz, /metrics and /health/haproxy here
    /// (default 127.0.0.1:9140; "" for none).
    #[arg(long, value_name = "ADDR", value_parser = str::parse::<crate::config::HttpListen>)]
    pub http: Option<crate::config::HttpListen>,
    /// Once receiving, write this JSON file: pid, each listener's address
    /// (port 0 made real), the HTTP address and the store; removed at exit.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
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
        if let Some(listen) = self.http {
            c.http.listen = listen;
        }
        Ok(c)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    crate::daemon::raise_open_files();
    let config = args.config()?;
    // One daemon per store: a second one stops here, before touching any socket.
    let lock = crate::daemon::lock(&config)?;
    let bound = crate::daemon::bind(&config)?;
    let daemon = Daemon::start(config, lock, bound)?;
    if let Some(path) = &args.ready_file {
        if let Err(e) = daemon.write_ready_file(path) {
            // Already receiving: drain what came in, then say why it stopped.
            daemon.control().stop();
            if let Err(drain) = daemon.run(std::future::pending()) {
                tracing::error!(error = %drain, "stopping");
            }
            return Err(e)
                .with_context(|| format!("cannot write the ready file {}", path.display()));
        }
    }
    // Bound, restored and written where asked: systemd may start what depends on it.
    crate::daemon::ready();
    let control = daemon.control();
    let result = daemon.run(signals(&args, control));
    if let Some(path) = &args.ready_file {
        let _ = std::fs::remove_file(path);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM; SIGHUP reloads the config file.
async fn signals(args: &ServeArgs, control: Control) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot handle signals; stop with SIGKILL");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => match args.config() {
                Ok(next) => control.reload(next),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "config reload failed; keeping the running config"),
            },
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
