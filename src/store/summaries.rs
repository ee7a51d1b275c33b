//! What the writer keeps beside the events and windows, in the same
//! transaction, so the console (and a restart) need not search them: each
//! server's latest state and check line, every route's last window, and each
//! backend's traffic per quarter hour.

use std::collections::BTreeMap;

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use super::db::{vals, Db, DbResult};
use super::writer::EventRow;
use crate::hist::Histogram;
use crate::windows::WindowRow;

/// Each server's latest state line. Log lines are ordered by their header
/// time (of the same millisecond, the last stored wins) against log lines
/// only: `log_ts` is the last one's. A reconciliation from HAProxy's stats
/// is stamped by hapwatch's clock, not HAProxy's, so it is applied in
/// arrival order, as the engine applies it, and leaves `log_ts` alone.
const STATE_UPSERT: &str =
    "INSERT INTO server_state (host, backend, server, state, state_ts, reason,
        active_left, backup_left, log_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5)
     ON CONFLICT (host, backend, server) DO UPDATE SET state = excluded.state,
        state_ts = excluded.state_ts, reason = excluded.reason,
        active_left = excluded.active_left, backup_left = excluded.backup_left,
        log_ts = excluded.state_ts
     WHERE excluded.state_ts >= coalesce(server_state.log_ts, excluded.state_ts)";

/// A reconciliation's state: whatever was there before.
const RECONCILED_UPSERT: &str =
    "INSERT INTO server_state (host, backend, server, state, state_ts, reason)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (host, backend, server) DO UPDATE SET state = excluded.state,
        state_ts = excluded.state_ts, reason = excluded.reason";

/// Each server's latest check line, as [`STATE_UPSERT`].
const CHECK_UPSERT: &str =
    "INSERT INTO server_state (host, backend, server, check_ts, check_result,
        check_reason, check_code, check_info, check_duration_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (host, backend, server) DO UPDATE SET check_ts = excluded.check_ts,
        check_result = excluded.check_result, check_reason = excluded.check_reason,
        check_code = excluded.check_code, check_info = excluded.check_info,
        check_duration_ms = excluded.check_duration_ms
     WHERE excluded.check_ts >= coalesce(server_state.check_ts, excluded.check_ts)";

/// The span of `backend_rollups` rows, seconds (as schema migration 8 fills them).
pub const ROLLUP_S: i64 = 900;

/// Each state and check line of a batch into `server_state`.
pub fn write_states(tx: &Db, events: &[EventRow]) -> DbResult<()> {
    for e in events {
        let (Some(proxy), Some(server)) = (&e.proxy, &e.server) else {
            continue;
        };
        if e.template == "reconciliation" && e.new_state.is_some() {
            tx.execute(
                RECONCILED_UPSERT,
                &vals![e.host, proxy, server, e.new_state, e.ts_ms, e.reason],
            )?;
        } else if e.kind == "state_change" && e.new_state.is_some() {
            tx.execute(
                STATE_UPSERT,
                &vals![
                    e.host,
                    proxy,
                    server,
                    e.new_state,
                    e.ts_ms,
                    e.reason,
                    e.active_left,
                    e.backup_left
                ],
            )?;
        } else if e.kind == "health_check" {
            tx.execute(
                CHECK_UPSERT,
                &vals![
                    e.host,
                    proxy,
                    server,
                    e.ts_ms,
                    e.check_result,
                    e.reason,
                    e.code,
                    e.info,
                    e.check_duration_ms
                ],
            )?;
        }
    }
    Ok(())
}

/// What the console reads beside the windows (bookkeeping, not counted as
/// rows): every route's last window, and each backend's quarter hours.
/// Summed here first, so a batch costs one upsert per key, not per window.
pub fn write_routes_and_rollups(tx: &Db, windows: &[&WindowRow]) -> DbResult<()> {
    // Sorted: every node upserts the same keys in the same order (no deadlock).
    let mut routes: BTreeMap<(&str, &str, &str), (i64, i64)> = BTreeMap::new();
    let mut rollups: BTreeMap<(&str, i64, &str), Rollup> = BTreeMap::new();
    for w in windows {
        let seen = routes
            .entry((&w.host, &w.backend, &w.server))
            .or_insert((w.start, w.start));
        *seen = (seen.0.min(w.start), seen.1.max(w.start));
        let quarter = w.start - w.start.rem_euclid(ROLLUP_S);
        let r = rollups.entry((&w.backend, quarter, &w.host)).or_default();
        r.requests += w.counts.requests;
        r.s4xx += w.counts.s4xx;
        r.s5xx += w.counts.s5xx;
        r.t_total.merge(&w.counts.t_total);
    }
    for ((host, backend, server), (first, last)) in routes {
        tx.execute(
            "INSERT INTO routes (host, backend, server, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (host, backend, server) DO UPDATE SET
                first_seen = CASE WHEN excluded.first_seen < routes.first_seen
                    THEN excluded.first_seen ELSE routes.first_seen END,
                last_seen = CASE WHEN excluded.last_seen > routes.last_seen
                    THEN excluded.last_seen ELSE routes.last_seen END",
            &vals![host, backend, server, first, last],
        )?;
    }
    for ((backend, quarter, host), r) in rollups {
        tx.execute(
            "INSERT INTO backend_rollups (backend, start, host, requests, s4xx, s5xx, t_total_hist)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (backend, start, host) DO UPDATE SET
                requests = backend_rollups.requests + excluded.requests,
                s4xx = backend_rollups.s4xx + excluded.s4xx,
                s5xx = backend_rollups.s5xx + excluded.s5xx,
                t_total_hist = hist_merge(backend_rollups.t_total_hist, excluded.t_total_hist)",
            &vals![
                backend,
                quarter,
                host,
                r.requests,
                r.s4xx,
                r.s5xx,
                r.t_total.encode()
            ],
        )?;
    }
    Ok(())
}

/// A backend's quarter hour on one host, as summed from a batch's windows.
#[derive(Default)]
struct Rollup {
    requests: u64,
    s4xx: u64,
    s5xx: u64,
    t_total: Histogram,
}

pub fn register_hist_sum(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_aggregate_function(
        "hist_sum",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        HistSum,
    )
}

/// `hist_sum(h)`: the sum of a column of encoded histograms (the rollups' backfill).
struct HistSum;

impl rusqlite::functions::Aggregate<Histogram, Vec<u8>> for HistSum {
    fn init(&self, _: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<Histogram> {
        Ok(Histogram::default())
    }

    fn step(
        &self,
        ctx: &mut rusqlite::functions::Context<'_>,
        sum: &mut Histogram,
    ) -> rusqlite::Result<()> {
        let bytes = ctx
            .get_raw(0)
            .as_blob()
            .map_err(|e| rusqlite::Error::UserFunctionError(format!("hist_sum: {e}").into()))?;
        if !sum.merge_encoded(bytes) {
            return Err(rusqlite::Error::UserFunctionError(
                "hist_sum: not a histogram".into(),
            ));
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        sum: Option<Histogram>,
    ) -> rusqlite::Result<Vec<u8>> {
        Ok(sum.unwrap_or_default().encode())
    }
}
