//! Reads for the CLI. Each filter maps onto an index: events by (proxy, ts)
//! or ts, windows by (backend, start) or the primary key's leading start.

use super::db::{vals, values, Db, DbResult, Param, Row};

use super::writer::IngestRow;
use crate::hist::Histogram;
use crate::windows::Counts;
#[cfg(test)]
use crate::windows::WindowRow;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub ts_ms: i64,
    pub host: String,
    pub kind: String,
    pub template: String,
    pub proxy: Option<String>,
    pub server: Option<String>,
    pub json: String,
    pub raw: String,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub since_ms: i64,
    pub until_ms: i64,
    pub backend: Option<String>,
    pub server: Option<String>,
    pub host: Option<String>,
    /// A kind (`state_change`) or a template (`srv_down`).
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

/// A WHERE clause built from optional equality filters.
struct Where {
    sql: String,
    args: Vec<Param>,
}

impl Where {
    fn new(first: &str, args: Vec<Param>) -> Self {
        Where {
            sql: format!(" WHERE {first}"),
            args,
        }
    }

    fn eq(&mut self, column: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.args.push(v.clone().into());
            self.sql += &format!(" AND {column} = ?{}", self.args.len());
        }
    }
}

pub fn events(conn: &Db, f: &EventFilter) -> DbResult<Vec<StoredEvent>> {
    let mut w = Where::new(
        "ts >= ?1 AND ts < ?2",
        vec![f.since_ms.into(), f.until_ms.into()],
    );
    w.eq("proxy", &f.backend);
    w.eq("server", &f.server);
    w.eq("host", &f.host);
    if let Some(k) = &f.kind {
        w.args.push(k.clone().into());
        let n = w.args.len();
        w.sql += &format!(" AND (kind = ?{n} OR template = ?{n})");
    }
    let limit = f.limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
    // The newest N when limited, shown oldest first.
    let sql = format!(
        "SELECT * FROM (SELECT id, ts, host, kind, template, proxy, server, json, raw FROM events{}
         ORDER BY ts DESC, id DESC{limit}) AS newest ORDER BY ts, id",
        w.sql
    );
    conn.query(&sql, &values(&w.args), |r| {
        Ok(StoredEvent {
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            host: r.get(2)?,
            kind: r.get(3)?,
            template: r.get(4)?,
            proxy: r.get(5)?,
            server: r.get(6)?,
            json: r.get(7)?,
            raw: r.get(8)?,
        })
    })
}

#[derive(Debug, Clone, Default)]
pub struct WindowFilter {
    pub since_s: i64,
    pub until_s: i64,
    pub host: Option<String>,
    pub frontend: Option<String>,
    pub backend: Option<String>,
    pub server: Option<String>,
}

/// One stored window, borrowed from the result row: nothing is allocated
/// per row, so a month of windows aggregates in a single pass.
pub struct WindowRef<'a> {
    pub start: i64,
    pub span_s: i64,
    pub host: &'a str,
    pub frontend: &'a str,
    pub backend: &'a str,
    pub server: &'a str,
    /// Every figure but the histograms, which stay encoded.
    pub counts: Counts,
    pub t_total: &'a [u8],
    pub t_response: &'a [u8],
}

/// Windows overlapping [since, until) that match the filter; `routes` when
/// the table has frontend and server columns.
fn window_where(f: &WindowFilter, routes: bool) -> Where {
    // Windows are at most a day long, which bounds the index range scan.
    let mut w = Where::new(
        "start >= ?1 - 86400 AND start + span_s > ?1 AND start < ?2",
        vec![f.since_s.into(), f.until_s.into()],
    );
    w.eq("backend", &f.backend);
    w.eq("host", &f.host);
    if routes {
        w.eq("server", &f.server);
        w.eq("frontend", &f.frontend);
    }
    w
}

/// Calls `each` with every window that overlaps [since, until), oldest first.
pub fn for_each_window(
    conn: &Db,
    f: &WindowFilter,
    each: impl FnMut(&WindowRef<'_>),
) -> DbResult<()> {
    windows_where(conn, window_where(f, true), each)
}

/// Calls `each` with every window that starts in [since, until), oldest first:
/// a narrower scan than overlapping, for figures bucketed by a window's start.
pub fn for_each_window_started(
    conn: &Db,
    f: &WindowFilter,
    each: impl FnMut(&WindowRef<'_>),
) -> DbResult<()> {
    let mut w = Where::new(
        "start >= ?1 AND start < ?2",
        vec![f.since_s.into(), f.until_s.into()],
    );
    w.eq("backend", &f.backend);
    w.eq("host", &f.host);
    w.eq("server", &f.server);
    w.eq("frontend", &f.frontend);
    windows_where(conn, w, each)
}

fn windows_where(conn: &Db, w: Where, mut each: impl FnMut(&WindowRef<'_>)) -> DbResult<()> {
    let sql = format!(
        "SELECT start, span_s, host, frontend, backend, server, requests, s1xx, s2xx, s3xx, s4xx,
            s5xx, s_other, retries, redispatches, term_client, term_server, term_proxy,
            term_resource, term_other, bytes, t_total_hist, t_response_hist
         FROM windows{} ORDER BY start",
        w.sql
    );
    conn.query(&sql, &values(&w.args), |r: &Row<'_>| {
        let text = |i| r.str(i);
        let blob = |i| r.bytes(i);
        each(&WindowRef {
            start: r.get(0)?,
            span_s: r.get(1)?,
            host: text(2)?,
            frontend: text(3)?,
            backend: text(4)?,
            server: text(5)?,
            counts: Counts {
                requests: r.get(6)?,
                s1xx: r.get(7)?,
                s2xx: r.get(8)?,
                s3xx: r.get(9)?,
                s4xx: r.get(10)?,
                s5xx: r.get(11)?,
                s_other: r.get(12)?,
                retries: r.get(13)?,
                redispatches: r.get(14)?,
                term_client: r.get(15)?,
                term_server: r.get(16)?,
                term_proxy: r.get(17)?,
                term_resource: r.get(18)?,
                term_other: r.get(19)?,
                bytes: r.get(20)?,
                t_total: Histogram::default(),
                // Not stored: only the live totals (/metrics) carry it.
                t_total_sum_ms: 0,
                t_response: Histogram::default(),
            },
            t_total: blob(21)?,
            t_response: blob(22)?,
        });
        Ok(())
    })?;
    Ok(())
}

/// Every (host, backend, server) traffic was stored for, with its last window's start.
/// (Of one backend, with `only`.)
pub fn for_each_route(
    conn: &Db,
    only: Option<&str>,
    mut each: impl FnMut(&str, &str, &str, i64),
) -> DbResult<()> {
    conn.query(
        "SELECT host, backend, server, last_seen FROM routes
         WHERE CAST(?1 AS TEXT) IS NULL OR backend = ?1",
        &vals![only],
        |r| {
            each(r.str(0)?, r.str(1)?, r.str(2)?, r.get(3)?);
            Ok(())
        },
    )?;
    Ok(())
}

/// Where the stored windows end: the end of the newest window. Traffic
/// before it is all stored, on any route (a route with no window there had
/// no requests); the window in progress is not stored yet.
pub fn closed_until(conn: &Db) -> DbResult<Option<i64>> {
    conn.query_opt(
        "SELECT start + span_s FROM windows ORDER BY start DESC LIMIT 1",
        &[],
        |r| r.get(0),
    )
}

/// One quarter hour of a backend on one host (`backend_rollups`); the histogram stays encoded.
pub struct RollupRef<'a> {
    pub start: i64,
    pub requests: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub t_total: &'a [u8],
}

/// Calls `each` with the rollups of `backend` (on `host`, or every host) starting in [since, until).
pub fn for_each_rollup(
    conn: &Db,
    backend: &str,
    host: Option<&str>,
    (since_s, until_s): (i64, i64),
    mut each: impl FnMut(&RollupRef<'_>),
) -> DbResult<()> {
    conn.query(
        "SELECT start, requests, s4xx, s5xx, t_total_hist FROM backend_rollups
         WHERE backend = ?1 AND start >= ?2 AND start < ?3
           AND (CAST(?4 AS TEXT) IS NULL OR host = ?4)
         ORDER BY start",
        &vals![backend, since_s, until_s, host],
        |r| {
            each(&RollupRef {
                start: r.get(0)?,
                requests: r.get(1)?,
                s4xx: r.get(2)?,
                s5xx: r.get(3)?,
                t_total: r.bytes(4)?,
            });
            Ok(())
        },
    )?;
    Ok(())
}

/// An evidence line: a raw 5xx or termination log line kept for its window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    pub start_s: i64,
    pub host: String,
    pub server: String,
    /// 5xx, termination.
    pub class: String,
    pub raw: String,
}

/// The first `limit` evidence lines of windows in the filter, oldest first.
pub fn samples(conn: &Db, f: &WindowFilter, limit: usize) -> DbResult<Vec<Sample>> {
    let w = window_where(f, true);
    let sql = format!(
        "SELECT start, host, server, class, raw FROM samples{} ORDER BY start, rowid LIMIT {limit}",
        w.sql
    );
    conn.query(&sql, &values(&w.args), |r| {
        Ok(Sample {
            start_s: r.get(0)?,
            host: r.get(1)?,
            server: r.get(2)?,
            class: r.get(3)?,
            raw: r.get(4)?,
        })
    })
}

/// One stored count of a status code on a route.
pub struct StatusRef {
    pub start: i64,
    pub span_s: i64,
    pub status: u16,
    pub requests: u64,
}

/// Calls `each` with every status count of a window overlapping [since, until).
pub fn for_each_status(
    conn: &Db,
    f: &WindowFilter,
    mut each: impl FnMut(&StatusRef),
) -> DbResult<()> {
    let w = window_where(f, true);
    let sql = format!(
        "SELECT start, span_s, status, requests FROM status_windows{} ORDER BY start",
        w.sql
    );
    conn.query(&sql, &values(&w.args), |r| {
        each(&StatusRef {
            start: r.get(0)?,
            span_s: r.get(1)?,
            status: r.get(2)?,
            requests: r.get(3)?,
        });
        Ok(())
    })?;
    Ok(())
}

/// One stored URL of a backend's window; the histogram stays encoded.
pub struct UrlRef<'a> {
    pub start: i64,
    pub span_s: i64,
    pub method: &'a str,
    pub path: &'a str,
    pub counts: crate::urls::UrlCounts,
    pub t_total: &'a [u8],
}

/// Calls `each` with every URL row of a window overlapping [since, until).
/// URLs are kept per backend: the filter's frontend and server must be unset.
pub fn for_each_url(
    conn: &Db,
    f: &WindowFilter,
    mut each: impl FnMut(&UrlRef<'_>),
) -> DbResult<()> {
    let w = window_where(f, false);
    let sql = format!(
        "SELECT start, span_s, method, path, requests, s4xx, s5xx, bytes, t_total_hist
         FROM url_windows{} ORDER BY start",
        w.sql
    );
    conn.query(&sql, &values(&w.args), |r| {
        each(&UrlRef {
            start: r.get(0)?,
            span_s: r.get(1)?,
            method: r.str(2)?,
            path: r.str(3)?,
            counts: crate::urls::UrlCounts {
                requests: r.get(4)?,
                s4xx: r.get(5)?,
                s5xx: r.get(6)?,
                bytes: r.get(7)?,
                t_total: Histogram::default(),
            },
            t_total: r.bytes(8)?,
        });
        Ok(())
    })?;
    Ok(())
}

/// Windows that overlap [since, until), decoded.
#[cfg(test)]
pub fn windows(conn: &Db, f: &WindowFilter) -> DbResult<Vec<WindowRow>> {
    let mut out = Vec::new();
    for_each_window(conn, f, |w| {
        let mut counts = w.counts.clone();
        counts.t_total.merge_encoded(w.t_total);
        counts.t_response.merge_encoded(w.t_response);
        out.push(WindowRow {
            start: w.start,
            span_s: w.span_s,
            host: w.host.into(),
            frontend: w.frontend.into(),
            backend: w.backend.into(),
            server: w.server.into(),
            counts,
            samples: Vec::new(),
            statuses: Vec::new(),
        });
    })?;
    Ok(out)
}

/// The daemon's interval counters since `since_ms`, oldest first.
pub fn ingest_stats(conn: &Db, since_ms: i64) -> DbResult<Vec<IngestRow>> {
    conn.query(
        "SELECT ts, interval_ms, received, bytes, parsed, traffic, events, parse_errors, oversized,
            denied, queue_drops, socket_drops, rows_written, detail
         FROM ingest_stats WHERE ts >= ?1 ORDER BY ts",
        &vals![since_ms],
        |r| {
            Ok(IngestRow {
                ts_ms: r.get(0)?,
                interval_ms: r.get(1)?,
                received: r.get(2)?,
                bytes: r.get(3)?,
                parsed: r.get(4)?,
                traffic: r.get(5)?,
                events: r.get(6)?,
                parse_errors: r.get(7)?,
                oversized: r.get(8)?,
                denied: r.get(9)?,
                queue_drops: r.get(10)?,
                socket_drops: r.get(11)?,
                rows_written: r.get(12)?,
                detail: r.get(13)?,
            })
        },
    )
}

/// The backend names the store has seen, in events or traffic windows:
/// what a silence may name.
pub fn backends(conn: &Db) -> DbResult<Vec<String>> {
    conn.query(
        "SELECT DISTINCT proxy FROM events WHERE proxy IS NOT NULL
         UNION SELECT DISTINCT backend FROM windows ORDER BY 1",
        &[],
        |r| r.get(0),
    )
}
