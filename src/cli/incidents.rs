//! `hapwatch incidents` (a list with durations and MTTR) and
//! `hapwatch incident ID` (timeline and evidence).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::common::{parse_time, rfc3339, StoreArgs};
use super::output::{local_time, relative, Style, Table, BOLD, DIM, GREEN, RED, YELLOW};
use crate::figures::compact_duration;
use crate::incidents::Severity;
use crate::store::incidents::{self, IncidentFilter, StoredIncident};
use crate::store::queries::{self, WindowFilter};
use crate::windows::Counts;

#[derive(clap::Args, Debug)]
pub struct IncidentsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Incidents active since (the forms of `events --since`).
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// And opened before (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this backend's.
    #[arg(long)]
    pub backend: Option<String>,
    /// Only this server's: BACKEND/SERVER.
    #[arg(long, value_name = "B/S")]
    pub server: Option<String>,
    /// Only this kind (server_down, backend_down, backend_degraded, flapping, rule, silence, operator, channel, reconcile, host_down).
    #[arg(long)]
    pub kind: Option<String>,
    /// This severity or worse (info, warning, critical).
    #[arg(long)]
    pub severity: Option<String>,
    /// The newest this many.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only those still open, whenever they opened.
    #[arg(long)]
    pub open: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct IncidentArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The incident, as `12` or `#12` (as the tables print it).
    #[arg(value_parser = super::common::hash_id)]
    pub id: i64,
    /// The incident, its timeline and evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn json_row(s: &StoredIncident, now: i64) -> Value {
    let i = &s.incident;
    json!({
        "id": i.id, "key": i.key, "kind": i.kind.as_str(), "severity": i.severity.as_str(),
        "host": i.host, "backend": i.backend, "server": i.server,
        "opened_at": rfc3339(i.opened_ms), "resolved_at": s.resolved_ms.map(rfc3339),
        "duration_s": (s.resolved_ms.unwrap_or(now) - i.opened_ms) / 1000,
        "summary": i.summary, "resolution": s.resolution, "detail": i.detail,
        "ack": i.ack.as_ref().map(|a| json!({
            "by": a.by, "reason": a.reason, "at": rfc3339(a.at_ms),
        })),
    })
}

fn write_out(result: std::io::Result<()>) -> anyhow::Result<ExitCode> {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn filter(args: &IncidentsArgs, now: i64) -> anyhow::Result<IncidentFilter> {
    use crate::incidents::Kind;
    let kind = match &args.kind {
        Some(k) => {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            super::output::known("--kind", k, &names)?;
            Kind::parse(k)
        }
        None => None,
    };
    let severity = match &args.severity {
        Some(s) => {
            super::output::known("--severity", s, &["info", "warning", "critical"])?;
            Severity::parse(s)
        }
        None => None,
    };
    let (mut backend, mut server) = (args.backend.clone(), None);
    if let Some(s) = &args.server {
        let (b, srv) = s
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("--server {s:?}: expected BACKEND/SERVER"))?;
        backend = Some(b.to_owned());
        server = Some(srv.to_owned());
    }
    Ok(IncidentFilter {
        since_ms: parse_time(&args.since, now)?,
        until_ms: args
            .until
            .as_deref()
            .map(|u| parse_time(u, now))
            .transpose()?,
        backend,
        server,
        kind,
        severity,
        open: args.open,
        limit: args.limit,
        ..Default::default()
    })
}

pub fn run_list(args: IncidentsArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let conn = args.store.open_read()?;
    let list = incidents::list(&conn, &filter(&args, now)?)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = if args.json {
        list.iter()
            .try_for_each(|s| writeln!(out, "{}", json_row(s, now)))
    } else {
        print_list(&list, now, &mut out).and_then(|()| super::output::footer(&args.store, &mut out))
    };
    write_out(result.and_then(|()| out.flush()))
}

fn print_list(list: &[StoredIncident], now: i64, out: &mut impl Write) -> std::io::Result<()> {
    let style = Style::detect();
    if list.is_empty() {
        return writeln!(out, "{}", style.paint("no incidents in this span", DIM));
    }
    let mut t = Table::new(&[
        "ID",
        "STATE",
        "SEVERITY",
        "OPENED",
        "WHEN",
        ">DURATION",
        "HOST",
        "SUMMARY",
    ]);
    for s in list {
        let i = &s.incident;
        let (state, colour) = match s.resolved_ms {
            Some(_) => ("resolved", GREEN),
            // Someone is on it: still open, no longer calling for attention.
            None if i.ack.is_some() => ("acked", YELLOW),
            None => (
                "open",
                if i.severity == Severity::Critical {
                    RED
                } else {
                    YELLOW
                },
            ),
        };
        t.row(vec![
            (format!("#{}", i.id), ""),
            (state.into(), colour),
            (
                i.severity.as_str().into(),
                if i.severity == Severity::Critical {
                    RED
                } else {
                    ""
                },
            ),
            (local_time(i.opened_ms), ""),
            (relative(i.opened_ms, now), DIM),
            (
                compact_duration(s.resolved_ms.unwrap_or(now) - i.opened_ms),
                "",
            ),
            (i.host.clone(), ""),
            (i.summary.clone(), ""),
        ]);
    }
    t.print(&style, out)?;
    // Mean time to resolve, per backend, over the resolved incidents listed.
    let mut per_backend: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for s in list.iter().filter(|s| s.incident.severity > Severity::Info) {
        if let (Some(r), Some(b)) = (s.resolved_ms, s.incident.backend.as_deref()) {
            let e = per_backend.entry(b).or_default();
            e.0 += r - s.incident.opened_ms;
            e.1 += 1;
        }
    }
    let open = list.iter().filter(|s| s.resolved_ms.is_none()).count();
    let mttr: Vec<String> = per_backend
        .iter()
        .map(|(b, (total, n))| format!("{b} {} ({n})", compact_duration(total / n)))
        .collect();
    let summary = format!(
        "{} incident{}, {open} open; MTTR: {}",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        if mttr.is_empty() {
            "-".to_owned()
        } else {
            mttr.join(", ")
        }
    );
    writeln!(out, "{}", style.paint(&summary, DIM))
}

/// Per-minute figures of the incident's server (or backend) in the ten minutes before it opened.
fn evidence(conn: &crate::store::Db, s: &StoredIncident) -> anyhow::Result<Vec<(i64, Counts)>> {
    let i = &s.incident;
    let Some(backend) = i.backend.clone() else {
        return Ok(Vec::new());
    };
    let opened_s = i.opened_ms / 1000;
    let mut minutes: BTreeMap<i64, Counts> = BTreeMap::new();
    queries::for_each_window(
        conn,
        &WindowFilter {
            since_s: opened_s - 600,
            until_s: opened_s + 60,
            host: Some(i.host.clone()),
            backend: Some(backend),
            server: i.server.clone(),
            frontend: None,
        },
        |w| {
            let c = minutes.entry(w.start.div_euclid(60) * 60).or_default();
            c.merge(&w.counts);
            c.t_total.merge_encoded(w.t_total);
        },
    )?;
    Ok(minutes.into_iter().collect())
}

pub fn run_one(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let conn = args.store.open_read()?;
    let Some(s) = incidents::get(&conn, args.id)? else {
        anyhow::bail!("no incident #{}", args.id);
    };
    let timeline = incidents::timeline(&conn, args.id)?;
    let evidence = evidence(&conn, &s)?;
    let deliveries = crate::store::outbox::of_incident(&conn, args.id)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = if args.json {
        let mut v = json_row(&s, now);
        v["timeline"] = timeline
            .iter()
            .map(|(ts, text)| json!({"ts": rfc3339(*ts), "text": text}))
            .collect();
        v["evidence"] = evidence
            .iter()
            .map(|(start, c)| {
                json!({"start": rfc3339(start * 1000), "requests": c.requests, "s5xx": c.s5xx,
                       "retries": c.retries, "p95_ms": c.t_total.quantile(0.95)})
            })
            .collect();
        v["deliveries"] = deliveries.iter().map(super::outbox::json).collect();
        writeln!(out, "{v}")
    } else {
        print_one(&s, &timeline, &evidence, &deliveries, now, &mut out)
    };
    write_out(result.and_then(|()| out.flush()))
}

fn print_one(
    s: &StoredIncident,
    timeline: &[(i64, String)],
    evidence: &[(i64, Counts)],
    deliveries: &[crate::store::outbox::Row],
    now: i64,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let style = Style::detect();
    let i = &s.incident;
    writeln!(
        out,
        "{}",
        style.paint(
            &format!("#{} {}", i.id, crate::escape::escape(&i.summary)),
            BOLD
        )
    )?;
    writeln!(
        out,
        "kind      {} ({})",
        i.kind.as_str(),
        i.severity.as_str()
    )?;
    writeln!(out, "host      {}", i.host)?;
    writeln!(
        out,
        "opened    {} ({})",
        local_time(i.opened_ms),
        relative(i.opened_ms, now)
    )?;
    match s.resolved_ms {
        Some(r) => writeln!(
            out,
            "resolved  {} after {}: {}",
            local_time(r),
            compact_duration(r - i.opened_ms),
            s.resolution.as_deref().unwrap_or("")
        )?,
        None => writeln!(
            out,
            "resolved  {} (open for {})",
            style.paint("not yet", YELLOW),
            compact_duration(now - i.opened_ms)
        )?,
    }
    // The evidence as the notifications put it (the JSON is in --json).
    for (label, line) in crate::notify::text::evidence(i, &crate::timezone::Zone::Local) {
        writeln!(
            out,
            "{:<9} {}",
            label.to_lowercase(),
            crate::escape::escape(&line)
        )?;
    }
    writeln!(out, "\n{}", style.paint("timeline", BOLD))?;
    for (ts, text) in timeline {
        writeln!(
            out,
            "  {}  {}",
            local_time(*ts),
            crate::escape::escape(text)
        )?;
    }
    if !evidence.is_empty() {
        writeln!(
            out,
            "\n{}",
            style.paint("traffic in the 10 minutes before", BOLD)
        )?;
        let mut t = Table::new(&["MINUTE", ">REQ", ">5XX%", ">RETRIES", ">P95"]);
        for (start, c) in evidence {
            let p5 = crate::figures::pct(c.s5xx, c.requests);
            t.row(vec![
                (local_time(start * 1000), ""),
                (c.requests.to_string(), ""),
                (format!("{p5:.2}"), if p5 >= 5.0 { RED } else { "" }),
                (c.retries.to_string(), ""),
                (
                    c.t_total
                        .quantile(0.95)
                        .map_or("-".into(), |v| format!("{v}ms")),
                    "",
                ),
            ]);
        }
        t.print(&style, out)?;
    }
    writeln!(out, "\n{}", style.paint("notifications", BOLD))?;
    if deliveries.is_empty() {
        return writeln!(
            out,
            "  {}",
            style.paint("none (no channel wanted it, or a silence held it)", DIM)
        );
    }
    for d in deliveries {
        let (state, _, when, why) = super::outbox::describe(d, now);
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        writeln!(
            out,
            "  {:<12} {:<9} {state} {when}{why} (attempts: {})",
            d.channel, d.status, d.attempts
        )?;
    }
    Ok(())
}
