//! `hapwatch stats --by status` and `--by url`: requests by status code and
//! by normalised URL over a span, from the stored breakdown windows.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{json, Value};

use super::common::rfc3339;
use super::output::{local_time, Style, Table, DIM, RED, YELLOW};
use super::stats::pct;
use crate::store::queries::{self, WindowFilter};
use crate::urls::UrlCounts;

/// The order of `--by url` rows, largest first.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSort {
    Requests,
    /// 4xx and 5xx answers.
    Errors,
    /// The 95th percentile of the total time.
    P95,
    Bytes,
}

/// The span split into windows: `step` seconds each, or one span.
#[derive(Clone, Copy)]
pub struct Spans {
    pub since_s: i64,
    pub until_s: i64,
    pub step: Option<i64>,
}

impl Spans {
    /// The start and end of the output window a stored window falls in.
    pub fn of(&self, start: i64, span_s: i64) -> (i64, i64) {
        // A --window shorter than the stored windows cannot split them.
        match self.step.map(|s| s.max(span_s)) {
            Some(s) => {
                let from = start.div_euclid(s) * s;
                (from, from + s)
            }
            None => (self.since_s, self.until_s),
        }
    }
}

pub struct StatusRow {
    pub start_s: i64,
    pub end_s: i64,
    /// None: no status (tcplog sessions, `-1`).
    pub status: Option<u16>,
    pub requests: u64,
    /// All requests of this window, for the share.
    pub window_total: u64,
}

pub fn statuses(
    conn: &crate::store::Db,
    filter: &WindowFilter,
    spans: Spans,
) -> crate::store::DbResult<Vec<StatusRow>> {
    let mut sums: HashMap<(i64, i64, u16), u64> = HashMap::new();
    queries::for_each_status(conn, filter, |s| {
        let (from, to) = spans.of(s.start, s.span_s);
        *sums.entry((from, to, s.status)).or_default() += s.requests;
    })?;
    // Per output window: a store that changed its window size can hold two
    // spans starting at the same second.
    let mut totals: HashMap<(i64, i64), u64> = HashMap::new();
    for ((from, to, _), n) in &sums {
        *totals.entry((*from, *to)).or_default() += n;
    }
    let mut rows: Vec<StatusRow> = sums
        .into_iter()
        .map(|((start_s, end_s, code), requests)| StatusRow {
            start_s,
            end_s,
            status: (code != 0).then_some(code),
            requests,
            window_total: totals[&(start_s, end_s)],
        })
        .collect();
    // Codes in order, "no status" last.
    rows.sort_by_key(|r| (r.start_s, r.end_s, r.status.is_none(), r.status));
    Ok(rows)
}

pub struct UrlRow {
    pub start_s: i64,
    pub end_s: i64,
    pub method: String,
    pub path: String,
    pub counts: UrlCounts,
    pub window_total: u64,
}

impl UrlRow {
    fn url(&self) -> String {
        if self.method.is_empty() {
            self.path.clone()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }

    fn sort_key(&self, by: UrlSort) -> u64 {
        let c = &self.counts;
        match by {
            UrlSort::Requests => c.requests,
            UrlSort::Errors => c.s4xx + c.s5xx,
            UrlSort::P95 => c.t_total.quantile(0.95).unwrap_or(0),
            UrlSort::Bytes => c.bytes,
        }
    }
}

/// Each window's URLs, largest first by `sort`, at most `limit` per window (0: all).
pub fn urls(
    conn: &crate::store::Db,
    filter: &WindowFilter,
    spans: Spans,
    sort: UrlSort,
    limit: usize,
) -> crate::store::DbResult<Vec<UrlRow>> {
    // Output window → "METHOD PATH" → figures; the key is built in one
    // reused buffer, so only a new URL allocates.
    let mut groups: HashMap<(i64, i64), HashMap<String, UrlCounts>> = HashMap::new();
    let mut key = String::new();
    queries::for_each_url(conn, filter, |u| {
        key.clear();
        key.push_str(u.method);
        key.push(' ');
        key.push_str(u.path);
        let window = groups.entry(spans.of(u.start, u.span_s)).or_default();
        let c = match window.get_mut(key.as_str()) {
            Some(c) => c,
            None => window.entry(key.clone()).or_default(),
        };
        c.merge(&u.counts);
        c.t_total.merge_encoded(u.t_total);
    })?;
    let mut rows = Vec::new();
    for ((start_s, end_s), window) in groups {
        let window_total = window.values().map(|c| c.requests).sum();
        rows.extend(window.into_iter().map(|(key, counts)| {
            let (method, path) = key.split_once(' ').unwrap_or(("", &key));
            UrlRow {
                start_s,
                end_s,
                method: method.to_owned(),
                path: path.to_owned(),
                counts,
                window_total,
            }
        }));
    }
    rows.sort_by(|a, b| {
        (a.start_s, a.end_s)
            .cmp(&(b.start_s, b.end_s))
            .then(b.sort_key(sort).cmp(&a.sort_key(sort)))
            .then_with(|| (&a.path, &a.method).cmp(&(&b.path, &b.method)))
    });
    if limit > 0 {
        let mut kept: HashMap<(i64, i64), usize> = HashMap::new();
        rows.retain(|r| {
            let n = kept.entry((r.start_s, r.end_s)).or_default();
            *n += 1;
            *n <= limit
        });
    }
    Ok(rows)
}

pub fn status_json(r: &StatusRow) -> Value {
    json!({
        "start": rfc3339(r.start_s * 1000), "end": rfc3339(r.end_s * 1000),
        "status": r.status, "requests": r.requests,
        "share_pct": pct(r.requests, r.window_total),
    })
}

pub fn url_json(r: &UrlRow) -> Value {
    let c = &r.counts;
    json!({
        "start": rfc3339(r.start_s * 1000), "end": rfc3339(r.end_s * 1000),
        "method": r.method, "path": r.path, "requests": c.requests,
        "share_pct": pct(c.requests, r.window_total),
        "s4xx": c.s4xx, "s5xx": c.s5xx, "bytes": c.bytes,
        "p50_ms": c.t_total.quantile(0.5), "p95_ms": c.t_total.quantile(0.95),
        "p99_ms": c.t_total.quantile(0.99),
    })
}

pub fn print_statuses(
    rows: &[StatusRow],
    windowed: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let style = Style::detect();
    if rows.is_empty() {
        return writeln!(out, "{}", style.paint("no traffic in this span", DIM));
    }
    let mut columns = Vec::new();
    if windowed {
        columns.push("START");
    }
    columns.extend(["STATUS", ">REQ", ">SHARE%"]);
    let mut t = Table::new(&columns);
    for r in rows {
        let mut cells = Vec::new();
        if windowed {
            cells.push((local_time(r.start_s * 1000), ""));
        }
        let colour = match r.status {
            Some(500..=599) => RED,
            Some(400..=499) => YELLOW,
            _ => "",
        };
        cells.extend([
            (r.status.map_or("-".to_owned(), |s| s.to_string()), colour),
            (r.requests.to_string(), ""),
            (format!("{:.2}", pct(r.requests, r.window_total)), ""),
        ]);
        t.row(cells);
    }
    t.print(&style, out)
}

pub fn print_urls(rows: &[UrlRow], windowed: bool, out: &mut impl Write) -> std::io::Result<()> {
    let style = Style::detect();
    if rows.is_empty() {
        return writeln!(out, "{}", style.paint("no HTTP traffic in this span", DIM));
    }
    let mut columns = Vec::new();
    if windowed {
        columns.push("START");
    }
    columns.extend([
        "URL", ">REQ", ">SHARE%", ">4XX%", ">5XX%", ">P50", ">P95", ">P99", ">BYTES",
    ]);
    let mut t = Table::new(&columns);
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v}ms"));
    for r in rows {
        let c = &r.counts;
        let mut cells = Vec::new();
        if windowed {
            cells.push((local_time(r.start_s * 1000), ""));
        }
        let p5 = pct(c.s5xx, c.requests);
        cells.extend([
            (r.url(), if r.method.is_empty() { DIM } else { "" }),
            (c.requests.to_string(), ""),
            (format!("{:.2}", pct(c.requests, r.window_total)), ""),
            (format!("{:.2}", pct(c.s4xx, c.requests)), ""),
            (format!("{p5:.2}"), if p5 >= 5.0 { RED } else { "" }),
            (ms(c.t_total.quantile(0.5)), ""),
            (ms(c.t_total.quantile(0.95)), ""),
            (ms(c.t_total.quantile(0.99)), ""),
            (c.bytes.to_string(), ""),
        ]);
        t.row(cells);
    }
    t.print(&style, out)?;
    if rows.iter().any(|r| r.path == crate::urls::OTHER) {
        writeln!(
            out,
            "{}",
            style.paint(
                "(other): the URLs of a backend's window past `[limits] urls`, added up",
                DIM
            )
        )?;
    }
    Ok(())
}
