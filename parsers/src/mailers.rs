//! HAProxy's native email alerts as its configuration sets them: `mailers`
//! sections and the `email-alert` directives of each backend (from its
//! `defaults` or its own), for migrating them (native mailers are gone in
//! HAProxy 3.3).

use crate::haproxy_cfg::{split_words, SECTIONS};

/// A `mailers NAME` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailers {
    pub name: String,
    pub line: usize,
    pub mailers: Vec<Mailer>,
    /// `timeout mail` (HAProxy's default: 10 s).
    pub timeout_ms: Option<u64>,
}

/// `mailer ID ADDR:PORT`: every mailer of a section gets every alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailer {
    pub id: String,
    pub host: String,
    pub port: u16,
}

/// Syslog levels, most severe first: `email-alert level` mails what is at
/// this level or more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    pub const ALL: [Level; 8] = [
        Level::Emerg,
        Level::Alert,
        Level::Crit,
        Level::Err,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Err => "err",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// The `email-alert` settings in effect in one section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailAlert {
    pub mailers: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// None: HAProxy's default, `alert`.
    pub level: Option<Level>,
    pub myhostname: Option<String>,
}

impl EmailAlert {
    pub fn level(&self) -> Level {
        self.level.unwrap_or(Level::Alert)
    }
}

/// A backend or listen section and the email alerts it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAlerts {
    pub proxy: String,
    pub line: usize,
    pub alert: EmailAlert,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EmailAlerts {
    pub mailers: Vec<Mailers>,
    /// Every backend and listen section, in file order, with what it inherited.
    pub proxies: Vec<ProxyAlerts>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct MailersError {
    pub line: usize,
    pub message: String,
}

/// What section the reader is in.
enum In {
    Other,
    Mailers(usize),
    Defaults(Option<String>),
    Proxy(usize),
}

/// The reader's state, line after line.
struct Reader {
    out: EmailAlerts,
    /// The defaults in effect (the last section read), and the named ones for `from`.
    defaults: EmailAlert,
    named: Vec<(String, EmailAlert)>,
    section: In,
}

impl Reader {
    /// A section's first line: what follows belongs to it.
    fn open(&mut self, words: &[String], line: usize) -> Result<In, String> {
        let first = words[0].as_str();
        Ok(match first {
            "mailers" => {
                let name = words.get(1).ok_or("mailers without a name")?;
                self.out.mailers.push(Mailers {
                    name: name.clone(),
                    line,
                    mailers: Vec::new(),
                    timeout_ms: None,
                });
                In::Mailers(self.out.mailers.len() - 1)
            }
            "defaults" => {
                self.defaults = match from_name(words) {
                    Some(f) => inherited(&self.named, f)?,
                    None => EmailAlert::default(),
                };
                In::Defaults(words.get(1).filter(|w| *w != "from").cloned())
            }
            "backend" | "listen" => {
                let name = words
                    .get(1)
                    .ok_or_else(|| format!("{first} without a name"))?;
                let alert = match from_name(words) {
                    Some(f) => inherited(&self.named, f)?,
                    None => self.defaults.clone(),
                };
                self.out.proxies.push(ProxyAlerts {
                    proxy: name.clone(),
                    line,
                    alert,
                });
                In::Proxy(self.out.proxies.len() - 1)
            }
            _ => In::Other,
        })
    }

    /// A line inside the current section.
    fn directive(&mut self, words: &[String]) -> Result<(), String> {
        let email = words[0] == "email-alert";
        match &self.section {
            In::Mailers(i) => read_mailers(&mut self.out.mailers[*i], words),
            In::Defaults(_) if email => email_alert(&mut self.defaults, words),
            In::Proxy(i) if email => email_alert(&mut self.out.proxies[*i].alert, words),
            _ => Ok(()),
        }
    }
}

/// Reads the mailers and email alerts of a configuration.
pub fn find_email_alerts(cfg: &str) -> Result<EmailAlerts, MailersError> {
    let mut r = Reader {
        out: EmailAlerts::default(),
        defaults: EmailAlert::default(),
        named: Vec::new(),
        section: In::Other,
    };
    for (n, raw) in cfg.lines().enumerate() {
        let line = n + 1;
        let err = |message: String| MailersError { line, message };
        let words = split_words(raw).map_err(|m| err(m.to_owned()))?;
        let Some(first) = words.first().map(String::as_str) else {
            continue;
        };
        if let In::Defaults(Some(name)) = &r.section {
            // Keep the named defaults as they stand after each of their lines.
            r.named.retain(|(n, _)| n != name);
            r.named.push((name.clone(), r.defaults.clone()));
        }
        if SECTIONS.contains(&first) && !raw.starts_with([' ', '\t']) {
            r.section = r.open(&words, line).map_err(err)?;
        } else {
            r.directive(&words).map_err(err)?;
        }
    }
    let out = r.out;
    for p in &out.proxies {
        if let Some(m) = &p.alert.mailers {
            if !out.mailers.iter().any(|s| &s.name == m) {
                return Err(MailersError {
                    line: p.line,
                    message: format!(
                        "{}: email-alert mailers {m:?}: no such mailers section",
                        p.proxy
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// `defaults from NAME`, `backend be from NAME` (HAProxy 2.5+).
fn from_name(words: &[String]) -> Option<&str> {
    let i = words.iter().position(|w| w == "from")?;
    words.get(i + 1).map(String::as_str)
}

fn inherited(named: &[(String, EmailAlert)], name: &str) -> Result<EmailAlert, String> {
    named
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a.clone())
        .ok_or_else(|| format!("from {name:?}: no defaults section of that name above"))
}

fn read_mailers(m: &mut Mailers, words: &[String]) -> Result<(), String> {
    match words[0].as_str() {
        "mailer" => {
            let (Some(id), Some(addr)) = (words.get(1), words.get(2)) else {
                return Err("mailer needs a name and an address:port".into());
            };
            let addr = addr
                .strip_prefix("ipv4@")
                .or_else(|| addr.strip_prefix("ipv6@"))
                .unwrap_or(addr);
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| format!("mailer {id}: {addr:?} has no port"))?;
            let port = port
                .parse()
                .map_err(|_| format!("mailer {id}: {port:?} is not a port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            m.mailers.push(Mailer {
                id: id.clone(),
                host: host.to_owned(),
                port,
            });
        }
        "timeout" if words.get(1).map(String::as_str) == Some("mail") => {
            let v = words.get(2).ok_or("timeout mail needs a value")?;
            m.timeout_ms =
                Some(haproxy_time_ms(v).ok_or_else(|| format!("timeout mail {v:?}: not a time"))?);
        }
        _ => {}
    }
    Ok(())
}

fn email_alert(a: &mut EmailAlert, words: &[String]) -> Result<(), String> {
    let (Some(key), Some(value)) = (words.get(1), words.get(2)) else {
        return Err("email-alert needs a keyword and a value".into());
    };
    let value = value.clone();
    match key.as_str() {
        "mailers" => a.mailers = Some(value),
        "from" => a.from = Some(value),
        "to" => a.to = Some(value),
        "myhostname" => a.myhostname = Some(value),
        "level" => {
            a.level = Some(Level::parse(&value).ok_or_else(|| {
                format!("email-alert level {value:?}: expected one of emerg, alert, crit, err, warning, notice, info, debug")
            })?)
        }
        other => return Err(format!("email-alert {other:?}: expected mailers, from, to, level or myhostname")),
    }
    Ok(())
}

/// HAProxy's time values: a number, in ms unless a unit follows (us, ms, s, m, h, d).
fn haproxy_time_ms(v: &str) -> Option<u64> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "" | "ms" => n,
        "us" => n / 1000,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
global
    log 127.0.0.1 local0

mailers ops
    mailer smtp1 192.168.0.1:587
    mailer smtp2 ipv4@10.0.0.2:25
    timeout mail 20s

defaults
    mode http
    email-alert mailers ops
    email-alert from haproxy@example.org
    email-alert to ops@example.org

backend be_api
    server a1 10.0.1.1:80 check

backend be_db
    email-alert level notice
    email-alert to dba@example.org

defaults quiet
    mode tcp

listen li_tcp
    bind :5000

backend be_named from quiet
    server n1 10.0.1.9:80
";

    #[test]
    fn mailers_and_each_backends_alerts_with_what_it_inherits() {
        let found = find_email_alerts(CFG).unwrap();
        assert_eq!(found.mailers.len(), 1);
        let m = &found.mailers[0];
        assert_eq!(
            (m.name.as_str(), m.line, m.timeout_ms),
            ("ops", 4, Some(20_000))
        );
        assert_eq!(
            m.mailers,
            vec![
                Mailer {
                    id: "smtp1".into(),
                    host: "192.168.0.1".into(),
                    port: 587
                },
                Mailer {
                    id: "smtp2".into(),
                    host: "10.0.0.2".into(),
                    port: 25
                },
            ]
        );
        let by = |name: &str| found.proxies.iter().find(|p| p.proxy == name).unwrap();
        let api = &by("be_api").alert;
        assert_eq!(
            (api.mailers.as_deref(), api.to.as_deref(), api.level()),
            (Some("ops"), Some("ops@example.org"), Level::Alert)
        );
        let db = &by("be_db").alert;
        assert_eq!(
            (db.to.as_deref(), db.level()),
            (Some("dba@example.org"), Level::Notice)
        );
        assert_eq!(
            db.from.as_deref(),
            Some("haproxy@example.org"),
            "the rest inherited"
        );
        // A new defaults section starts afresh.
        assert_eq!(by("li_tcp").alert, EmailAlert::default());
        assert_eq!(by("be_named").alert, EmailAlert::default());
    }

    #[test]
    fn mistakes_are_errors_with_their_line() {
        let e = find_email_alerts("backend b\n  email-alert level loud\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("emerg, alert"), "{e}");
        let e = find_email_alerts("backend b\n  email-alert mailers nope\n").unwrap_err();
        assert!(e.message.contains("no such mailers section"), "{e}");
        let e = find_email_alerts("mailers m\n  mailer x 10.0.0.1\n").unwrap_err();
        assert_eq!((e.line, e.message.contains("no port")), (2, true), "{e}");
        assert_eq!(haproxy_time_ms("1500"), Some(1500));
        assert_eq!(haproxy_time_ms("2m"), Some(120_000));
        assert_eq!(haproxy_time_ms("2x"), None);
    }
}
