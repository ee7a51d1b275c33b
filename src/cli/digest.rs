//! `hapwatch digest [--since 24h]`: the digest the daemon can mail, printed.

use std::io::Write;
use std::process::ExitCode;

use super::common::{SpanArgs, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct DigestArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start: 30m, 2h, 7d ago, or an RFC 3339 time (a digest covers a day by default).
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// End (default: now).
    #[arg(long)]
    pub until: Option<String>,
}

pub fn run(args: DigestArgs) -> anyhow::Result<ExitCode> {
    let span = SpanArgs {
        since: args.since,
        until: args.until,
    };
    let (since, until) = span.resolve(crate::timezone::now_ms())?;
    let conn = args.store.open_read()?;
    let digests = crate::digest::build(&conn, since, until)?;
    let mut out = std::io::stdout().lock();
    match out.write_all(crate::digest::render(&digests, since, until).as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
