//! `hapwatch events`: stored health checks, state changes, backend and proxy events.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::common::{rfc3339, SpanArgs, StoreArgs};
use super::output::{local_time, relative, Style, Table, DIM, GREEN, RED, YELLOW};
use crate::store::queries::{self, EventFilter, StoredEvent};

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this server.
    #[arg(long, value_name = "BACKEND/SERVER")]
    pub server: Option<String>,
    /// Only this backend (or frontend, for proxy events).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Only this load balancer.
    #[arg(long)]
    pub host: Option<String>,
    /// A kind (health_check, state_change, backend_down, other) or a template (srv_down, …).
    #[arg(long, value_name = "K")]
    pub kind: Option<String>,
    #[command(flatten)]
    pub span: SpanArgs,
    /// At most this many events: the newest.
    #[arg(long)]
    pub limit: Option<usize>,
    /// One JSON object per line: the event as `hapwatch parse` prints it, plus `ts` and `host`.
    #[arg(long)]
    pub json: bool,
}

/// What `--kind` takes: the stored kinds and every template of them.
pub const EVENT_KINDS: &[&str] = &[
    "health_check",
    "state_change",
    "backend_down",
    "other",
    "agent_check",
    "srv_down",
    "srv_up",
    "srv_stopping",
    "srv_going_maint",
    "srv_maint_was_down",
    "srv_enters_drain",
    "srv_leave_forced_maint",
    "srv_leave_maint",
    "srv_resolves_again",
    "srv_leave_forced_maint_remains",
    "srv_resolves_remains_maint",
    "srv_remains_forced_maint",
    "srv_leave_forced_drain",
    "srv_leave_drain",
    "srv_remains_drain",
    "srv_remains_forced_drain",
    "srv_dns_ready",
    "backend_no_server",
    "proxy_stopped",
    "proxy_hard_stopped",
    "proxy_started",
    "proxy_paused",
    "proxy_resumed",
    "proxy_stopping",
    "soft_stop_too_long",
    "process",
    "connect_from",
    "conn_error",
    "reconciliation",
    "haproxy_reload",
];

pub fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let (since_ms, until_ms) = args.span.resolve(now)?;
    // Without --until, include events stamped slightly ahead of this clock.
    let until_ms = if args.span.until.is_none() {
        i64::MAX
    } else {
        until_ms
    };
    if let Some(k) = &args.kind {
        super::output::known("--kind", k, EVENT_KINDS)?;
    }
    let mut filter = EventFilter {
        since_ms,
        until_ms,
        backend: args.backend.clone(),
        host: args.host.clone(),
        kind: args.kind.clone(),
        limit: args.limit,
        ..Default::default()
    };
    if let Some(s) = &args.server {
        let (b, s) = s
            .split_once('/')
            .with_context(|| format!("--server {s:?}: expected BACKEND/SERVER"))?;
        filter.backend = Some(b.to_owned());
        filter.server = Some(s.to_owned());
    }
    let conn = args.store.open_read()?;
    let events = queries::events(&conn, &filter)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = if args.json {
        events
            .iter()
            .try_for_each(|e| writeln!(out, "{}", Value::Object(json_row(e))))
    } else {
        print_table(&events, now, &mut out)
            .and_then(|()| super::output::footer(&args.store, &mut out))
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `ts` and `host` first, then the stored parse output.
pub fn json_row(e: &StoredEvent) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ts".into(), rfc3339(e.ts_ms).into());
    m.insert("host".into(), e.host.clone().into());
    if let Ok(Value::Object(parsed)) = serde_json::from_str(&e.json) {
        m.extend(parsed);
    }
    m
}

fn colour_of(e: &StoredEvent, message: &str) -> &'static str {
    match e.template.as_str() {
        "srv_down" | "backend_no_server" => RED,
        "srv_up" => GREEN,
        _ if e.kind == "state_change" => YELLOW,
        "health_check" | "agent_check" if message.contains(" failed") => YELLOW,
        _ => "",
    }
}

fn print_table(events: &[StoredEvent], now: i64, out: &mut impl Write) -> std::io::Result<()> {
    let style = Style::detect();
    if events.is_empty() {
        return writeln!(out, "{}", style.paint("no events in this span", DIM));
    }
    let mut t = Table::new(&["WHEN", "TIME", "HOST", "EVENT", "SERVER", "MESSAGE"]);
    for e in events {
        let message = serde_json::from_str::<Value>(&e.json)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| e.raw.clone());
        let target = match (&e.proxy, &e.server) {
            (Some(p), Some(s)) => format!("{p}/{s}"),
            (Some(p), None) => p.clone(),
            _ => "-".into(),
        };
        let colour = colour_of(e, &message);
        t.row(vec![
            (relative(e.ts_ms, now), DIM),
            (local_time(e.ts_ms), ""),
            (e.host.clone(), ""),
            (e.template.clone(), colour),
            (target, ""),
            (message, ""),
        ]);
    }
    t.print(&style, out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_captured_event_template_is_a_known_kind() {
        for stream in hapwatch_fixtures::streams() {
            for label in hapwatch_fixtures::labels(&stream) {
                let kind = label["kind"].as_str().unwrap_or_default();
                if kind == "http" || kind == "tcp" || kind.is_empty() {
                    continue;
                }
                for k in [kind, label["template"].as_str().unwrap_or_default()] {
                    assert!(super::EVENT_KINDS.contains(&k), "{stream}: {k}");
                }
            }
        }
    }
}
