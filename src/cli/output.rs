//! Human output: aligned tables, relative times, colour only on a terminal.

use std::io::{IsTerminal as _, Write};

pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    pub fn detect() -> Style {
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.colour && !code.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

pub const RED: &str = "31";
pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";
pub const DIM: &str = "2";
pub const BOLD: &str = "1";

/// A table whose cells may carry a colour; widths ignore the escape codes.
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<(String, &'static str)>>,
}

impl Table {
    /// Columns named with a leading `>` are right-aligned (numbers).
    pub fn new(columns: &[&'static str]) -> Table {
        Table {
            header: columns.iter().map(|c| c.trim_start_matches('>')).collect(),
            right: columns.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Cells come from logs: control characters are shown escaped, never sent to the terminal.
    pub fn row(&mut self, cells: Vec<(String, &'static str)>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|(c, colour)| (crate::escape::escape(&c).into_owned(), colour))
                .collect(),
        );
    }

    pub fn print(&self, style: &Style, out: &mut impl Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, (c, _)) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<(String, &str)>, out: &mut dyn Write| -> std::io::Result<()> {
            let last = cells.len().saturating_sub(1);
            let mut s = String::new();
            for (i, (text, code)) in cells.into_iter().enumerate() {
                let pad = widths[i].saturating_sub(text.chars().count());
                let painted = style.paint(&text, code);
                if self.right[i] {
                    s += &" ".repeat(pad);
                    s += &painted;
                } else {
                    s += &painted;
                    if i != last {
                        s += &" ".repeat(pad);
                    }
                }
                if i != last {
                    s += "  ";
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
        line(
            self.header.iter().map(|h| (h.to_string(), BOLD)).collect(),
            out,
        )?;
        for r in &self.rows {
            line(r.clone(), out)?;
        }
        Ok(())
    }
}

/// `3m ago`, `2h ago`, `5d ago`, or `in 1m` for the future.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let delta = (now_ms - ms) / 1000;
    let (n, future) = (delta.unsigned_abs(), delta < 0);
    let text = match n {
        0..=59 => format!("{n}s"),
        60..=3599 => format!("{}m", n / 60),
        3600..=86_399 => format!("{}h", n / 3600),
        _ => format!("{}d", n / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// `2026-11-23 01:23:33` in the local zone.
pub fn local_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 10_000_000_000;
        assert_eq!(relative(now - 5_000, now), "5s ago");
        assert_eq!(relative(now - 3 * 60_000, now), "3m ago");
        assert_eq!(relative(now - 26 * 3_600_000, now), "1d ago");
        assert_eq!(relative(now + 60_000, now), "in 1m");
    }

    #[test]
    fn tables_align_without_counting_colour() {
        let mut t = Table::new(&["NAME", ">N"]);
        t.row(vec![("a".into(), RED), ("1".into(), "")]);
        t.row(vec![("long".into(), ""), ("100".into(), "")]);
        let mut out = Vec::new();
        t.print(&Style { colour: false }, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME    N\na       1\nlong  100\n"
        );
    }
}

/// `value` is one of `known`, or an error naming the flag with the closest
/// known value ("did you mean") and the list.
pub fn known(flag: &str, value: &str, known: &[&str]) -> anyhow::Result<()> {
    if known.contains(&value) {
        return Ok(());
    }
    let closest = known
        .iter()
        .map(|k| (edit_distance(value, k), *k))
        .min()
        .filter(|(d, _)| *d <= 3);
    let hint = closest.map_or(String::new(), |(_, k)| format!(" (did you mean {k:?}?)"));
    anyhow::bail!(
        "{flag} {value:?} is not known{hint}; known: {}",
        known.join(", ")
    )
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod known_tests {
    #[test]
    fn a_typo_is_an_error_with_the_closest_known_value() {
        let e = super::known("--kind", "srv_dwn", &["srv_down", "srv_up"]).unwrap_err();
        assert!(e.to_string().contains("did you mean \"srv_down\""), "{e}");
        assert!(super::known("--kind", "srv_up", &["srv_down", "srv_up"]).is_ok());
    }
}

/// The last line of a table: which store (and config) it was read from.
pub fn footer(store: &super::common::StoreArgs, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", Style::detect().paint(&store.footer(), DIM))
}
