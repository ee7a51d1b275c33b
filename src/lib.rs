//! hapwatch: HAProxy's log stream as health alerts and a queryable history.
//!
//! The library behind the `hapwatch` binary. `cli` is the whole program;
//! `config` is public so that the config loader can be fuzzed, and `daemon`
//! and `counters` so that tests can run a daemon in-process and watch it.
//! What hapwatch decides lives in `hapwatch-engine`, re-exported here.

pub use hapwatch_engine::{
    escape, fasthash, figures, hist, incidents, route, rules, timezone, urls, windows,
};

pub mod cli;
mod cluster;
pub mod config;
pub mod console;
pub mod counters;
pub mod daemon;
mod delivery;
mod digest;
pub mod heartbeat;
mod http;
mod ingest;
pub mod maintenance;
mod notify;
mod parser;
mod pipeline;
mod reconcile;
mod store;
mod view;
