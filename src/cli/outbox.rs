//! `hapwatch outbox`: notifications waiting or given up (and sent, with --all).

use std::io::Write;
use std::process::ExitCode;

use super::common::{rfc3339, StoreArgs};
use super::output::{relative, Style, Table, DIM, RED, YELLOW};

#[derive(clap::Args, Debug)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Delivered ones too (newest 100).
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

struct Row {
    id: i64,
    incident: i64,
    channel: String,
    status: String,
    created: i64,
    attempts: i64,
    next: i64,
    delivered: Option<i64>,
    failed: Option<i64>,
    error: Option<String>,
}

pub fn run(args: OutboxArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let conn = args.store.open_read()?;
    let filter = if args.all {
        ""
    } else {
        "WHERE delivered_at IS NULL"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT id, incident_id, channel, status, created_at, attempts, next_attempt_at, delivered_at,
            failed_at, last_error FROM outbox {filter} ORDER BY id DESC LIMIT 100"
    ))?;
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                incident: r.get(1)?,
                channel: r.get(2)?,
                status: r.get(3)?,
                created: r.get(4)?,
                attempts: r.get(5)?,
                next: r.get(6)?,
                delivered: r.get(7)?,
                failed: r.get(8)?,
                error: r.get(9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &rows {
            let state = match (r.delivered, r.failed) {
                (Some(_), _) => "delivered",
                (_, Some(_)) => "failed",
                _ => "pending",
            };
            let v = serde_json::json!({
                "id": r.id, "incident": r.incident, "channel": r.channel, "status": r.status,
                "state": state, "created_at": rfc3339(r.created), "attempts": r.attempts,
                "next_attempt_at": (state == "pending").then(|| rfc3339(r.next)),
                "delivered_at": r.delivered.map(rfc3339), "last_error": r.error,
            });
            writeln!(out, "{v}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    if rows.is_empty() {
        writeln!(
            out,
            "{}",
            style.paint("nothing waiting: every notification was delivered", DIM)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "ID",
        "INCIDENT",
        "CHANNEL",
        "STATUS",
        "STATE",
        ">ATTEMPTS",
        "CREATED",
        "NEXT / DONE",
        "LAST ERROR",
    ]);
    for r in &rows {
        let (state, colour, when) = match (r.delivered, r.failed) {
            (Some(d), _) => ("delivered", "", relative(d, now)),
            (_, Some(f)) => ("failed", RED, relative(f, now)),
            _ => ("pending", YELLOW, relative(r.next, now)),
        };
        t.row(vec![
            (format!("#{}", r.id), ""),
            (format!("#{}", r.incident), ""),
            (r.channel.clone(), ""),
            (r.status.clone(), ""),
            (state.into(), colour),
            (r.attempts.to_string(), ""),
            (relative(r.created, now), DIM),
            (when, ""),
            (
                r.error
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(80)
                    .collect(),
                DIM,
            ),
        ]);
    }
    t.print(&style, &mut out)?;
    Ok(ExitCode::SUCCESS)
}
