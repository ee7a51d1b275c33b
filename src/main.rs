//! hapwatch: HAProxy's log stream as health alerts and a queryable history.

mod cli;
mod config;
mod digest;
mod fasthash;
mod formats;
mod hist;
mod http;
mod incidents;
mod ingest;
mod notify;
mod observe;
mod pipeline;
mod reconcile;
mod rules;
mod stats;
mod store;
mod timezone;
mod windows;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // reqwest is built without a TLS provider of its own: ring, as lettre uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // The binary's edge: report the whole cause chain once.
            eprintln!("hapwatch: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
