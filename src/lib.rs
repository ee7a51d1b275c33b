//! hapwatch: HAProxy's log stream as health alerts and a queryable history.
//!
//! The library behind the `hapwatch` binary. `cli` is the whole program;
//! `config` is public on its own so that the config loader can be fuzzed.

pub use hapwatch_engine::{
    escape, fasthash, figures, hist, incidents, rules, timezone, urls, windows,
};

pub mod cli;
pub mod config;
pub mod daemon;
mod digest;
mod formats;
mod http;
mod ingest;
mod notify;
mod observe;
mod pipeline;
mod reconcile;
pub mod stats;
mod store;
