//! `hapwatch silence add|list|remove`: hold notifications during a deploy.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::common::{rfc3339, StoreArgs};
use super::output::{local_time, relative, Style, Table, DIM};
use crate::store::silences::{self, Silence};

#[derive(clap::Args, Debug)]
pub struct SilenceArgs {
    #[command(subcommand)]
    pub action: SilenceAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum SilenceAction {
    /// Silence the notifications of a backend, a server or a host for a while.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        backend: Option<String>,
        /// A server of --backend, or BACKEND/SERVER.
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        host: Option<String>,
        /// How long: 30m, 2h, 1d.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long)]
        reason: String,
        /// Silence a backend or server the logs have not named yet.
        #[arg(long)]
        force: bool,
        /// Everything (a maintenance of the whole fleet).
        #[arg(long, conflicts_with_all = ["backend", "server", "host"])]
        all: bool,
    },
    /// The active silences (all of them with --all).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        id: i64,
    },
}

/// The CLI writes silences itself: rare, small writes that WAL and the busy
/// timeout let share the file with the running daemon.
fn open_write(store: &StoreArgs) -> anyhow::Result<crate::store::Db> {
    Ok(store.location()?.open_write()?)
}

pub fn run(args: SilenceArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let mut out = std::io::stdout().lock();
    match args.action {
        SilenceAction::Add {
            store,
            backend,
            server,
            host,
            duration,
            reason,
            force,
            all,
        } => {
            // `--server be_api/api3`, as `events --server` takes it, names both.
            let (backend, server) = match (backend, server) {
                (None, Some(s)) if s.contains('/') => {
                    let (b, s) = s.split_once('/').unwrap_or_default();
                    (Some(b.to_owned()), Some(s.to_owned()))
                }
                (b, s) => (b, s),
            };
            if backend.is_none() && host.is_none() && !all {
                anyhow::bail!(
                    "say what to silence: --backend B [--server S] and/or --host H, or --all"
                );
            }
            if server.is_some() && backend.is_none() {
                anyhow::bail!("--server needs --backend (or write it BACKEND/SERVER)");
            }
            let conn = open_write(&store)?;
            // A typo would silence nothing and say nothing: the backend must be
            // known to the store (when it knows any), unless --force.
            let check = |flag: &str, value: &str| -> anyhow::Result<()> {
                let known = crate::store::queries::backends(&conn)?;
                if force || known.is_empty() {
                    return Ok(());
                }
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                super::output::known(flag, value, &known).map_err(|e| {
                    anyhow::anyhow!("{e} (--force silences a name the logs have not shown yet)")
                })
            };
            // (A server is not checked: a healthy one may never have been logged.)
            if let Some(b) = &backend {
                check("--backend", b)?;
            }
            let s = Silence {
                id: 0,
                scope: crate::incidents::ServerMatch {
                    host,
                    backend,
                    server,
                },
                created_ms: now,
                until_ms: now + duration.as_millis() as i64,
                reason,
            };
            let id = silences::add(&conn, &s)?;
            writeln!(
                out,
                "silence #{id} until {} ({})",
                local_time(s.until_ms),
                rfc3339(s.until_ms)
            )?;
        }
        SilenceAction::List { store, all, json } => {
            let list = silences::list(&store.open_read()?, now, all)?;
            if json {
                for s in &list {
                    let v = serde_json::json!({
                        "id": s.id, "host": s.scope.host, "backend": s.scope.backend, "server": s.scope.server,
                        "created_at": rfc3339(s.created_ms), "until": rfc3339(s.until_ms),
                        "active": s.until_ms > now, "reason": s.reason,
                    });
                    writeln!(out, "{v}")?;
                }
            } else if list.is_empty() {
                writeln!(out, "{}", Style::detect().paint("no silences", DIM))?;
            } else {
                let mut t =
                    Table::new(&["ID", "HOST", "BACKEND", "SERVER", "UNTIL", "ENDS", "REASON"]);
                let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
                for s in &list {
                    t.row(vec![
                        (format!("#{}", s.id), ""),
                        (any(&s.scope.host), ""),
                        (any(&s.scope.backend), ""),
                        (any(&s.scope.server), ""),
                        (local_time(s.until_ms), ""),
                        (relative(s.until_ms, now), DIM),
                        (s.reason.clone(), ""),
                    ]);
                }
                t.print(&Style::detect(), &mut out)?;
            }
        }
        SilenceAction::Remove { store, id } => {
            if !silences::end(&open_write(&store)?, id, now)? {
                anyhow::bail!("no active silence #{id}");
            }
            writeln!(out, "silence #{id} ended")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
