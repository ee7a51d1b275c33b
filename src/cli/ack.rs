//! `hapwatch ack ID --reason …` and `hapwatch unack ID`: someone is on it.
//! No more reminders for the incident, PagerDuty is told, and its resolve
//! says who acknowledged it. The running daemon reads acks each second.

use std::io::Write;
use std::process::ExitCode;

use super::common::StoreArgs;
use super::output::relative;
use crate::incidents::Ack;
use crate::store::acks;

#[derive(clap::Args, Debug)]
pub struct AckArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The incident, as `12` or `#12`.
    #[arg(value_parser = super::common::hash_id)]
    pub id: i64,
    /// What is being done about it (shown in `incident ID` and its resolve).
    #[arg(long)]
    pub reason: String,
    /// Who (default: $SUDO_USER, else $USER).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UnackArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The incident, as `12` or `#12`.
    #[arg(value_parser = super::common::hash_id)]
    pub id: i64,
}

/// The person at the keyboard: under sudo, the one who ran it.
fn who() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn run_ack(args: AckArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let reason = args.reason.trim();
    if reason.is_empty() {
        anyhow::bail!("--reason is empty: say what is being done about it");
    }
    let ack = Ack {
        by: args.by.unwrap_or_else(who),
        reason: reason.to_owned(),
        at_ms: now,
    };
    let conn = args.store.location()?.open_write()?;
    let before = acks::add(&conn, args.id, &ack)?;
    let mut out = std::io::stdout().lock();
    if let Some(b) = before {
        writeln!(
            out,
            "incident #{} was acknowledged by {} {}: now by {}",
            args.id,
            b.by,
            relative(b.at_ms, now),
            ack.by
        )?;
    }
    writeln!(
        out,
        "incident #{} acknowledged by {}: {}\nno more reminders; its resolve will say so, and PagerDuty channels are told",
        args.id, ack.by, ack.reason
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_unack(args: UnackArgs) -> anyhow::Result<ExitCode> {
    let conn = args.store.location()?.open_write()?;
    if !acks::remove(&conn, args.id)? {
        anyhow::bail!("incident #{} is not acknowledged", args.id);
    }
    writeln!(
        std::io::stdout().lock(),
        "incident #{} is no longer acknowledged: reminders resume",
        args.id
    )?;
    Ok(ExitCode::SUCCESS)
}
