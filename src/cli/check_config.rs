//! `hapwatch check-config [FILE]`: validate a config and say what it means.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// The file to check (default: $HAPWATCH_CONFIG, else
    /// /etc/hapwatch/hapwatch.toml when it exists, else the built-in defaults).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The same as FILE, as every other command spells it.
    #[arg(long = "config", value_name = "FILE", env = "HAPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(mut args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    args.file = args
        .file
        .or(args.config.take())
        .or_else(crate::config::system_config);
    let config = Config::load(args.file.as_deref())?;
    // Building the parser checks every log-format and the HAProxy config they come from.
    let parser = crate::parser::parser_for(&config.parse)?;
    let mut out = std::io::stdout().lock();
    let name = args.file.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    writeln!(out, "{name}: OK")?;
    for l in config.listeners() {
        let allow = if l.allow().is_empty() {
            "any sender".to_owned()
        } else {
            format!("{} allowed network(s)", l.allow().len())
        };
        writeln!(out, "  listen    {} ({allow})", l.url())?;
    }
    let s = &config.storage;
    writeln!(out, "  database  {}", config.store())?;
    writeln!(
        out,
        "  windows   {} (grace {}), kept {}; evidence lines kept {}; events kept {}",
        short(s.window),
        short(s.window_grace),
        short(s.retain_windows),
        short(s.samples_kept()),
        short(s.retain_events)
    )?;
    writeln!(out, "  timezone  {}", config.parse.timezone)?;
    writeln!(out, "  node      {}", config.cluster.node())?;
    match config.http.listen.addr() {
        Some(addr) => writeln!(
            out,
            "  console   http://{addr}/ ({})",
            if config.http.auth().required() {
                "token or password required"
            } else {
                "open to whoever reaches it"
            }
        )?,
        None => writeln!(out, "  console   off ([http] listen = \"\")")?,
    }
    if config.channel.is_empty() {
        writeln!(out, "  channels  none: incidents go to the log only")?;
    }
    for ch in &config.channel {
        let target = match &ch.target {
            crate::notify::Target::Http(h) => shown_url(&h.url),
            crate::notify::Target::Email(e) => format!("{} → {}", e.smtp_host, e.to.join(", ")),
        };
        writeln!(
            out,
            "  channel   {} ({:?}, {} and above): {target}",
            ch.name,
            ch.kind,
            ch.min_severity.as_str()
        )?;
    }
    for r in config.reconcile.iter().filter(|r| r.enabled()) {
        let source = match (&r.stats_socket, &r.stats_url) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(url)) => shown_url(url),
            (None, None) => String::new(),
        };
        writeln!(
            out,
            "  reconcile {}: {source} every {}",
            r.host.as_deref().unwrap_or_default(),
            short(r.interval)
        )?;
    }
    for w in &config.maintenance {
        let names = super::maintenance::scope;
        writeln!(
            out,
            "  maintenance {}: {}, hosts {}, backends {}",
            w.name,
            w.schedule.describe(),
            names(&w.hosts),
            names(&w.backends)
        )?;
    }
    if let Some(url) = &config.heartbeat.url {
        writeln!(
            out,
            "  heartbeat {} every {}",
            shown_url(url),
            short(config.heartbeat.every)
        )?;
    }
    for f in parser.custom_formats() {
        writeln!(out, "  format    {}: {}", f.name(), f.source())?;
    }
    let running = config
        .store()
        .open_read()
        .ok()
        .and_then(|conn| crate::store::outbox::running_channels(&conn).ok().flatten());
    if let Some((since, running)) = running {
        let d = crate::notify::ChannelDiff::against(&running, &config.channel);
        let when = crate::cli::output::local_time(since);
        if d.is_empty() {
            writeln!(
                out,
                "  reload    changes no channel of the daemon (running since {when})"
            )?;
        } else {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(", ")
                }
            };
            writeln!(
                out,
                "  reload    would change the daemon's channels (running since {when}): added {}; removed {}; changed {}",
                list(&d.added),
                list(&d.removed),
                list(&d.changed)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `365d`, `1h`, `90s`: the largest unit that divides the duration.
/// A URL as check-config shows it: scheme and host only. The rest of a
/// webhook URL is often its secret (Slack, Teams), and a login may precede
/// the host.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/…")
}

fn short(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::short;
    use std::time::Duration;

    #[test]
    fn durations_read_in_their_largest_unit() {
        assert_eq!(short(Duration::from_secs(365 * 86_400)), "365d");
        assert_eq!(short(Duration::from_secs(60)), "1m");
        assert_eq!(short(Duration::from_secs(90)), "90s");
    }
}
