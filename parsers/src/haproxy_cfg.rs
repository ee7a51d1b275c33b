//! Finds the `log-format` directives of a HAProxy configuration, unquoted the way
//! HAProxy's own line parser does it: `#` comments, backslash escapes, single
//! quotes (literal) and double quotes (escapes and `${VAR}` expansion).

use crate::log_format::{HTTPLOG, HTTPLOG_CLF, HTTPSLOG, TCPLOG};

/// One `log-format` found in a HAProxy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFormat {
    /// 1-based line number in the configuration.
    pub line: usize,
    /// The section it was found in (`frontend fe_custom`, `defaults`).
    pub section: String,
    /// The format string after unquoting.
    pub format: String,
}

/// Why a configuration line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CfgError {
    pub line: usize,
    pub message: &'static str,
}

/// The variables HAProxy 2.8+ and 3.1+ define for its built-in formats.
fn builtin_var(name: &str) -> Option<&'static str> {
    Some(match name {
        "HAPROXY_HTTP_LOG_FMT" => HTTPLOG,
        "HAPROXY_HTTPS_LOG_FMT" => HTTPSLOG,
        "HAPROXY_TCP_LOG_FMT" => TCPLOG,
        "HAPROXY_HTTP_CLF_LOG_FMT" => HTTPLOG_CLF,
        _ => return None,
    })
}

/// Splits one configuration line into words, as HAProxy does.
pub fn split_words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                escape(&mut chars, &mut cur)?;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => escape(&mut chars, &mut cur)?,
                        Some('$') if chars.peek() == Some(&'{') => {
                            chars.next();
                            let mut name = String::new();
                            loop {
                                match chars.next() {
                                    Some('}') => break,
                                    Some(c) => name.push(c),
                                    None => return Err("unterminated ${…} in double quotes"),
                                }
                            }
                            // Unknown variables are kept verbatim: only the
                            // built-in formats matter for reading lines.
                            match builtin_var(&name) {
                                Some(v) => cur.push_str(v),
                                None => {
                                    cur.push_str("${");
                                    cur.push_str(&name);
                                    cur.push('}');
                                }
                            }
                        }
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote"),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn escape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) -> Result<(), &'static str> {
    match chars.next() {
        Some('t') => out.push('\t'),
        Some('n') => out.push('\n'),
        Some('r') => out.push('\r'),
        Some('x') => {
            let hex: String = chars.by_ref().take(2).collect();
            let v = u8::from_str_radix(&hex, 16).map_err(|_| "bad \\x escape")?;
            out.push(char::from(v));
        }
        Some(c) => out.push(c),
        None => return Err("backslash at end of line"),
    }
    Ok(())
}

pub(crate) const SECTIONS: [&str; 10] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "ring",
];

/// Every `log-format` directive of a configuration, in file order.
pub fn find_log_formats(cfg: &str) -> Result<Vec<FoundFormat>, CfgError> {
    let mut out = Vec::new();
    let mut section = String::new();
    for (n, raw) in cfg.lines().enumerate() {
        let words = split_words(raw).map_err(|message| CfgError {
            line: n + 1,
            message,
        })?;
        let Some(first) = words.first() else { continue };
        if SECTIONS.contains(&first.as_str()) && !raw.starts_with([' ', '\t']) {
            section = words.join(" ");
            continue;
        }
        if first == "log-format" {
            if words.len() < 2 {
                return Err(CfgError {
                    line: n + 1,
                    message: "log-format without a format",
                });
            }
            // Older HAProxy joined unquoted words with a space; do the same.
            out.push(FoundFormat {
                line: n + 1,
                section: section.clone(),
                format: words[1..].join(" "),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_rules() {
        assert_eq!(
            split_words(r#"log-format '{"a":"%ci"}'  # comment"#).unwrap(),
            vec!["log-format", r#"{"a":"%ci"}"#]
        );
        assert_eq!(
            split_words(r#"log-format %ci\ %cp "x\"y" \#z"#).unwrap(),
            vec!["log-format", "%ci %cp", "x\"y", "#z"]
        );
        assert_eq!(
            split_words(r#"log-format "${HAPROXY_TCP_LOG_FMT} %ID""#).unwrap()[1],
            format!("{TCPLOG} %ID")
        );
        assert!(split_words("log-format 'open").is_err());
    }

    #[test]
    fn finds_formats_with_sections_and_lines() {
        let cfg = "defaults\n  mode http\nfrontend fe1\n  bind :80\n  log-format \"%ci %ST\"\n";
        let f = find_log_formats(cfg).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].line, f[0].section.as_str(), f[0].format.as_str()),
            (5, "frontend fe1", "%ci %ST")
        );
    }
}
