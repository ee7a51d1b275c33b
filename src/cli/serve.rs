//! `hapwatch serve`: the daemon.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::ingest::listen::{Listen, DEFAULT_LISTEN};
use crate::ingest::udp;
use crate::stats::Stats;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Where to receive syslog (repeatable).
    #[arg(long = "listen", value_name = "URL", default_value = DEFAULT_LISTEN)]
    pub listen: Vec<Listen>,
    #[command(flatten)]
    pub formats: crate::formats::FormatArgs,
    /// How often the daemon logs its own counters.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,
    /// Messages waiting between the sockets and the parser before new ones are dropped.
    #[arg(long, default_value_t = 65_536)]
    pub queue: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let parser = Arc::new(args.formats.build_parser()?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(serve(args, parser))
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

async fn serve(args: ServeArgs, parser: Arc<hapwatch_parsers::Parser>) -> anyhow::Result<ExitCode> {
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(args.queue.max(1));
    let mut receivers = Vec::new();
    for l in &args.listen {
        let Listen::Udp(addr) = l;
        let socket = udp::bind(*addr)
            .await
            .with_context(|| format!("cannot bind udp://{addr}"))?;
        tracing::info!(listen = %format!("udp://{}", socket.local_addr()?), "listening");
        let (tx, stats) = (tx.clone(), stats.clone());
        receivers.push(tokio::spawn(
            async move { udp::run(socket, tx, &stats).await },
        ));
    }
    drop(tx);
    let parse = tokio::spawn(crate::pipeline::run(parser, rx, stats.clone()));

    let mut ticker = tokio::time::interval(args.stats_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => log_stats("ingest", &stats),
            _ = shutdown_signal() => break,
        }
    }
    tracing::info!("shutting down");
    // Stop the sockets, then let the parser drain what was already accepted.
    for r in &receivers {
        r.abort();
    }
    for r in receivers {
        let _ = r.await;
    }
    parse.await.context("parse stage failed")?;
    log_stats("totals", &stats);
    Ok(ExitCode::SUCCESS)
}

fn log_stats(what: &str, stats: &Stats) {
    let s = stats.snapshot();
    let errors: Vec<String> = s
        .parse_errors
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}:{n}"))
        .collect();
    tracing::info!(
        received = s.received, bytes = s.bytes, parsed = s.parsed, traffic = s.traffic,
        events = s.events, parse_errors = s.parse_errors_total(), queue_drops = s.queue_drops,
        oversized = s.oversized, by_reason = %errors.join(","),
        "{what}"
    );
    if let Some(sample) = stats.take_sample() {
        tracing::warn!(%sample, "a message hapwatch could not parse (one sample per interval)");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
