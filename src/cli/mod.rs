//! One file per subcommand; this module only declares them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ack;
mod assets;
mod breakdown;
mod check_config;
mod common;
mod digest;
mod events;
mod import_haproxy;
mod incidents;
mod maintenance;
mod outbox;
pub(crate) mod output;
mod parse;
mod replay;
mod replay_after;
mod serve;
mod silence;
mod stats;
mod test_alert;

#[derive(Parser, Debug)]
#[command(
    name = "hapwatch",
    version,
    about = "HAProxy log stream → health alerts and incident history"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: receive HAProxy's syslog, store events and traffic windows.
    Serve(serve::ServeArgs),
    /// Incidents (server down, backend down, flapping, silence, …) with durations and MTTR.
    Incidents(incidents::IncidentsArgs),
    /// One incident: its timeline and the traffic before it opened.
    Incident(incidents::IncidentArgs),
    /// Per backend over a span (default 24h): incidents, downtime, volume, 5xx, p95, worst servers.
    Digest(digest::DigestArgs),
    /// Acknowledge an open incident: no more reminders, PagerDuty told, its resolve says who.
    Ack(ack::AckArgs),
    /// Take an acknowledgement back: reminders resume.
    Unack(ack::UnackArgs),
    /// Maintenance windows: incidents recorded, not notified; what is still wrong at the end is.
    Maintenance(maintenance::MaintenanceArgs),
    /// Hold notifications for a backend, server or host during a deploy.
    Silence(silence::SilenceArgs),
    /// Notifications waiting, retried or given up.
    Outbox(outbox::OutboxArgs),
    /// Send a test notification through each channel now.
    TestAlert(test_alert::TestAlertArgs),
    /// Stored health checks, state changes, backend and proxy events.
    Events(events::EventsArgs),
    /// Traffic figures (requests, status classes, retries, latency percentiles) over any span.
    Stats(stats::StatsArgs),
    /// Backfill the store from log files (plain or .gz) or standard input.
    Replay(replay::ReplayArgs),
    /// Parse syslog messages (one per line) and print what hapwatch sees, as JSON lines.
    Parse(parse::ParseArgs),
    /// HAProxy's mailers and email-alert directives as [[channel]] tables (TOML on stdout).
    ImportHaproxy(import_haproxy::ImportArgs),
    /// Validate a config file and show what it sets.
    CheckConfig(check_config::CheckConfigArgs),
    /// Write the man page and shell completions (for packaging).
    #[command(hide = true)]
    GenerateAssets(assets::AssetsArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Events(args) => events::run(args),
        Command::Silence(args) => silence::run(args),
        Command::Maintenance(args) => maintenance::run(args),
        Command::Ack(args) => ack::run_ack(args),
        Command::Unack(args) => ack::run_unack(args),
        Command::Digest(args) => digest::run(args),
        Command::Outbox(args) => outbox::run(args),
        Command::TestAlert(args) => test_alert::run(args),
        Command::Incidents(args) => incidents::run_list(args),
        Command::Incident(args) => incidents::run_one(args),
        Command::Stats(args) => stats::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Parse(args) => parse::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::ImportHaproxy(args) => import_haproxy::run(args),
        Command::GenerateAssets(args) => assets::run(args),
    }
}
