//! `hapwatch import-haproxy FILE`: HAProxy's `mailers` sections and
//! `email-alert` directives as the `[[channel]]` tables that send the same
//! alerts (native mailers are gone in HAProxy 3.3). Prints TOML to append to
//! hapwatch.toml; reads nothing else and writes nothing.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hapwatch_parsers::mailers::{find_email_alerts, EmailAlert, EmailAlerts, Level, Mailers};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The HAProxy configuration (e.g. /etc/haproxy/haproxy.cfg).
    pub file: PathBuf,
}

/// What a HAProxy level mailed, as hapwatch routes it: (min_severity,
/// resolved). At `alert` (the default) HAProxy mailed server DOWN and nothing
/// else; at `notice` and below also UP and drain; at `emerg` nothing at all
/// (None: no channel).
fn routing(level: Level) -> Option<(&'static str, bool)> {
    match level {
        Level::Emerg => None,
        Level::Alert | Level::Crit | Level::Err | Level::Warning => Some(("warning", false)),
        Level::Notice | Level::Info | Level::Debug => Some(("info", true)),
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if c.is_control() => out += &format!("\\u{:04X}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One channel's settings: a mailer and what is sent through it.
struct Group<'a> {
    section: &'a Mailers,
    from: &'a str,
    to: &'a str,
    level: Level,
    backends: Vec<&'a str>,
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.display().to_string();
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {path}"))?;
    let found = find_email_alerts(&text).with_context(|| path.clone())?;
    let (groups, notes) = groups(&found);
    let out = render(&path, &groups, &notes, found.proxies.len());
    // What is printed must be a config hapwatch takes.
    let config = crate::config::Config::from_toml(&out)
        .context("the generated channels do not parse (a bug: please report it)")?;
    config.validate()?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The backends with the same mailers, sender, recipient and level, and
/// notes on those HAProxy mails nothing for.
fn groups(found: &EmailAlerts) -> (Vec<Group<'_>>, Vec<String>) {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut notes = Vec::new();
    for p in &found.proxies {
        let EmailAlert {
            mailers: Some(m),
            from: Some(from),
            to: Some(to),
            ..
        } = &p.alert
        else {
            if p.alert != EmailAlert::default() {
                notes.push(format!(
                    "{} (line {}): email-alert needs mailers, from and to; HAProxy sends nothing",
                    p.proxy, p.line
                ));
            }
            continue;
        };
        let section = found
            .mailers
            .iter()
            .find(|s| &s.name == m)
            .expect("checked by find_email_alerts");
        let level = p.alert.level();
        if routing(level).is_none() {
            notes.push(format!(
                "{} (line {}): email-alert level emerg mails nothing (server DOWN is alert)",
                p.proxy, p.line
            ));
            continue;
        }
        match groups
            .iter_mut()
            .find(|g| g.section.name == *m && g.from == from && g.to == to && g.level == level)
        {
            Some(g) => g.backends.push(&p.proxy),
            None => groups.push(Group {
                section,
                from,
                to,
                level,
                backends: vec![&p.proxy],
            }),
        }
    }
    (groups, notes)
}

/// The channels as TOML, one per mailer of each group.
fn render(path: &str, groups: &[Group<'_>], notes: &[String], proxies: usize) -> String {
    let every_proxy = |g: &Group<'_>| g.backends.len() == proxies;
    let mut out = format!(
        "# From HAProxy's email alerts in {path} (hapwatch import-haproxy).\n\
         # HAProxy mailed through plain SMTP with no login: check tls, and add\n\
         # username/password if the relay wants them.\n"
    );
    for note in notes {
        out += &format!("# skipped: {note}\n");
    }
    let mut names = std::collections::HashSet::new();
    for g in groups {
        let (severity, resolved) = routing(g.level).expect("emerg groups are skipped");
        for mailer in &g.section.mailers {
            let base = format!("{}-{}", g.section.name, mailer.id);
            let mut name = base.clone();
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            out += &format!(
                "\n# email-alert level {} in {}\n[[channel]]\nname = {}\ntype = \"email\"\n\
                 smtp_host = {}\nsmtp_port = {}\ntls = \"none\"\nfrom = {}\nto = [{}]\n\
                 min_severity = \"{severity}\"\n",
                g.level.as_str(),
                g.backends.join(", "),
                quote(&name),
                quote(&mailer.host),
                mailer.port,
                quote(g.from),
                quote(g.to),
            );
            if resolved {
                out += "resolved = true\n";
            } else {
                out += "# HAProxy sent no UP mail at this level: true pairs each DOWN with its recovery\nresolved = false\n";
            }
            if let Some(ms) = g.section.timeout_ms {
                out += &format!("timeout = \"{}ms\"\n", ms.max(1));
            }
            if !every_proxy(g) {
                let list: Vec<String> = g.backends.iter().map(|b| quote(b)).collect();
                out += &format!("backends = [{}]\n", list.join(", "));
            }
        }
    }
    if groups.is_empty() {
        out += "# no email-alert in this configuration: nothing to import\n";
    }
    out
}
