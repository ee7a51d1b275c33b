//! `hapwatch outbox`: notifications waiting, queued, given up or not sent
//! (and why); every row with --all.

use std::io::Write;
use std::process::ExitCode;

use super::common::{rfc3339, StoreArgs};
use super::output::{relative, Style, Table, DIM, RED, YELLOW};
use crate::notify::RowState;
use crate::store::outbox::{self, Row};

#[derive(clap::Args, Debug)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Delivered and grouped ones too (newest 100).
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
    /// Send a row that was given up (failed) again, e.g. after fixing its channel:
    /// the running daemon queues it within a second.
    #[arg(long, value_name = "ID", value_parser = super::common::hash_id)]
    pub retry: Option<i64>,
}

/// `--retry ID`: asks the daemon (through the store) to send a failed row again.
fn retry(args: &OutboxArgs, id: i64) -> anyhow::Result<ExitCode> {
    let conn = args.store.location()?.open_write()?;
    let Some(row) = crate::store::outbox::retry_candidate(&conn, id)? else {
        anyhow::bail!("no outbox row #{id}");
    };
    if row.state != "failed" {
        anyhow::bail!(
            "row #{id} is {}: only a failed row can be retried",
            row.state
        );
    }
    if !row.has_message {
        anyhow::bail!(
            "row #{id} was given up before its message was made: there is nothing to send"
        );
    }
    // A firing sent after its incident resolved would page for what is over.
    if row.status == "firing" && row.incident_resolved {
        anyhow::bail!(
            "row #{id} is the firing of incident #{}, which has resolved since",
            row.incident_id
        );
    }
    crate::store::outbox::request_retry(&conn, id, crate::timezone::now_ms())?;
    writeln!(
        std::io::stdout(),
        "row #{id} will be sent again by the running daemon (at its next start if none runs)"
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What happened to a row, for people: (state, colour, when, why).
pub fn describe(r: &Row, now: i64) -> (String, &'static str, String, String) {
    let why = r.note.clone().unwrap_or_default();
    let error = r.last_error.clone().unwrap_or_default();
    match r.state {
        RowState::Waiting => (
            "waiting".into(),
            YELLOW,
            relative(r.next_ms, now),
            "in its group wait".into(),
        ),
        RowState::Queued => (
            "pending".into(),
            YELLOW,
            relative(r.next_ms, now),
            if error.is_empty() {
                "not tried yet".into()
            } else {
                error
            },
        ),
        RowState::Delivered => (
            "delivered".into(),
            "",
            r.delivered_ms
                .map_or_else(String::new, |d| relative(d, now)),
            String::new(),
        ),
        RowState::Failed => (
            "failed".into(),
            RED,
            r.failed_ms.map_or_else(String::new, |f| relative(f, now)),
            error,
        ),
        RowState::Grouped => {
            let carried = match (r.carrier_state, r.delivered_ms) {
                (Some(RowState::Delivered), Some(d)) => format!("delivered {}", relative(d, now)),
                (Some(RowState::Failed), _) => format!("failed: {error}"),
                _ => "pending".into(),
            };
            (
                format!("grouped #{}", r.message_id.unwrap_or_default()),
                "",
                carried,
                why,
            )
        }
        RowState::Superseded | RowState::Cancelled | RowState::Silenced => (
            r.state.as_str().into(),
            DIM,
            relative(r.created_ms, now),
            why,
        ),
    }
}

pub fn json(r: &Row) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "incident": r.incident_id, "channel": r.channel, "status": r.status,
        "state": r.state.as_str(), "message": r.message_id, "note": r.note,
        "created_at": rfc3339(r.created_ms), "attempts": r.attempts,
        "next_attempt_at": matches!(r.state, RowState::Waiting | RowState::Queued).then(|| rfc3339(r.next_ms)),
        "delivered_at": r.delivered_ms.map(rfc3339), "last_error": r.last_error,
    })
}

pub fn run(args: OutboxArgs) -> anyhow::Result<ExitCode> {
    if let Some(id) = args.retry {
        return retry(&args, id);
    }
    let now = crate::timezone::now_ms();
    let conn = args.store.open_read()?;
    let rows = outbox::list(&conn, args.all, now)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &rows {
            writeln!(out, "{}", json(r))?;
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
        "WHY / LAST ERROR",
    ]);
    for r in &rows {
        let (state, colour, when, why) = describe(r, now);
        t.row(vec![
            (format!("#{}", r.id), ""),
            (format!("#{}", r.incident_id), ""),
            (r.channel.clone(), ""),
            (r.status.clone(), ""),
            (state, colour),
            (r.attempts.to_string(), ""),
            (relative(r.created_ms, now), DIM),
            (when, ""),
            (why.chars().take(100).collect(), DIM),
        ]);
    }
    t.print(&style, &mut out)?;
    super::output::footer(&args.store, &mut out)?;
    Ok(ExitCode::SUCCESS)
}
