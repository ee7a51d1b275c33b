//! One file per subcommand; this module only declares them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod parse;
mod serve;

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
    /// Run the daemon: receive HAProxy's syslog, parse it, alert to the log.
    Serve(serve::ServeArgs),
    /// Parse syslog messages (one per line) and print what hapwatch sees, as JSON lines.
    Parse(parse::ParseArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Parse(args) => parse::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
