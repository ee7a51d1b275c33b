//! `hapwatch stats`: traffic figures over any span, grouped and windowed,
//! computed from the stored windows (histograms merge exactly).
//! `hapwatch stats --self`: the daemon's own counters.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use super::common::{rfc3339, SpanArgs, StoreArgs};
use super::output::{local_time, Style, Table, DIM, RED, YELLOW};
use crate::store::queries::{self, WindowFilter};
use crate::windows::Counts;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Host,
    Frontend,
    Backend,
    Server,
    /// Requests by HTTP status code (halog -st).
    Status,
    /// Requests by normalised URL, per backend (halog -u).
    Url,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this backend.
    #[arg(long)]
    pub backend: Option<String>,
    /// Only this frontend.
    #[arg(long)]
    pub frontend: Option<String>,
    /// Only this load balancer.
    #[arg(long)]
    pub host: Option<String>,
    /// Only this server (backend/server, or a server name with --backend).
    #[arg(long)]
    pub server: Option<String>,
    /// One row per host, frontend, backend, server (backend/server), status
    /// code or URL (query dropped, ids folded to :id).
    #[arg(long, value_enum, default_value = "backend")]
    pub by: By,
    /// With --by url: the order of the rows, largest first.
    #[arg(long, value_enum, default_value = "requests")]
    pub sort: super::breakdown::UrlSort,
    /// With --by url: at most this many rows per window (0: all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub span: SpanArgs,
    /// Split the span into windows of this length (a multiple of the stored window).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub window: Option<Duration>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// The daemon's own counters instead of traffic.
    #[arg(long = "self")]
    pub self_: bool,
}

/// One output row: a group over one span.
struct Row {
    start_s: i64,
    end_s: i64,
    host: Option<String>,
    frontend: Option<String>,
    backend: Option<String>,
    server: Option<String>,
    counts: Counts,
}

pub fn run(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let (since_ms, until_ms) = args.span.resolve(now)?;
    let conn = args.store.open_read()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = if args.self_ {
        print_self(&conn, since_ms, args.json, &mut out)?
    } else if matches!(args.by, By::Status | By::Url) {
        breakdown(&conn, &args, since_ms, until_ms, &mut out)?
    } else {
        let rows = aggregate(&conn, &args, since_ms, until_ms)?;
        if args.json {
            rows.iter()
                .try_for_each(|r| writeln!(out, "{}", json_row(r)))
        } else {
            print_table(&rows, &args, &mut out)
                .and_then(|()| super::output::footer(&args.store, &mut out))
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn filter_of(args: &StatsArgs, since_ms: i64, until_ms: i64) -> anyhow::Result<WindowFilter> {
    let (since_s, until_s) = (since_ms.div_euclid(1000), (until_ms + 999).div_euclid(1000));
    let (backend, server) = match args.server.as_deref().map(|s| s.split_once('/')) {
        None => (args.backend.clone(), None),
        Some(Some((b, s))) => (Some(b.to_owned()), Some(s.to_owned())),
        Some(None) if args.backend.is_some() => (args.backend.clone(), args.server.clone()),
        Some(None) => anyhow::bail!(
            "--server {:?}: name it as BACKEND/SERVER, or give --backend",
            args.server.as_deref().unwrap_or("")
        ),
    };
    if args.by == By::Url {
        for (flag, set) in [
            ("--frontend", args.frontend.is_some()),
            ("--server", server.is_some()),
        ] {
            if set {
                anyhow::bail!("{flag} does not apply to --by url: URLs are kept per backend");
            }
        }
    }
    Ok(WindowFilter {
        since_s,
        until_s,
        host: args.host.clone(),
        frontend: args.frontend.clone(),
        backend,
        server,
    })
}

fn breakdown(
    conn: &crate::store::Db,
    args: &StatsArgs,
    since_ms: i64,
    until_ms: i64,
    out: &mut impl Write,
) -> anyhow::Result<std::io::Result<()>> {
    use super::breakdown as b;
    let filter = filter_of(args, since_ms, until_ms)?;
    let spans = spans_of(args, &filter);
    let windowed = args.window.is_some();
    Ok(if args.by == By::Status {
        let rows = b::statuses(conn, &filter, spans)?;
        if args.json {
            rows.iter()
                .try_for_each(|r| writeln!(out, "{}", b::status_json(r)))
        } else {
            b::print_statuses(&rows, windowed, out)
                .and_then(|()| super::output::footer(&args.store, out))
        }
    } else {
        let rows = b::urls(conn, &filter, spans, args.sort, args.limit)?;
        if args.json {
            rows.iter()
                .try_for_each(|r| writeln!(out, "{}", b::url_json(r)))
        } else {
            b::print_urls(&rows, windowed, out)
                .and_then(|()| super::output::footer(&args.store, out))
        }
    })
}

/// The span, or its `--window`s, that stored windows are added up into.
fn spans_of(args: &StatsArgs, filter: &WindowFilter) -> super::breakdown::Spans {
    super::breakdown::Spans {
        since_s: filter.since_s,
        until_s: filter.until_s,
        step: args.window.map(|w| w.as_secs().max(1) as i64),
    }
}

fn aggregate(
    conn: &crate::store::Db,
    args: &StatsArgs,
    since_ms: i64,
    until_ms: i64,
) -> anyhow::Result<Vec<Row>> {
    let filter = filter_of(args, since_ms, until_ms)?;
    let spans = spans_of(args, &filter);
    let mut rows: Vec<Row> = Vec::new();
    // Group key → index in `rows`; the key is built in a reused buffer so a
    // row of an existing group allocates nothing.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut key = String::new();
    queries::for_each_window(conn, &filter, |w| {
        let (start, end) = spans.of(w.start, w.span_s);
        let fields = [
            (args.by == By::Host).then_some(w.host),
            (args.by == By::Frontend).then_some(w.frontend),
            matches!(args.by, By::Backend | By::Server).then_some(w.backend),
            (args.by == By::Server).then_some(w.server),
        ];
        key.clear();
        key += &start.to_string();
        for f in fields.iter().flatten() {
            key.push('\0');
            key += f;
        }
        let i = match index.get(key.as_str()) {
            Some(i) => *i,
            None => {
                let [host, frontend, backend, server] = fields.map(|f| f.map(str::to_owned));
                rows.push(Row {
                    start_s: start,
                    end_s: end,
                    host,
                    frontend,
                    backend,
                    server,
                    counts: Counts::default(),
                });
                index.insert(key.clone(), rows.len() - 1);
                rows.len() - 1
            }
        };
        let c = &mut rows[i].counts;
        c.merge(&w.counts);
        c.t_total.merge_encoded(w.t_total);
        c.t_response.merge_encoded(w.t_response);
    })?;
    rows.sort_by(|a, b| {
        (a.start_s, &a.host, &a.frontend, &a.backend, &a.server).cmp(&(
            b.start_s,
            &b.host,
            &b.frontend,
            &b.backend,
            &b.server,
        ))
    });
    Ok(rows)
}

pub(super) use crate::figures::pct;

fn rate(r: &Row) -> f64 {
    let secs = (r.end_s - r.start_s).max(1) as f64;
    (r.counts.requests as f64 / secs * 100.0).round() / 100.0
}

fn json_row(r: &Row) -> Value {
    let c = &r.counts;
    let q = |p: f64| c.t_total.quantile(p);
    json!({
        "host": r.host, "frontend": r.frontend, "backend": r.backend, "server": r.server,
        "start": rfc3339(r.start_s * 1000), "end": rfc3339(r.end_s * 1000),
        "requests": c.requests, "req_per_s": rate(r),
        "s1xx": c.s1xx, "s2xx": c.s2xx, "s3xx": c.s3xx, "s4xx": c.s4xx, "s5xx": c.s5xx,
        "s_other": c.s_other, "retries": c.retries, "redispatches": c.redispatches,
        "term_client": c.term_client, "term_server": c.term_server, "term_proxy": c.term_proxy,
        "term_resource": c.term_resource, "term_other": c.term_other, "bytes": c.bytes,
        "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99),
        "tr_p95_ms": c.t_response.quantile(0.95),
    })
}

fn print_table(rows: &[Row], args: &StatsArgs, out: &mut impl Write) -> std::io::Result<()> {
    let style = Style::detect();
    if rows.is_empty() {
        return writeln!(out, "{}", style.paint("no traffic in this span", DIM));
    }
    let group = match args.by {
        By::Host => "HOST",
        By::Frontend => "FRONTEND",
        By::Backend => "BACKEND",
        By::Server => "SERVER",
        // Printed by cli::breakdown.
        By::Status => "STATUS",
        By::Url => "URL",
    };
    let mut columns = Vec::new();
    if args.window.is_some() {
        columns.push("START");
    }
    columns.extend([
        group, ">REQ", ">REQ/S", ">4XX%", ">5XX%", ">RETRIES", ">REDISP", ">P50", ">P95", ">P99",
    ]);
    let mut t = Table::new(&columns);
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v}ms"));
    for r in rows {
        let c = &r.counts;
        let name = match args.by {
            By::Host => r.host.clone(),
            By::Frontend => r.frontend.clone(),
            By::Backend => r.backend.clone(),
            By::Server => Some(format!(
                "{}/{}",
                r.backend.as_deref().unwrap_or(""),
                r.server.as_deref().unwrap_or("")
            )),
            By::Status | By::Url => None,
        }
        .unwrap_or_default();
        let p5 = pct(c.s5xx, c.requests);
        let mut cells = Vec::new();
        if args.window.is_some() {
            cells.push((local_time(r.start_s * 1000), ""));
        }
        cells.extend([
            (name, ""),
            (c.requests.to_string(), ""),
            (format!("{:.2}", rate(r)), ""),
            (format!("{:.2}", pct(c.s4xx, c.requests)), ""),
            (
                format!("{p5:.2}"),
                if p5 >= 5.0 {
                    RED
                } else if p5 >= 1.0 {
                    YELLOW
                } else {
                    ""
                },
            ),
            (
                c.retries.to_string(),
                if c.retries > 0 { YELLOW } else { "" },
            ),
            (c.redispatches.to_string(), ""),
            (ms(c.t_total.quantile(0.5)), ""),
            (ms(c.t_total.quantile(0.95)), ""),
            (ms(c.t_total.quantile(0.99)), ""),
        ]);
        t.row(cells);
    }
    t.print(&style, out)
}

fn print_self(
    conn: &crate::store::Db,
    since_ms: i64,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<std::io::Result<()>> {
    let rows = queries::ingest_stats(conn, since_ms)?;
    if json {
        return Ok(rows.iter().try_for_each(|r| {
            let detail: Value = serde_json::from_str(&r.detail).unwrap_or(Value::Null);
            writeln!(
                out,
                "{}",
                json!({
                    "ts": rfc3339(r.ts_ms), "interval_ms": r.interval_ms, "received": r.received,
                    "bytes": r.bytes, "parsed": r.parsed, "traffic": r.traffic, "events": r.events,
                    "parse_errors": r.parse_errors, "oversized": r.oversized, "denied": r.denied,
                    "queue_drops": r.queue_drops, "socket_drops": r.socket_drops,
                    "rows_written": r.rows_written, "detail": detail,
                })
            )
        }));
    }
    let style = Style::detect();
    if rows.is_empty() {
        return Ok(writeln!(
            out,
            "{}",
            style.paint(
                "no counters stored in this span (the daemon stores them every stats_interval)",
                DIM
            )
        ));
    }
    let mut t = Table::new(&[
        "TIME",
        ">RECEIVED",
        ">BYTES",
        ">TRAFFIC",
        ">EVENTS",
        ">PARSE ERR",
        ">DENIED",
        ">QUEUE DROP",
        ">SOCKET DROP",
        ">ROWS",
    ]);
    let alarm = |n: u64| if n > 0 { RED } else { "" };
    for r in &rows {
        t.row(vec![
            (local_time(r.ts_ms), ""),
            (r.received.to_string(), ""),
            (r.bytes.to_string(), ""),
            (r.traffic.to_string(), ""),
            (r.events.to_string(), ""),
            (
                r.parse_errors.to_string(),
                if r.parse_errors > 0 { YELLOW } else { "" },
            ),
            (r.denied.to_string(), ""),
            (r.queue_drops.to_string(), alarm(r.queue_drops)),
            (r.socket_drops.to_string(), alarm(r.socket_drops)),
            (r.rows_written.to_string(), ""),
        ]);
    }
    Ok(t.print(&style, out))
}
