//! hapwatch's integration tests, one binary (as ripgrep has it): each module
//! an area, `util` what they share (fixtures, a running daemon, the CLI, a
//! real SMTP server and HAProxy).

mod util;

mod alertmanager;
mod clock;
mod console;
mod email;
mod faults;
mod ha;
mod haproxy_e2e;
mod hardening;
mod http;
mod notify;
mod notify_e2e;
mod oncall;
mod parse_cli;
mod postgres;
mod replay;
mod serve;
