//! `hapwatch maintenance add|list|remove`: windows in which incidents are
//! recorded but not notified; what is still wrong when one ends is notified
//! once. The running daemon reads the windows added here each second.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::common::{parse_time_in, rfc3339, StoreArgs};
use super::output::{local_time, Style, Table, DIM, YELLOW};
use crate::maintenance::{check_every, Schedule};
use crate::store::maintenance::{self as stored, StoredWindow};

#[derive(clap::Args, Debug)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub action: MaintenanceAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum MaintenanceAction {
    /// A window: recurring (--every) or once (--end or --for, from --start or now).
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// A backend it covers (repeat for more; none: every backend).
        #[arg(long = "backend")]
        backends: Vec<String>,
        /// A host it covers (repeat for more; none: every host).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Recurring: "sun 02:00-04:00", "mon-fri 22:00-23:30", "daily 03:00-03:30".
        #[arg(long, conflicts_with_all = ["start", "end", "duration"])]
        every: Option<String>,
        /// The zone of --every (default: the config's [parse] timezone).
        #[arg(long, requires = "every")]
        timezone: Option<String>,
        /// Once: from (default now; the forms of `events --since`).
        #[arg(long)]
        start: Option<String>,
        /// Once: until.
        #[arg(long, conflicts_with = "duration")]
        end: Option<String>,
        /// Once: for this long from --start: 30m, 2h.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[arg(long)]
        reason: String,
    },
    /// The windows of the config and of the store, and whether each is on now.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove a window added here (those of the config are removed there).
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_parser = super::common::hash_id)]
        id: i64,
    },
}

/// One row of `list`: a configured or stored window.
struct Listed {
    name: String,
    from_config: bool,
    hosts: Vec<String>,
    backends: Vec<String>,
    schedule: Schedule,
    reason: String,
}

/// Hosts or backends as the tables show them (`*`: any).
pub(super) fn scope(names: &[String]) -> String {
    if names.is_empty() {
        "*".into()
    } else {
        names.join(",")
    }
}

pub fn run(args: MaintenanceArgs) -> anyhow::Result<ExitCode> {
    let now = crate::timezone::now_ms();
    let mut out = std::io::stdout().lock();
    match args.action {
        MaintenanceAction::Add {
            store,
            backends,
            hosts,
            every,
            timezone,
            start,
            end,
            duration,
            reason,
        } => {
            let said = add(
                &store,
                (hosts, backends),
                (every, timezone),
                (start, end, duration),
                reason,
                now,
            )?;
            writeln!(out, "{said}")?;
        }
        MaintenanceAction::List { store, json } => {
            let config = store.load()?;
            let mut all: Vec<Listed> = config
                .maintenance
                .iter()
                .map(|w| Listed {
                    name: w.name.clone(),
                    from_config: true,
                    hosts: w.hosts.clone(),
                    backends: w.backends.clone(),
                    schedule: w.schedule.clone(),
                    reason: w.reason.clone().unwrap_or_default(),
                })
                .collect();
            all.extend(
                stored::list(&store.open_read()?, now)?
                    .into_iter()
                    .map(|w| Listed {
                        name: w.name(),
                        from_config: false,
                        hosts: w.hosts,
                        backends: w.backends,
                        schedule: w.schedule,
                        reason: w.reason,
                    }),
            );
            print_list(&all, &config.parse.timezone, now, json, &mut out)?;
        }
        MaintenanceAction::Remove { store, id } => {
            let conn = store.location()?.open_write()?;
            if !stored::remove(&conn, id, now)? {
                anyhow::bail!(
                    "no maintenance #{id} (windows of the config are removed from the config)"
                );
            }
            writeln!(out, "maintenance #{id} removed")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds a window to the store; what to say of it.
fn add(
    store: &StoreArgs,
    (hosts, backends): (Vec<String>, Vec<String>),
    (every, timezone): (Option<String>, Option<String>),
    (start, end, duration): (Option<String>, Option<String>, Option<Duration>),
    reason: String,
    now: i64,
) -> anyhow::Result<String> {
    let config = store.load()?;
    // Times of day are read in the zone recurring windows use: [parse] timezone.
    let zone = config.parse.timezone.time_zone();
    let schedule = match (every, end, duration) {
        (Some(text), _, _) => {
            check_every("new", &text, timezone.as_deref())?;
            Schedule::Every {
                text,
                zone: timezone,
            }
        }
        (None, end, duration) => {
            let start_ms = match &start {
                Some(s) => parse_time_in(s, now, &zone)?,
                None => now,
            };
            let end_ms = match (end, duration) {
                (Some(e), _) => parse_time_in(&e, now, &zone)?,
                (None, Some(d)) => {
                    start_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                }
                (None, None) => anyhow::bail!(
                    "say when: --every \"sun 02:00-04:00\", or --end TIME or --for 2h"
                ),
            };
            if end_ms <= start_ms.max(now) {
                anyhow::bail!(
                    "the window would be over already (it ends {})",
                    rfc3339(end_ms)
                );
            }
            Schedule::Once { start_ms, end_ms }
        }
    };
    let w = StoredWindow {
        id: 0,
        hosts,
        backends,
        schedule,
        reason,
        created_ms: now,
    };
    let conn = store.location()?.open_write()?;
    let id = stored::add(&conn, &w)?;
    Ok(format!(
        "maintenance #{id}: {}, hosts {}, backends {}",
        w.schedule.describe(),
        scope(&w.hosts),
        scope(&w.backends)
    ))
}

fn print_list(
    all: &[Listed],
    zone: &crate::timezone::Zone,
    now: i64,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let active = |l: &Listed| {
        crate::maintenance::window(&l.name, &l.hosts, &l.backends, &l.schedule, zone)
            .and_then(|w| w.active_at(now))
    };
    if json {
        for l in all {
            let on = active(l);
            let v = serde_json::json!({
                "name": l.name, "source": if l.from_config { "config" } else { "cli" },
                "hosts": l.hosts, "backends": l.backends, "when": l.schedule.describe(),
                "active": on.is_some(), "ends_at": on.map(|(_, end)| rfc3339(end)), "reason": l.reason,
            });
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    let style = Style::detect();
    if all.is_empty() {
        writeln!(out, "{}", style.paint("no maintenance windows", DIM))?;
        return Ok(());
    }
    let mut t = Table::new(&["NAME", "FROM", "HOSTS", "BACKENDS", "WHEN", "NOW", "REASON"]);
    for l in all {
        let (now_text, colour) = match active(l) {
            Some((_, end)) => (format!("on until {}", local_time(end)), YELLOW),
            None => ("-".into(), DIM),
        };
        t.row(vec![
            (l.name.clone(), ""),
            ((if l.from_config { "config" } else { "cli" }).into(), DIM),
            (scope(&l.hosts), ""),
            (scope(&l.backends), ""),
            (l.schedule.describe(), ""),
            (now_text, colour),
            (l.reason.clone(), ""),
        ]);
    }
    t.print(&style, out)?;
    Ok(())
}
