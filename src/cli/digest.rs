//! `hapwatch digest [--since 24h] [--send]`: per backend, what the logs said
//! over a span; with `--send`, mailed now to the `[digest]` channels.

use std::io::Write;
use std::process::ExitCode;

use super::common::{SpanArgs, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct DigestArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start (the forms of `events --since`; a digest covers a day by default).
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// End (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Mail it now to the `[digest] channels`, as the daemon would (to test them).
    #[arg(long)]
    pub send: bool,
}

pub fn run(args: DigestArgs) -> anyhow::Result<ExitCode> {
    let span = SpanArgs {
        since: args.since.clone(),
        until: args.until.clone(),
    };
    let now = crate::timezone::now_ms();
    let (since, until) = span.resolve(now)?;
    let conn = args.store.open_read()?;
    let digests = crate::digest::build(&conn, since, until)?;
    let body = crate::digest::render(&digests, since, until);
    let mut out = std::io::stdout().lock();
    if !args.send {
        return match out.write_all(body.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(ExitCode::SUCCESS),
        };
    }
    let config = args.store.load()?;
    let channels: Vec<_> = config
        .channel
        .iter()
        .filter(|c| config.digest.channels.contains(&c.name))
        .collect();
    if channels.is_empty() {
        anyhow::bail!(
            "no [digest] channels in the config: set channels = [\"<an email channel>\"]"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = 0;
    for ch in channels {
        let mail = crate::digest::mail(crate::notify::mail_domain(ch), &body, until, now);
        match rt.block_on(crate::delivery::send_now(ch, &mail)) {
            Ok(()) => writeln!(out, "{}: sent", ch.name)?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{}: FAILED: {e}", ch.name)?;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
