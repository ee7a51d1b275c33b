//! hapwatch: HAProxy's log stream as health alerts and a queryable history.
//!
//! The library behind the `hapwatch` binary. `cli` is the whole program;
//! `config` is public on its own so that the config loader can be fuzzed.

pub mod cli;
pub mod config;
pub mod daemon;
mod digest;
mod escape;
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
pub mod stats;
mod store;
mod timezone;
mod urls;
mod windows;
