//! The single writer: a thread that owns the write connection and commits
//! whatever has queued up in one transaction, plus background retention.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use super::db::{vals, Db, DbResult, Value};
use super::spool::Spool;

use crate::hist::Histogram;
use crate::windows::{UrlRow, WindowRow};

/// One stored health/state/proxy event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventRow {
    pub ts_ms: i64,
    pub host: String,
    #[serde(deserialize_with = "event_kind")]
    pub kind: Named,
    pub template: String,
    pub proxy: Option<String>,
    pub server: Option<String>,
    pub new_state: Option<String>,
    pub old_state: Option<String>,
    pub reason: Option<String>,
    pub code: Option<i64>,
    pub info: Option<String>,
    pub check_duration_ms: Option<u64>,
    /// A check's outcome: succeeded, failed, conditionally succeeded.
    #[serde(deserialize_with = "check_result")]
    pub check_result: Option<Named>,
    pub active_left: Option<u32>,
    pub backup_left: Option<u32>,
    /// The event as `hapwatch parse` prints it.
    pub json: String,
    pub raw: String,
    /// Who sent it, when its header says, and what it says: the same for
    /// every node that received it, so it is stored once (None: made here).
    pub ident: Option<[u8; 16]>,
}

/// One of a fixed set of names. (Spelt through an alias so serde does not
/// take the field for one borrowed from its input: it is read by
/// [`event_kind`], never borrowed.)
pub type Named = &'static str;

/// An event's kind read back from the spool's journal: one of those
/// `Event::kind` names (anything else was made here, as `other`).
fn event_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let kind: String = serde::Deserialize::deserialize(d)?;
    const KINDS: [&str; 5] = [
        "health_check",
        "state_change",
        "backend_down",
        "http",
        "tcp",
    ];
    Ok(KINDS.into_iter().find(|k| *k == kind).unwrap_or("other"))
}

fn check_result<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    use hapwatch_parsers::CheckResult;
    let result: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(result.and_then(|r| {
        [
            CheckResult::Succeeded,
            CheckResult::ConditionallySucceeded,
            CheckResult::Failed,
        ]
        .into_iter()
        .map(CheckResult::as_str)
        .find(|s| *s == r)
    }))
}

impl EventRow {
    /// An event with only its time, host, shape and text: the fields of a
    /// check or state line are set by whoever has them.
    pub fn bare(
        ts_ms: i64,
        host: String,
        kind: &'static str,
        template: String,
        json: String,
        raw: String,
    ) -> EventRow {
        EventRow {
            ts_ms,
            host,
            kind,
            template,
            proxy: None,
            server: None,
            new_state: None,
            old_state: None,
            reason: None,
            code: None,
            info: None,
            check_duration_ms: None,
            check_result: None,
            active_left: None,
            backup_left: None,
            json,
            raw,
            ident: None,
        }
    }
}

/// The daemon's counters over one interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestRow {
    pub ts_ms: i64,
    pub interval_ms: i64,
    pub received: u64,
    pub bytes: u64,
    pub parsed: u64,
    pub traffic: u64,
    pub events: u64,
    pub parse_errors: u64,
    pub oversized: u64,
    pub denied: u64,
    pub queue_drops: u64,
    pub socket_drops: u64,
    pub rows_written: u64,
    pub detail: String,
}

pub enum WriteOp {
    Events(Vec<EventRow>),
    /// Incident changes and the notifications they cause, committed together.
    Incidents(
        Vec<crate::incidents::Change>,
        Vec<hapwatch_engine::notify::OutboxOp>,
    ),
    /// Outcomes of delivery attempts.
    Deliveries(Vec<super::outbox::Attempt>),
    Windows(Vec<WindowRow>),
    Urls(Vec<UrlRow>),
    Ingest(IngestRow),
    /// The channels the daemon now delivers to: (name, fingerprint), at a start or reload.
    Channels(Vec<(String, String)>, i64),
    /// Failed rows to send again (asked by the CLI): queued from `at_ms`.
    Retry(Vec<i64>, i64),
    /// What acknowledgements owe (PagerDuty's acknowledge), and the acks
    /// (incident, acked at) it settles, committed together at `at_ms`.
    Acked {
        notifications: Vec<hapwatch_engine::notify::OutboxOp>,
        acks: Vec<(i64, i64)>,
        at_ms: i64,
    },
    /// Answered once everything sent before it is committed.
    Barrier(SyncSender<()>),
}

#[derive(Debug, Clone)]
pub struct Retention {
    pub windows: Duration,
    pub events: Duration,
    /// Evidence lines (`StorageConfig::samples_kept`).
    pub samples: Duration,
    /// The clock the rows were stamped by.
    pub wall: crate::timezone::WallClock,
}

/// Ops a transaction takes at most; bounds how long a reader can wait.
const MAX_BATCH: usize = 512;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The longest one pruning statement may take on PostgreSQL.
const PRUNE_DEADLINE: Duration = Duration::from_secs(600);

/// `hist_merge(a, b)`: the sum of two encoded histograms, for upserts of late
/// windows; `hist_sum(column)`, the same as an aggregate.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "hist_merge",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let a: Vec<u8> = ctx.get(0)?;
            let b: Vec<u8> = ctx.get(1)?;
            let bad = || rusqlite::Error::UserFunctionError("hist_merge: not a histogram".into());
            let mut h = Histogram::decode(&a).ok_or_else(bad)?;
            h.merge(&Histogram::decode(&b).ok_or_else(bad)?);
            Ok(h.encode())
        },
    )?;
    super::summaries::register_hist_sum(conn)
}

/// What the writer counts: rows committed, batches that failed, rows refused alone.
#[derive(Clone, Default)]
pub struct WriterCounters {
    pub rows_written: Arc<AtomicU64>,
    pub write_errors: Arc<AtomicU64>,
    pub rows_rejected: Arc<AtomicU64>,
    /// Set when the file itself is unusable: the daemon stops rather than pretend.
    pub store_error: Arc<std::sync::Mutex<Option<String>>>,
    /// Set while a failed batch is held and retried.
    pub retrying: Arc<std::sync::atomic::AtomicBool>,
    /// Set at shutdown: past it, what waiting could fix is given up (and counted).
    pub stop_by: Arc<std::sync::Mutex<Option<Instant>>>,
    /// Several nodes on one store: decisions are committed only under the
    /// lease this node holds, and each sender's window is counted by one node.
    pub cluster: Option<Arc<crate::cluster::Role>>,
    pub decisions_fenced: Arc<AtomicU64>,
    pub events_duplicate: Arc<AtomicU64>,
    pub windows_peer: Arc<AtomicU64>,
    /// What failing open (writing to the local spool) did.
    pub spool: Arc<super::spool::SpoolCounters>,
}

pub struct Writer {
    pub tx: SyncSender<WriteOp>,
    handle: std::thread::JoinHandle<()>,
    stop_by: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Writer {
    /// Starts the writer thread.
    pub fn spawn(conn: Db, retention: Option<Retention>, counters: WriterCounters) -> Writer {
        Writer::spawn_waking(conn, retention, counters, None, None)
    }

    /// As [`spawn`](Self::spawn); `outbox` is woken after a commit that
    /// queued notifications; with a `spool`, writes the store keeps refusing
    /// go there (fail-open) until it answers again.
    pub fn spawn_waking(
        conn: Db,
        retention: Option<Retention>,
        counters: WriterCounters,
        outbox: Option<Arc<tokio::sync::Notify>>,
        mut spool: Option<Spool>,
    ) -> Writer {
        let (tx, rx) = mpsc::sync_channel::<WriteOp>(1024);
        let stop_by = counters.stop_by.clone();
        let handle = std::thread::Builder::new()
            .name("hapwatch-writer".into())
            .spawn(move || {
                let mut last_prune: Option<Instant> = None;
                loop {
                    let spooling = spool.as_ref().is_some_and(Spool::spooling);
                    if let (Some(r), false) = (&retention, spooling) {
                        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                            prune(&conn, r);
                            last_prune = Some(Instant::now());
                        }
                    }
                    // Spooling, the store is tried again even while nothing comes.
                    let wait = if spooling {
                        Duration::from_secs(1)
                    } else {
                        PRUNE_EVERY
                    };
                    let first = match rx.recv_timeout(wait) {
                        Ok(op) => op,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Some(s) = spool.as_mut().filter(|s| s.spooling() && s.due()) {
                                try_merge(&conn, s, &counters);
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    let rows = match spool.as_mut() {
                        Some(s) if s.spooling() => {
                            if s.due() && try_merge(&conn, s, &counters) {
                                commit_with_retries(&conn, &batch, &counters, Some(s))
                            } else {
                                s.append(&batch, &counters)
                            }
                        }
                        s => commit_with_retries(&conn, &batch, &counters, s),
                    };
                    counters.rows_written.fetch_add(rows, Relaxed);
                    for op in &batch {
                        if let WriteOp::Barrier(done) = op {
                            let _ = done.send(());
                        }
                    }
                    let queued = batch.iter().any(|op| match op {
                        WriteOp::Incidents(_, n) => !n.is_empty(),
                        WriteOp::Acked { notifications, .. } => !notifications.is_empty(),
                        _ => false,
                    });
                    // (Waiting rows are woken for by the pipeline, which composes them.)
                    if let (true, Some(wake)) = (queued, &outbox) {
                        wake.notify_one();
                    }
                }
            })
            .expect("spawn the writer thread");
        Writer {
            tx,
            handle,
            stop_by,
        }
    }

    /// From `deadline` on, a batch the store keeps refusing (a full disk) is
    /// counted and logged as lost instead of held: shutdown must end.
    pub fn stop_by(&self, deadline: Instant) {
        *self.stop_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    }

    /// Commits what is queued, then stops the thread.
    pub fn finish(self) {
        drop(self.tx);
        let _ = self.handle.join();
    }
}

pub(super) fn past_stop(counters: &WriterCounters) -> bool {
    counters
        .stop_by
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some_and(|t| Instant::now() >= t)
}

/// Commits a batch; while the failure is one that waiting can fix, waits and
/// tries again (the bounded queue in front then holds, and ingest counts what
/// it must drop), so nothing accepted is lost to a lock or a full disk. Any
/// other failure is a property of some row, never of the batch: the batch is
/// committed op by op, and a failing op row by row, so only the rows SQLite
/// refuses are lost, each counted and logged.
fn commit_with_retries(
    conn: &Db,
    batch: &[WriteOp],
    counters: &WriterCounters,
    spool: Option<&mut Spool>,
) -> u64 {
    match commit(conn, batch, counters, spool.as_ref().map(|s| s.after)) {
        Ok(rows) => rows,
        // Even at shutdown: the spool keeps it.
        Err(e) if e.transient() && spool.is_some() => {
            let spool = spool.expect("matched");
            match spool.begin(counters, &e, now_ms()) {
                true => spool.append(batch, counters),
                false => commit_with_retries(conn, batch, counters, None),
            }
        }
        Err(e) if e.transient() && past_stop(counters) => {
            counters
                .rows_rejected
                .fetch_add(batch.len() as u64, Relaxed);
            tracing::error!(error = %e, ops = batch.len(), "shutting down while the database still refuses writes; this batch is not written");
            0
        }
        Err(e) if e.broken() => {
            counters.write_errors.fetch_add(1, Relaxed);
            counters
                .rows_rejected
                .fetch_add(batch.len() as u64, Relaxed);
            tracing::error!(error = %e, ops = batch.len(), "the database file is unusable; this batch is lost");
            *counters
                .store_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                Some(format!("the database cannot be written: {e}"));
            0
        }
        Err(e) => {
            counters.write_errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, ops = batch.len(), "a database write failed; committing its rows one by one");
            batch
                .iter()
                .map(|op| commit_isolating(conn, op, counters))
                .sum()
        }
    }
}

/// One op on its own; a failing one row by row.
fn commit_isolating(conn: &Db, op: &WriteOp, counters: &WriterCounters) -> u64 {
    if let Ok(rows) = commit(conn, std::slice::from_ref(op), counters, None) {
        return rows;
    }
    let singles: Vec<WriteOp> = match op {
        WriteOp::Events(v) => v.iter().map(|e| WriteOp::Events(vec![e.clone()])).collect(),
        WriteOp::Windows(v) => v
            .iter()
            .map(|w| WriteOp::Windows(vec![w.clone()]))
            .collect(),
        WriteOp::Urls(v) => v.iter().map(|u| WriteOp::Urls(vec![u.clone()])).collect(),
        WriteOp::Deliveries(v) => v
            .iter()
            .map(|d| WriteOp::Deliveries(vec![d.clone()]))
            .collect(),
        // An incident change and its outbox rows are one decision; the rest are one row.
        _ => Vec::new(),
    };
    if singles.is_empty() {
        counters.rows_rejected.fetch_add(1, Relaxed);
        tracing::error!(
            op = op.kind(),
            "the database refused this write; it is lost"
        );
        return 0;
    }
    let mut rows = 0;
    for single in &singles {
        match commit(conn, std::slice::from_ref(single), counters, None) {
            Ok(n) => rows += n,
            Err(e) => {
                counters.rows_rejected.fetch_add(1, Relaxed);
                tracing::error!(error = %e, op = single.kind(), row = %single.describe(), "the database refused one row; the others of its batch are kept");
            }
        }
    }
    rows
}

/// Commits, waiting out what waiting can fix (for at most `give_up_after`,
/// if any); the error of anything else.
fn commit(
    conn: &Db,
    batch: &[WriteOp],
    counters: &WriterCounters,
    give_up_after: Option<Duration>,
) -> DbResult<u64> {
    let mut wait = Duration::from_millis(100);
    let mut failing_since: Option<Instant> = None;
    loop {
        match write_batch(conn, batch, counters) {
            Ok(rows) => {
                if let Some(since) = failing_since {
                    counters.retrying.store(false, Relaxed);
                    tracing::info!(after = ?since.elapsed(), "database writes resumed; nothing was lost");
                }
                return Ok(rows);
            }
            Err(e) if e.transient() && !past_stop(counters) => {
                counters.write_errors.fetch_add(1, Relaxed);
                let failing_for = failing_since.map_or(Duration::ZERO, |t| t.elapsed());
                if give_up_after.is_some_and(|limit| failing_for >= limit) {
                    counters.retrying.store(false, Relaxed);
                    return Err(e);
                }
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    counters.retrying.store(true, Relaxed);
                    tracing::error!(error = %e, "database write failed; holding the batch and retrying");
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                counters.retrying.store(false, Relaxed);
                return Err(e);
            }
        }
    }
}

/// Tries to merge the spool into the store; whether the store took it.
fn try_merge(conn: &Db, spool: &mut Spool, counters: &WriterCounters) -> bool {
    match spool.merge_into(conn, counters, now_ms()) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "the shared store still does not answer; spooling on");
            false
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl WriteOp {
    fn kind(&self) -> &'static str {
        match self {
            WriteOp::Events(_) => "events",
            WriteOp::Incidents(..) => "incidents",
            WriteOp::Deliveries(_) => "deliveries",
            WriteOp::Windows(_) => "windows",
            WriteOp::Urls(_) => "urls",
            WriteOp::Ingest(_) => "ingest",
            WriteOp::Channels(..) => "channels",
            WriteOp::Retry(..) => "retry",
            WriteOp::Acked { .. } => "acks",
            WriteOp::Barrier(_) => "barrier",
        }
    }

    /// What a refused row was, for the log (its raw line, cut short).
    fn describe(&self) -> String {
        let text = match self {
            WriteOp::Events(v) => v.first().map(|e| e.raw.clone()),
            WriteOp::Windows(v) => v
                .first()
                .map(|w| format!("window {} {}/{}/{}", w.start, w.host, w.backend, w.server)),
            WriteOp::Urls(v) => v.first().map(|u| {
                format!(
                    "url window {} {}/{} {} {}",
                    u.start, u.host, u.backend, u.method, u.path
                )
            }),
            WriteOp::Deliveries(v) => v.first().map(|d| format!("outbox row {}", d.id)),
            _ => None,
        };
        crate::escape::escape(
            &text
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>(),
        )
        .into_owned()
    }
}

fn write_batch(conn: &Db, batch: &[WriteOp], counters: &WriterCounters) -> DbResult<u64> {
    let mut tally = Tally::default();
    let rows = conn.transaction(|tx| write_ops(tx, batch, counters, &mut tally, None))?;
    // Counted once committed: a batch retried is not counted twice.
    counters.decisions_fenced.fetch_add(tally.fenced, Relaxed);
    counters
        .events_duplicate
        .fetch_add(tally.duplicates, Relaxed);
    counters.windows_peer.fetch_add(tally.peer_windows, Relaxed);
    if tally.fenced > 0 {
        tracing::warn!(
            ops = tally.fenced,
            "another node took the lease: decisions made here before it noticed are not committed (the new decider makes its own)"
        );
    }
    Ok(rows)
}

/// What a batch left out because another node had it.
#[derive(Default)]
pub(super) struct Tally {
    pub fenced: u64,
    pub duplicates: u64,
    pub peer_windows: u64,
}

/// Whether this batch's decisions may be committed: always for one node
/// alone; with several, only while the database names this node's epoch.
fn may_decide(tx: &Db, counters: &WriterCounters, checked: &mut Option<bool>) -> DbResult<bool> {
    let Some(role) = &counters.cluster else {
        return Ok(true);
    };
    if let Some(ok) = *checked {
        return Ok(ok);
    }
    let epoch = role.deciding();
    let ok = epoch != 0 && crate::cluster::fenced(tx, role, epoch)?;
    *checked = Some(ok);
    Ok(ok)
}

/// Stores events, but those another node (or a takeover) stored: the rows stored.
fn insert_events(tx: &Db, events: &[&EventRow], tally: &mut Tally) -> DbResult<u64> {
    let idents: Vec<Option<Vec<u8>>> = events.iter().map(|e| e.ident.map(|i| i.to_vec())).collect();
    let rows: Vec<Vec<Value<'_>>> = events
        .iter()
        .zip(&idents)
        .map(|(e, ident)| {
            vals![
                e.ts_ms,
                e.host,
                e.kind,
                e.template,
                e.proxy,
                e.server,
                e.new_state,
                e.old_state,
                e.reason,
                e.code,
                e.info,
                e.check_duration_ms,
                e.active_left,
                e.backup_left,
                e.json,
                e.raw,
                *ident
            ]
            .to_vec()
        })
        .collect();
    let stored = EVENT_INSERT.run(tx, &rows, |i| events[i].ident.ok_or(i))?;
    // Nothing stored for a row: another node had stored the same line.
    tally.duplicates += events.len() as u64 - stored;
    Ok(stored)
}

const EVENT_INSERT: super::rows::Insert<'static> = super::rows::Insert {
    head: "INSERT INTO events (ts, host, kind, template, proxy, server, new_state,
        old_state, reason, code, info, check_duration_ms, active_left,
        backup_left, json, raw, ident)",
    tail: "ON CONFLICT DO NOTHING",
    columns: 17,
};

/// The batch's events, by identity (the order their unique index is
/// locked in on every node); the rows stored.
fn insert_events_in_order(tx: &Db, batch: &[WriteOp], tally: &mut Tally) -> DbResult<u64> {
    let mut events: Vec<&EventRow> = batch
        .iter()
        .filter_map(|op| match op {
            WriteOp::Events(events) => Some(events.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    events.sort_by_key(|e| e.ident);
    insert_events(tx, &events, tally)
}

/// The sender's window a traffic row falls in, as claims name it.
fn window_claim(w: &WindowRow) -> super::claims::WindowKey<'_> {
    (&w.host, w.span_s, w.start)
}

fn url_claim(u: &UrlRow) -> super::claims::WindowKey<'_> {
    (&u.host, u.span_s, u.start)
}

/// Every window the batch's traffic rows fall in.
fn windows_of(batch: &[WriteOp]) -> Vec<super::claims::WindowKey<'_>> {
    let mut keys = Vec::new();
    for op in batch {
        match op {
            WriteOp::Windows(w) => keys.extend(w.iter().map(window_claim)),
            WriteOp::Urls(u) => keys.extend(u.iter().map(url_claim)),
            _ => {}
        }
    }
    keys
}

/// Writes a batch inside `tx`; `decide` is whether its decisions may be
/// committed, when known already (None: the fence says, when it is asked).
pub(super) fn write_ops(
    tx: &Db,
    batch: &[WriteOp],
    counters: &WriterCounters,
    tally: &mut Tally,
    mut decide: Option<bool>,
) -> DbResult<u64> {
    let mut rows = 0u64;
    // Sharing the store, a batch takes its row locks in one order every node
    // shares: its windows' claims, then its events by identity. Two nodes'
    // batches then wait for each other, never deadlock.
    let claimed = match &counters.cluster {
        Some(role) => {
            let claimed = super::claims::claim(tx, &role.node, windows_of(batch))?;
            rows += insert_events_in_order(tx, batch, tally)?;
            claimed
        }
        None => HashMap::new(),
    };
    for op in batch {
        match op {
            WriteOp::Incidents(changes, notifications)
                if !may_decide(tx, counters, &mut decide)? =>
            {
                tally.fenced += (changes.len() + notifications.len()) as u64;
            }
            WriteOp::Acked { notifications, .. } if !may_decide(tx, counters, &mut decide)? => {
                tally.fenced += notifications.len() as u64;
            }
            WriteOp::Barrier(_) => {}
            WriteOp::Events(events) => {
                // Each server's state as the decider saw it: what a node
                // taking over reads back, beside the incidents it opened.
                if may_decide(tx, counters, &mut decide)? {
                    super::summaries::write_states(tx, events)?;
                }
                // (Sharing the store, they went in first, above.)
                if counters.cluster.is_none() {
                    let events: Vec<&EventRow> = events.iter().collect();
                    rows += insert_events(tx, &events, tally)?;
                }
            }
            WriteOp::Windows(windows) => {
                let mine = super::claims::mine(counters, &claimed, windows, window_claim);
                tally.peer_windows += (windows.len() - mine.len()) as u64;
                rows += write_windows(tx, &mine)?;
            }
            WriteOp::Urls(urls) => {
                let mine = super::claims::mine(counters, &claimed, urls, url_claim);
                rows += write_urls(tx, &mine)?;
            }
            WriteOp::Incidents(changes, notifications) => {
                let group = counters.cluster.as_ref().map_or("default", |r| &*r.group);
                rows += write_incidents(tx, changes, group)?;
                rows += write_outbox(tx, notifications)?;
            }
            WriteOp::Acked {
                notifications,
                acks,
                at_ms,
            } => {
                rows += write_outbox(tx, notifications)?;
                super::acks::mark_notified(tx, acks, *at_ms)?;
            }
            WriteOp::Deliveries(attempts) => {
                for a in attempts {
                    tx.execute(
                        "UPDATE outbox SET attempts = ?2, delivered_at = ?3, next_attempt_at = ?4,
                            failed_at = CASE WHEN ?5 THEN ?4 END, last_error = ?6,
                            state = CASE WHEN ?3 IS NOT NULL THEN 'delivered'
                                WHEN ?5 THEN 'failed' ELSE 'queued' END,
                            claim_node = NULL, claim_until = NULL
                         WHERE id = ?1 AND state = 'queued'",
                        &vals![
                            a.id,
                            a.attempts,
                            a.delivered_ms,
                            a.next_attempt_ms,
                            a.failed,
                            a.error
                        ],
                    )?;
                    tx.execute(
                        "INSERT INTO delivery_attempts (outbox_id, node, at, attempt, outcome, error)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        &vals![
                            a.id,
                            &*a.node,
                            a.at_ms,
                            a.attempts,
                            a.outcome(),
                            a.error
                        ],
                    )?;
                    rows += 1;
                }
            }
            WriteOp::Channels(channels, at_ms) => {
                tx.execute("DELETE FROM channels_running", &[])?;
                for (name, fingerprint) in channels {
                    tx.execute(
                        "INSERT INTO channels_running (name, fingerprint, since)
                         VALUES (?1, ?2, ?3)",
                        &vals![name, fingerprint, at_ms],
                    )?;
                    rows += 1;
                }
            }
            WriteOp::Retry(ids, at_ms) => {
                for id in ids {
                    rows += tx.execute(
                        "UPDATE outbox SET state = 'queued', failed_at = NULL, attempts = 0,
                            next_attempt_at = ?2, last_error = NULL, created_at = ?2
                         WHERE id = ?1 AND state = 'failed'",
                        &vals![id, at_ms],
                    )?;
                    tx.execute("DELETE FROM outbox_retries WHERE id = ?1", &vals![id])?;
                }
            }
            WriteOp::Ingest(s) => {
                tx.execute(
                    "INSERT INTO ingest_stats (ts, interval_ms, received, bytes, parsed, traffic, events,
                        parse_errors, oversized, denied, queue_drops, socket_drops, rows_written, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    &vals![
                        s.ts_ms, s.interval_ms, s.received, s.bytes, s.parsed, s.traffic, s.events,
                        s.parse_errors, s.oversized, s.denied, s.queue_drops, s.socket_drops,
                        s.rows_written, s.detail
                    ],
                )?;
                rows += 1;
            }
        }
    }
    Ok(rows)
}

/// A window closed earlier and re-opened by late lines merges into its row.
const WINDOW_UPSERT: super::rows::Insert<'static> = super::rows::Insert {
    head: "INSERT INTO windows (start, span_s, host, frontend, backend, server,
        requests, s1xx, s2xx, s3xx, s4xx, s5xx, s_other, retries, redispatches,
        term_client, term_server, term_proxy, term_resource, term_other, bytes,
        t_total_hist, t_response_hist)",
    tail: "ON CONFLICT (start, span_s, host, frontend, backend, server) DO UPDATE SET
        requests = windows.requests + excluded.requests,
        s1xx = windows.s1xx + excluded.s1xx, s2xx = windows.s2xx + excluded.s2xx,
        s3xx = windows.s3xx + excluded.s3xx, s4xx = windows.s4xx + excluded.s4xx,
        s5xx = windows.s5xx + excluded.s5xx, s_other = windows.s_other + excluded.s_other,
        retries = windows.retries + excluded.retries,
        redispatches = windows.redispatches + excluded.redispatches,
        term_client = windows.term_client + excluded.term_client,
        term_server = windows.term_server + excluded.term_server,
        term_proxy = windows.term_proxy + excluded.term_proxy,
        term_resource = windows.term_resource + excluded.term_resource,
        term_other = windows.term_other + excluded.term_other,
        bytes = windows.bytes + excluded.bytes,
        t_total_hist = hist_merge(windows.t_total_hist, excluded.t_total_hist),
        t_response_hist = hist_merge(windows.t_response_hist, excluded.t_response_hist)",
    columns: 23,
};

/// A window's key in `windows` (and, with a status code, in `status_windows`).
fn window_key(w: &WindowRow) -> (i64, i64, &str, &str, &str, &str) {
    (
        w.start,
        w.span_s,
        &w.host,
        &w.frontend,
        &w.backend,
        &w.server,
    )
}

fn write_windows(tx: &Db, windows: &[&WindowRow]) -> DbResult<u64> {
    super::summaries::write_routes_and_rollups(tx, windows)?;
    let hists: Vec<(Vec<u8>, Vec<u8>)> = windows
        .iter()
        .map(|w| (w.counts.t_total.encode(), w.counts.t_response.encode()))
        .collect();
    let rows: Vec<Vec<Value<'_>>> = windows
        .iter()
        .zip(&hists)
        .map(|(w, (total, response))| {
            let c = &w.counts;
            vals![
                w.start,
                w.span_s,
                w.host,
                w.frontend,
                w.backend,
                w.server,
                c.requests,
                c.s1xx,
                c.s2xx,
                c.s3xx,
                c.s4xx,
                c.s5xx,
                c.s_other,
                c.retries,
                c.redispatches,
                c.term_client,
                c.term_server,
                c.term_proxy,
                c.term_resource,
                c.term_other,
                c.bytes,
                *total,
                *response
            ]
            .to_vec()
        })
        .collect();
    WINDOW_UPSERT.run(tx, &rows, |i| window_key(windows[i]))?;
    let mut samples = Vec::new();
    let mut statuses = Vec::new();
    let mut status_keys = Vec::new();
    for w in windows {
        let at = vals![w.start, w.span_s, w.host, w.frontend, w.backend, w.server];
        for (class, raw) in &w.samples {
            let mut row = at.to_vec();
            row.extend(vals![*class, *raw]);
            samples.push(row);
        }
        for (code, n) in &w.statuses {
            let mut row = at.to_vec();
            row.extend(vals![*code, *n]);
            statuses.push(row);
            status_keys.push((window_key(w), *code));
        }
    }
    // Evidence lines are rows of their own, never merged: no key to keep apart.
    SAMPLES_INSERT.run(tx, &samples, |i| i)?;
    STATUS_UPSERT.run(tx, &statuses, |i| status_keys[i])?;
    Ok((windows.len() + samples.len() + statuses.len()) as u64)
}

fn write_urls(tx: &Db, urls: &[&UrlRow]) -> DbResult<u64> {
    let hists: Vec<Vec<u8>> = urls.iter().map(|u| u.counts.t_total.encode()).collect();
    let rows: Vec<Vec<Value<'_>>> = urls
        .iter()
        .zip(&hists)
        .map(|(u, hist)| {
            let c = &u.counts;
            vals![
                u.start, u.span_s, u.host, u.backend, u.method, u.path, c.requests, c.s4xx, c.s5xx,
                c.bytes, *hist
            ]
            .to_vec()
        })
        .collect();
    URL_UPSERT.run(tx, &rows, |i| {
        let u = urls[i];
        (
            u.start,
            u.span_s,
            &*u.host,
            &*u.backend,
            &*u.method,
            &*u.path,
        )
    })?;
    Ok(urls.len() as u64)
}

const URL_UPSERT: super::rows::Insert<'static> = super::rows::Insert {
    head: "INSERT INTO url_windows (start, span_s, host, backend, method, path, requests, s4xx,
        s5xx, bytes, t_total_hist)",
    tail: "ON CONFLICT (start, span_s, host, backend, method, path) DO UPDATE SET
        requests = url_windows.requests + excluded.requests,
        s4xx = url_windows.s4xx + excluded.s4xx, s5xx = url_windows.s5xx + excluded.s5xx,
        bytes = url_windows.bytes + excluded.bytes,
        t_total_hist = hist_merge(url_windows.t_total_hist, excluded.t_total_hist)",
    columns: 11,
};

const SAMPLES_INSERT: super::rows::Insert<'static> = super::rows::Insert {
    head: "INSERT INTO samples (start, span_s, host, frontend, backend, server, class, raw)",
    tail: "",
    columns: 8,
};

const STATUS_UPSERT: super::rows::Insert<'static> = super::rows::Insert {
    head: "INSERT INTO status_windows (start, span_s, host, frontend, backend, server,
        status, requests)",
    tail: "ON CONFLICT (start, span_s, host, frontend, backend, server, status)
        DO UPDATE SET requests = status_windows.requests + excluded.requests",
    columns: 8,
};

const TIMELINE_INSERT: &str =
    "INSERT INTO incident_timeline (incident_id, ts, text) VALUES (?1, ?2, ?3)";

/// `group`: the nodes deciding for the incidents' load balancers; a group
/// reads back only its own incidents when one of its nodes takes over.
fn write_incidents(tx: &Db, changes: &[crate::incidents::Change], group: &str) -> DbResult<u64> {
    use crate::incidents::Change;
    for c in changes {
        match c {
            Change::Opened(i) => {
                tx.execute(
                    "INSERT INTO incidents (id, key, kind, severity, host, backend, server,
                        opened_at, summary, detail, grp)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    &vals![
                        i.id,
                        i.key.as_str(),
                        i.kind.as_str(),
                        i.severity.as_str(),
                        i.host,
                        i.backend,
                        i.server,
                        i.opened_ms,
                        i.summary,
                        serde_json::Value::Object(i.detail.clone()).to_string(),
                        group
                    ],
                )?;
                tx.execute(
                    TIMELINE_INSERT,
                    &vals![i.id, i.opened_ms, format!("opened: {}", i.summary)],
                )?;
            }
            Change::Timeline { id, ts_ms, text } => {
                tx.execute(TIMELINE_INSERT, &vals![id, ts_ms, text])?;
            }
            Change::Resolved {
                id, ts_ms, note, ..
            } => {
                tx.execute(
                    "UPDATE incidents SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
                    &vals![id, ts_ms, note],
                )?;
                tx.execute(
                    TIMELINE_INSERT,
                    &vals![id, ts_ms, format!("resolved: {note}")],
                )?;
            }
        }
    }
    Ok(changes.len() as u64)
}

fn write_outbox(tx: &Db, ops: &[hapwatch_engine::notify::OutboxOp]) -> DbResult<u64> {
    use hapwatch_engine::notify::OutboxOp;
    for op in ops {
        match op {
            OutboxOp::Insert(r) => {
                tx.execute(
                    "INSERT INTO outbox (id, incident_id, channel, group_key, status, payload,
                        created_at, next_attempt_at, state, item, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    &vals![
                        r.id,
                        r.incident_id,
                        r.channel,
                        r.group_key,
                        r.status.as_str(),
                        r.payload,
                        r.created_ms,
                        r.due_ms,
                        r.state.as_str(),
                        r.item,
                        r.note
                    ],
                )?;
            }
            OutboxOp::Settle {
                id,
                state,
                note,
                message,
            } => {
                let settled = tx.execute(
                    "UPDATE outbox SET state = ?2, note = ?3, message_id = ?4
                     WHERE id = ?1 AND state = 'waiting'",
                    &vals![id, state.as_str(), note, message],
                )?;
                if settled == 0 {
                    tracing::error!(
                        row = id,
                        "an outbox row to settle was not waiting (its insert was lost?)"
                    );
                }
            }
            OutboxOp::Compose { id, payload, at_ms } => {
                let composed = tx.execute(
                    "UPDATE outbox SET state = 'queued', payload = ?2, next_attempt_at = ?3
                     WHERE id = ?1 AND state = 'waiting'",
                    &vals![id, payload, at_ms],
                )?;
                if composed == 0 {
                    tracing::error!(
                        row = id,
                        "an outbox row to send was not waiting (its insert was lost?)"
                    );
                }
            }
        }
    }
    Ok(ops.len() as u64)
}

/// The advisory lock (PostgreSQL) held by the node pruning.
const PRUNE_LOCK: i64 = 7_213_640_020;

fn prune(conn: &Db, r: &Retention) {
    let now = r.wall.now_ms();
    let windows_before_s = (now - r.windows.as_millis() as i64) / 1000;
    let samples_before_s = (now - r.samples.as_millis() as i64) / 1000;
    let events_before_ms = now - r.events.as_millis() as i64;
    // Deleting a day of a busy store takes longer than any live statement may.
    let result = conn.with_deadline_at_least(PRUNE_DEADLINE, |conn| {
        conn.transaction(|tx| {
            delete_expired(tx, windows_before_s, samples_before_s, events_before_ms)
        })
    });
    match result {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "retention: pruned old rows"),
        Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
    }
}

/// Retention's deletes, in one transaction: rows older than their cut-offs.
fn delete_expired(
    tx: &Db,
    windows_before_s: i64,
    samples_before_s: i64,
    events_before_ms: i64,
) -> DbResult<u64> {
    // Nodes sharing a store prune it one at a time: the others skip this hour.
    if tx.dialect() == super::db::Dialect::Postgres
        && !tx.scalar::<bool>(
            &format!("SELECT pg_try_advisory_xact_lock({PRUNE_LOCK})"),
            &[],
        )?
    {
        return Ok(0);
    }
    let (windows, samples, events) = (windows_before_s, samples_before_s, events_before_ms);
    // In this order: incidents' timelines and acks before the incidents, the
    // outbox before its attempts.
    let deletes: [(&str, i64); 13] = [
        ("DELETE FROM windows WHERE start < ?1", windows),
        ("DELETE FROM window_claims WHERE start < ?1", windows),
        ("DELETE FROM status_windows WHERE start < ?1", windows),
        ("DELETE FROM url_windows WHERE start < ?1", windows),
        ("DELETE FROM samples WHERE start < ?1", samples),
        ("DELETE FROM routes WHERE last_seen < ?1", windows),
        ("DELETE FROM ingest_stats WHERE ts < ?1", windows * 1000),
        ("DELETE FROM events WHERE ts < ?1", events),
        (
            "DELETE FROM server_state
             WHERE coalesce(state_ts, 0) < ?1 AND coalesce(check_ts, 0) < ?1",
            events,
        ),
        // Incidents are kept as long as events; open ones whatever their age.
        (
            "DELETE FROM incident_timeline WHERE incident_id IN
             (SELECT id FROM incidents WHERE resolved_at < ?1)",
            events,
        ),
        // Acks go with their incidents: an id reused later must not inherit one.
        (
            "DELETE FROM acks WHERE incident_id IN
             (SELECT id FROM incidents WHERE resolved_at < ?1)",
            events,
        ),
        ("DELETE FROM incidents WHERE resolved_at < ?1", events),
        // Not those of incidents still open: their firing is what
        // Alertmanager channels are sent again.
        (
            "DELETE FROM outbox WHERE state NOT IN ('waiting', 'queued') AND created_at < ?1
             AND incident_id NOT IN (SELECT id FROM incidents WHERE resolved_at IS NULL)",
            events,
        ),
    ];
    let mut n = 0;
    for (sql, before) in deletes {
        n += tx.execute(sql, &vals![before])?;
    }
    // A quarter hour goes when all of it has expired.
    n += tx.execute(
        "DELETE FROM backend_rollups WHERE start + ?2 <= ?1",
        &vals![windows, super::summaries::ROLLUP_S],
    )?;
    n += tx.execute(
        "DELETE FROM delivery_attempts WHERE at < ?1
         AND outbox_id NOT IN (SELECT id FROM outbox)",
        &vals![events],
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::{self, WindowFilter};
    use crate::windows::{Counts, WindowRow};

    fn window(requests: u64, latencies: &[u64]) -> WindowRow {
        let mut counts = Counts {
            requests,
            s5xx: requests,
            ..Default::default()
        };
        latencies.iter().for_each(|v| counts.t_total.record(*v));
        WindowRow {
            start: 1_795_395_600,
            span_s: 60,
            host: "lb1".into(),
            frontend: "fe".into(),
            backend: "be".into(),
            server: "s1".into(),
            counts,
            samples: vec![("5xx", format!("line {requests}"))],
            statuses: vec![(200, requests)],
        }
    }

    #[test]
    fn a_window_written_twice_is_merged_exactly() {
        for store in crate::store::scratch::stores() {
            let counters = WriterCounters::default();
            let (rows, errors) = (counters.rows_written.clone(), counters.write_errors.clone());
            let w = Writer::spawn(store.open(), None, counters);
            w.tx.send(WriteOp::Windows(vec![window(2, &[5, 700])]))
                .unwrap();
            // A late line re-opened the window after it was stored.
            w.tx.send(WriteOp::Windows(vec![window(1, &[40])])).unwrap();
            w.finish();
            assert_eq!(errors.load(Relaxed), 0);
            assert_eq!(
                rows.load(Relaxed),
                6,
                "two window rows, two samples and two status counts"
            );

            let conn = &store.open();
            let stored = queries::windows(
                conn,
                &WindowFilter {
                    since_s: 0,
                    until_s: i64::MAX / 2,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(stored.len(), 1);
            let c = &stored[0].counts;
            assert_eq!((c.requests, c.s5xx), (3, 3));
            let mut all = crate::hist::Histogram::default();
            [5, 700, 40].iter().for_each(|v| all.record(*v));
            assert_eq!(c.t_total, all);
            // Its quarter hour took each increment once, as the window did.
            let (requests, hist): (i64, Vec<u8>) = conn
                .query_one(
                    "SELECT requests, t_total_hist FROM backend_rollups",
                    &[],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(requests, 3);
            assert_eq!(crate::hist::Histogram::decode(&hist).unwrap(), all);
            let samples: i64 = conn.scalar("SELECT count(*) FROM samples", &[]).unwrap();
            assert_eq!(samples, 2);
            let statuses: Vec<(i64, i64)> = conn
                .query("SELECT status, requests FROM status_windows", &[], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(
                statuses,
                vec![(200, 3)],
                "the re-opened window's count merged"
            );
        }
    }

    fn event(raw: &str, check_ms: u64) -> EventRow {
        EventRow {
            ts_ms: 1,
            host: "lb1".into(),
            kind: "health_check",
            template: "health_check".into(),
            proxy: Some("be".into()),
            server: Some("s1".into()),
            new_state: None,
            old_state: None,
            reason: None,
            code: None,
            info: None,
            check_duration_ms: Some(check_ms),
            check_result: Some("failed"),
            active_left: None,
            backup_left: None,
            json: "{}".into(),
            raw: raw.into(),
            ident: None,
        }
    }

    #[test]
    fn each_server_keeps_its_latest_state_and_check_whatever_the_order_stored() {
        for store in crate::store::scratch::stores() {
            let conn = &store.open();
            let state = |ts_ms: i64, new: &str| EventRow {
                ts_ms,
                kind: "state_change",
                template: "srv_down".into(),
                new_state: Some(new.into()),
                check_duration_ms: None,
                check_result: None,
                ..event(new, 0)
            };
            let counters = WriterCounters::default();
            let batches = [
                vec![state(10, "UP"), event("c1", 3)],
                // The same millisecond: the last stored wins. An older line does not.
                vec![state(20, "UP"), state(20, "DOWN"), state(15, "MAINT")],
            ];
            for events in batches {
                commit_with_retries(conn, &[WriteOp::Events(events)], &counters, None);
            }
            let got: (String, i64, i64, String) = conn
                .query_one(
                    "SELECT state, state_ts, check_duration_ms, check_result FROM server_state",
                    &[],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, ("DOWN".into(), 20, 3, "failed".into()));

            // A reconciliation is stamped by hapwatch's clock: it applies in arrival
            // order, and a later log line (HAProxy's clock, behind) still applies after it.
            let reconciled = EventRow {
                kind: "other",
                template: "reconciliation".into(),
                ..state(1_000_000, "MAINT")
            };
            let read = || -> String { conn.scalar("SELECT state FROM server_state", &[]).unwrap() };
            commit_with_retries(conn, &[WriteOp::Events(vec![reconciled])], &counters, None);
            assert_eq!(read(), "MAINT");
            commit_with_retries(
                conn,
                &[WriteOp::Events(vec![state(25, "UP")])],
                &counters,
                None,
            );
            assert_eq!(read(), "UP");
        }
    }

    #[test]
    fn a_row_the_database_refuses_loses_only_itself() {
        use crate::incidents::{Change, Incident, Kind, Severity};
        for store in crate::store::scratch::stores() {
            let conn = &store.open();
            let opened = Change::Opened(Incident {
                id: 1,
                key: crate::incidents::IncidentKey::server("lb1", "be", "s1"),
                kind: Kind::ServerDown,
                severity: Severity::Warning,
                host: "lb1".into(),
                backend: Some("be".into()),
                server: Some("s1".into()),
                opened_ms: 1,
                reminder_ms: None,
                ack: None,
                summary: "server be/s1 is DOWN".into(),
                detail: Default::default(),
            });
            let counters = WriterCounters::default();
            commit_with_retries(
                conn,
                &[WriteOp::Incidents(vec![opened.clone()], vec![])],
                &counters,
                None,
            );
            // The same incident id again (a constraint SQLite enforces) among good rows,
            // and numbers past i64 that are stored at its largest value.
            let mut huge = window(1, &[1]);
            huge.counts.bytes = u64::MAX;
            let batch = [
                WriteOp::Events(vec![event("a", 5), event("b", u64::MAX)]),
                WriteOp::Incidents(vec![opened], vec![]),
                WriteOp::Windows(vec![huge]),
            ];
            let rows = commit_with_retries(conn, &batch, &counters, None);
            assert_eq!(
                rows, 5,
                "two events, a window, its sample and its status count"
            );
            assert_eq!(counters.rows_rejected.load(Relaxed), 1);
            let events: i64 = conn.scalar("SELECT count(*) FROM events", &[]).unwrap();
            let bytes: i64 = conn.scalar("SELECT bytes FROM windows", &[]).unwrap();
            assert_eq!((events, bytes), (2, i64::MAX));
        }
    }

    #[test]
    fn retention_prunes_only_old_rows() {
        for store in crate::store::scratch::stores() {
            let conn = &store.open();
            let mut old = window(1, &[1]);
            old.start = 0;
            let recent = WindowRow {
                start: crate::timezone::now_ms() / 1000 - 60,
                ..window(1, &[1])
            };
            write_batch(
                conn,
                &[WriteOp::Windows(vec![old, recent])],
                &WriterCounters::default(),
            )
            .unwrap();
            prune(
                conn,
                &Retention {
                    windows: Duration::from_secs(3600),
                    events: Duration::from_secs(3600),
                    samples: Duration::from_secs(86_400),
                    wall: Default::default(),
                },
            );
            let left: Vec<i64> = conn
                .query("SELECT start FROM windows", &[], |r| r.get(0))
                .unwrap();
            assert_eq!(left.len(), 1);
            assert!(left[0] > 0);
            let samples: i64 = conn.scalar("SELECT count(*) FROM samples", &[]).unwrap();
            assert_eq!(samples, 1, "the old window's evidence went with it");

            // Evidence may go before its window.
            prune(
                conn,
                &Retention {
                    windows: Duration::from_secs(3600),
                    events: Duration::from_secs(3600),
                    samples: Duration::from_secs(30),
                    wall: Default::default(),
                },
            );
            let windows: i64 = conn.scalar("SELECT count(*) FROM windows", &[]).unwrap();
            let samples: i64 = conn.scalar("SELECT count(*) FROM samples", &[]).unwrap();
            assert_eq!((windows, samples), (1, 0));
        }
    }
}
