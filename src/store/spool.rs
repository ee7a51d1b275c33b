//! Fail-open: while the shared store (PostgreSQL) does not answer, a node
//! keeps its writes in a local SQLite spool and merges them back once it answers.
//!
//! The spool is an ordinary hapwatch SQLite store, so delivery reads its
//! outbox as it reads any store, plus a journal of the writes in the order
//! they were made. The merge replays the journal through the writer's own
//! statements in one transaction on the shared store: events go in by their
//! identity (a line both nodes spooled is stored once), windows by their
//! claims (counted by one node), and incidents and outbox rows under ids the
//! shared store hands out then, so no two nodes' spooled ids collide. The
//! shared store remembers each merged episode: a merge interrupted after its
//! commit is not applied twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hapwatch_engine::notify::{Item, OutboxOp};

use super::db::{vals, Db, DbResult};
use super::ids::Numbered;
use super::outbox::Attempt;
use super::writer::{write_ops, EventRow, IngestRow, Tally, WriteOp, WriterCounters};
use crate::incidents::Change;
use crate::windows::{UrlRow, WindowRow};

/// What fail-open did, for `/healthz`, `/metrics` and the log.
#[derive(Debug, Default)]
pub struct SpoolCounters {
    /// Writes go to the spool now.
    pub spooling: AtomicBool,
    /// When the current episode began (wall ms; 0: none).
    pub since_ms: AtomicI64,
    /// Episodes begun and merged.
    pub episodes: AtomicU64,
    pub merged: AtomicU64,
    /// Writes kept in the spool, and merged back.
    pub ops_spooled: AtomicU64,
    pub ops_merged: AtomicU64,
    /// What a merge found stored already: events another node had stored,
    /// windows another node counted, incidents another node had opened.
    pub duplicate_events: AtomicU64,
    pub duplicate_windows: AtomicU64,
    pub duplicate_incidents: AtomicU64,
}

/// The local spool of a node on a shared store.
pub struct Spool {
    /// Opened (and created) on first need: a node that never loses the
    /// store keeps no file.
    db: Option<Db>,
    path: PathBuf,
    /// Past this long without the shared store answering, writes are spooled.
    pub after: Duration,
    node: String,
    episode: Option<String>,
    next_try: Instant,
}

/// How often a spooling writer tries the shared store again.
const TRY_EVERY: Duration = Duration::from_secs(5);
/// How long that try may take: the writer waits on it.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);
/// How long a merge may take, once the store answers.
const MERGE_DEADLINE: Duration = Duration::from_secs(300);

/// The writes the journal keeps (a barrier waits on nothing spooled; the
/// running channels are recorded again at the next start or reload).
#[derive(serde::Serialize)]
enum Journaled<'a> {
    Events(&'a [EventRow]),
    Incidents(&'a [Change], &'a [OutboxOp]),
    Deliveries(&'a [Attempt]),
    Windows(&'a [WindowRow]),
    Urls(&'a [UrlRow]),
    Ingest(&'a IngestRow),
    Retry(&'a [i64], i64),
    Acked(&'a [OutboxOp], &'a [(i64, i64)], i64),
}

/// The same, read back.
#[derive(serde::Deserialize)]
enum Journal {
    Events(Vec<EventRow>),
    Incidents(Vec<Change>, Vec<OutboxOp>),
    Deliveries(Vec<Attempt>),
    Windows(Vec<WindowRow>),
    Urls(Vec<UrlRow>),
    Ingest(IngestRow),
    Retry(Vec<i64>, i64),
    Acked(Vec<OutboxOp>, Vec<(i64, i64)>, i64),
}

fn journaled(op: &WriteOp) -> Option<Journaled<'_>> {
    Some(match op {
        WriteOp::Events(v) => Journaled::Events(v),
        WriteOp::Incidents(c, n) => Journaled::Incidents(c, n),
        WriteOp::Deliveries(v) => Journaled::Deliveries(v),
        WriteOp::Windows(v) => Journaled::Windows(v),
        WriteOp::Urls(v) => Journaled::Urls(v),
        WriteOp::Ingest(s) => Journaled::Ingest(s),
        WriteOp::Retry(ids, at) => Journaled::Retry(ids, *at),
        WriteOp::Acked {
            notifications,
            acks,
            at_ms,
        } => Journaled::Acked(notifications, acks, *at_ms),
        WriteOp::Channels(..) | WriteOp::Barrier(_) => return None,
    })
}

impl From<Journal> for WriteOp {
    fn from(j: Journal) -> WriteOp {
        match j {
            Journal::Events(v) => WriteOp::Events(v),
            Journal::Incidents(c, n) => WriteOp::Incidents(c, n),
            Journal::Deliveries(v) => WriteOp::Deliveries(v),
            Journal::Windows(v) => WriteOp::Windows(v),
            Journal::Urls(v) => WriteOp::Urls(v),
            Journal::Ingest(s) => WriteOp::Ingest(s),
            Journal::Retry(ids, at) => WriteOp::Retry(ids, at),
            Journal::Acked(notifications, acks, at_ms) => WriteOp::Acked {
                notifications,
                acks,
                at_ms,
            },
        }
    }
}

/// The spool's tables that hold rows (emptied once merged).
const SPOOLED_TABLES: [&str; 15] = [
    "events",
    "windows",
    "samples",
    "ingest_stats",
    "incidents",
    "incident_timeline",
    "outbox",
    "outbox_retries",
    "status_windows",
    "url_windows",
    "acks",
    "delivery_attempts",
    "routes",
    "backend_rollups",
    "server_state",
];

impl Spool {
    /// The spool at `path` (opened if a file is there; created when first
    /// needed); `after` is how long the shared store may fail before writes go here.
    pub fn open(path: &Path, after: Duration, node: &str) -> Result<Spool, super::StoreError> {
        let db = match path.exists() {
            true => Some(super::open_write(path)?),
            false => None,
        };
        Ok(Spool {
            db,
            path: path.to_owned(),
            after,
            node: node.to_owned(),
            episode: None,
            next_try: Instant::now(),
        })
    }

    /// Whether writes go here now.
    pub fn spooling(&self) -> bool {
        self.episode.is_some()
    }

    /// Whether the journal holds writes not merged yet (a start after a
    /// crash mid-episode merges them before anything else).
    pub fn pending(&self) -> DbResult<bool> {
        match &self.db {
            Some(db) => db.scalar("SELECT count(*) > 0 FROM spool_journal", &[]),
            None => Ok(false),
        }
    }

    /// Begins an episode: from now on writes go here, and this node decides
    /// (with every other node that lost the store) so that nobody goes
    /// unpaged. False if the spool cannot be opened (the writer holds on).
    pub fn begin(
        &mut self,
        counters: &WriterCounters,
        error: &super::DbError,
        now_ms: i64,
    ) -> bool {
        if self.db.is_none() {
            match super::open_write(&self.path) {
                Ok(db) => self.db = Some(db),
                Err(e) => {
                    tracing::error!(error = %e, "the local spool cannot be opened: holding the batch instead of failing open");
                    return false;
                }
            }
        }
        let name = format!("{}@{now_ms}#{}", self.node, std::process::id());
        tracing::error!(
            %error,
            spool = %self.path.display(),
            after = ?self.after,
            "the shared store does not answer: failing open, writing to the local spool and alerting from here until it answers again"
        );
        self.episode = Some(name);
        self.next_try = Instant::now() + TRY_EVERY;
        let spool = &counters.spool;
        spool.spooling.store(true, Relaxed);
        spool.since_ms.store(now_ms, Relaxed);
        spool.episodes.fetch_add(1, Relaxed);
        if let Some(role) = &counters.cluster {
            role.fail_open(true);
        }
        true
    }

    /// Writes `batch` here: its rows, for delivery and the CLI, and its
    /// journal entries, for the merge, in one transaction. Waits out what
    /// waiting can fix (a full disk), as the writer does.
    pub fn append(&mut self, batch: &[WriteOp], counters: &WriterCounters) -> u64 {
        let episode = self.episode.clone().unwrap_or_default();
        // Alone on its own file: no claims, no fence.
        let local = WriterCounters {
            cluster: None,
            ..counters.clone()
        };
        let Some(db) = &self.db else {
            return 0;
        };
        let mut wait = Duration::from_millis(100);
        loop {
            let written = db.transaction(|tx| {
                let mut tally = Tally::default();
                let rows = write_ops(tx, batch, &local, &mut tally, None)?;
                for op in batch.iter().filter_map(journaled) {
                    let json = serde_json::to_string(&op).unwrap_or_default();
                    tx.execute(
                        "INSERT INTO spool_journal (episode, op) VALUES (?1, ?2)",
                        &vals![episode, json],
                    )?;
                }
                Ok(rows)
            });
            match written {
                Ok(rows) => {
                    let ops = batch.iter().filter_map(journaled).count() as u64;
                    counters.spool.ops_spooled.fetch_add(ops, Relaxed);
                    return rows;
                }
                Err(e) if e.transient() && !super::writer::past_stop(counters) => {
                    counters.write_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "the local spool cannot be written either; holding the batch");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    counters
                        .rows_rejected
                        .fetch_add(batch.len() as u64, Relaxed);
                    tracing::error!(error = %e, ops = batch.len(), "the local spool refused this batch; it is lost");
                    return 0;
                }
            }
        }
    }

    /// Whether to try the shared store again now.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next_try
    }

    /// Tries the shared store; once it answers, merges every spooled
    /// episode into it and empties the spool. An error leaves everything
    /// spooled, to try again in a while.
    pub fn merge_into(
        &mut self,
        shared: &Db,
        counters: &WriterCounters,
        now_ms: i64,
    ) -> DbResult<()> {
        self.next_try = Instant::now() + TRY_EVERY;
        let usual = shared.deadline();
        shared.set_deadline(usual.map(|d| d.min(PROBE_DEADLINE)));
        let answered = shared.scalar::<i64>("SELECT 1", &[]);
        shared.set_deadline(usual);
        answered?;
        let Some(db) = &self.db else {
            self.episode = None;
            return Ok(());
        };
        let episodes: Vec<String> = db.query(
            "SELECT episode FROM spool_journal GROUP BY episode ORDER BY min(seq)",
            &[],
            |r| r.get(0),
        )?;
        for episode in episodes {
            let ops = Self::read_episode(db, &episode, counters)?;
            let count = ops.len() as u64;
            let found = shared.with_deadline_at_least(MERGE_DEADLINE, |db| {
                db.transaction(|tx| merge_episode(tx, &episode, &self.node, ops, counters, now_ms))
            })?;
            db.execute(
                "DELETE FROM spool_journal WHERE episode = ?1",
                &vals![episode],
            )?;
            let spool = &counters.spool;
            spool.merged.fetch_add(1, Relaxed);
            match found {
                Some(d) => {
                    spool.ops_merged.fetch_add(count, Relaxed);
                    spool.duplicate_events.fetch_add(d.events, Relaxed);
                    spool.duplicate_windows.fetch_add(d.windows, Relaxed);
                    spool.duplicate_incidents.fetch_add(d.incidents, Relaxed);
                    tracing::warn!(
                        episode,
                        ops = count,
                        duplicate_events = d.events,
                        duplicate_windows = d.windows,
                        duplicate_incidents = d.incidents,
                        "the spool is merged into the shared store (what another node had stored already is counted once)"
                    );
                }
                None => tracing::info!(episode, "this spooled episode was merged before"),
            }
        }
        for table in SPOOLED_TABLES {
            db.execute(&format!("DELETE FROM {table}"), &[])?;
        }
        if self.episode.take().is_some() {
            tracing::warn!("the shared store answers again: no longer failing open");
        }
        let spool = &counters.spool;
        spool.spooling.store(false, Relaxed);
        spool.since_ms.store(0, Relaxed);
        if let Some(role) = &counters.cluster {
            // Read back from the shared store before deciding again: the
            // merge renumbered what this node opened meanwhile.
            role.decide_under(0);
            role.fail_open(false);
        }
        Ok(())
    }

    /// One episode's writes, in order; an entry that cannot be read (written
    /// by another version) is counted and logged, not merged.
    fn read_episode(db: &Db, episode: &str, counters: &WriterCounters) -> DbResult<Vec<WriteOp>> {
        let texts: Vec<String> = db.query(
            "SELECT op FROM spool_journal WHERE episode = ?1 ORDER BY seq",
            &vals![episode],
            |r| r.get(0),
        )?;
        let mut ops = Vec::with_capacity(texts.len());
        for text in texts {
            match serde_json::from_str::<Journal>(&text) {
                Ok(j) => ops.push(j.into()),
                Err(e) => {
                    counters.rows_rejected.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, episode, "a spooled write cannot be read back; it is not merged");
                }
            }
        }
        Ok(ops)
    }
}

/// What one merge found stored already.
#[derive(Debug, Default, Clone, Copy)]
struct Duplicates {
    events: u64,
    windows: u64,
    incidents: u64,
}

/// Applies one episode (None: it was merged before).
fn merge_episode(
    tx: &Db,
    episode: &str,
    node: &str,
    ops: Vec<WriteOp>,
    counters: &WriterCounters,
    now_ms: i64,
) -> DbResult<Option<Duplicates>> {
    let first = tx.execute(
        "INSERT INTO spool_merges (episode, node, merged_at, ops, duplicates)
         VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT DO NOTHING",
        &vals![episode, node, now_ms, ops.len() as i64],
    )?;
    if first == 0 {
        return Ok(None);
    }
    let mut ids = Renumber::default();
    let ops = ops
        .into_iter()
        .map(|op| ids.op(tx, op))
        .collect::<DbResult<Vec<_>>>()?;
    let mut tally = Tally::default();
    // Decided while nobody could hold the lease: committed unfenced.
    write_ops(tx, &ops, counters, &mut tally, Some(true))?;
    let incidents = settle_duplicates(tx, &ids.opened, now_ms)?;
    let found = Duplicates {
        events: tally.duplicates,
        windows: tally.peer_windows,
        incidents,
    };
    tx.execute(
        "UPDATE spool_merges SET duplicates = ?2 WHERE episode = ?1",
        &vals![
            episode,
            (found.events + found.windows + found.incidents) as i64
        ],
    )?;
    Ok(Some(found))
}

/// An incident opened while spooling that another incident of the same key
/// (in its group) overlaps is a duplicate; one still open while the other
/// is open too is resolved, and what it still owes is not sent.
fn settle_duplicates(tx: &Db, opened: &[i64], now_ms: i64) -> DbResult<u64> {
    let mut duplicates = 0;
    for &id in opened {
        let other: Option<(i64, bool)> = tx.query_opt(
            "SELECT o.id, o.resolved_at IS NULL FROM incidents o, incidents d
             WHERE d.id = ?1 AND o.id <> d.id AND o.key = d.key AND o.grp = d.grp
               AND o.opened_at <= coalesce(d.resolved_at, ?2)
               AND d.opened_at <= coalesce(o.resolved_at, ?2)
               AND (o.opened_at < d.opened_at OR (o.opened_at = d.opened_at AND o.id < d.id))
             ORDER BY o.opened_at, o.id LIMIT 1",
            &vals![id, now_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let Some((kept, kept_open)) = other else {
            continue;
        };
        duplicates += 1;
        let still_open: bool = tx.scalar(
            "SELECT resolved_at IS NULL FROM incidents WHERE id = ?1",
            &vals![id],
        )?;
        if still_open && kept_open {
            let note =
                format!("a duplicate of #{kept}, opened while the shared store was unreachable");
            tx.execute(
                "UPDATE incidents SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
                &vals![id, now_ms, note],
            )?;
            tx.execute(
                "INSERT INTO incident_timeline (incident_id, ts, text) VALUES (?1, ?2, ?3)",
                &vals![id, now_ms, format!("resolved: {note}")],
            )?;
            tx.execute(
                "UPDATE outbox SET state = 'superseded', note = ?2
                 WHERE incident_id = ?1 AND state IN ('waiting', 'queued')",
                &vals![id, note],
            )?;
        }
    }
    Ok(duplicates)
}

/// Ids the shared store hands out for what was numbered while spooling.
#[derive(Default)]
struct Renumber {
    incidents: HashMap<i64, i64>,
    rows: HashMap<i64, i64>,
    incident_block: std::ops::Range<i64>,
    row_block: std::ops::Range<i64>,
    /// The incidents opened, as renumbered.
    opened: Vec<i64>,
}

impl Renumber {
    fn fresh(tx: &Db, what: Numbered, block: &mut std::ops::Range<i64>) -> DbResult<i64> {
        if block.is_empty() {
            let floor = match what {
                Numbered::Incidents => super::incidents::next_id(tx)?,
                Numbered::Outbox => super::outbox::next_id(tx)?,
            };
            *block = super::ids::reserve(tx, what, floor)?;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    fn new_incident(&mut self, tx: &Db, old: i64) -> DbResult<i64> {
        let id = Self::fresh(tx, Numbered::Incidents, &mut self.incident_block)?;
        self.incidents.insert(old, id);
        self.opened.push(id);
        Ok(id)
    }

    /// An id numbered while spooling, as renumbered; any other (made before,
    /// stored already) as it is.
    fn incident(&self, id: i64) -> i64 {
        self.incidents.get(&id).copied().unwrap_or(id)
    }

    fn row(&self, id: i64) -> i64 {
        self.rows.get(&id).copied().unwrap_or(id)
    }

    fn op(&mut self, tx: &Db, op: WriteOp) -> DbResult<WriteOp> {
        Ok(match op {
            WriteOp::Incidents(changes, notifications) => {
                let changes = changes
                    .into_iter()
                    .map(|c| self.change(tx, c))
                    .collect::<DbResult<_>>()?;
                WriteOp::Incidents(changes, self.notifications(tx, notifications)?)
            }
            WriteOp::Acked {
                notifications,
                acks,
                at_ms,
            } => WriteOp::Acked {
                notifications: self.notifications(tx, notifications)?,
                acks: acks
                    .into_iter()
                    .map(|(id, at)| (self.incident(id), at))
                    .collect(),
                at_ms,
            },
            WriteOp::Deliveries(mut attempts) => {
                for a in &mut attempts {
                    a.id = self.row(a.id);
                }
                WriteOp::Deliveries(attempts)
            }
            WriteOp::Retry(ids, at) => {
                WriteOp::Retry(ids.into_iter().map(|id| self.row(id)).collect(), at)
            }
            other => other,
        })
    }

    fn change(&mut self, tx: &Db, change: Change) -> DbResult<Change> {
        Ok(match change {
            Change::Opened(mut i) => {
                i.id = self.new_incident(tx, i.id)?;
                Change::Opened(i)
            }
            Change::Timeline { id, ts_ms, text } => Change::Timeline {
                id: self.incident(id),
                ts_ms,
                text,
            },
            Change::Resolved {
                id,
                ts_ms,
                mut incident,
                note,
            } => {
                incident.id = self.incident(incident.id);
                Change::Resolved {
                    id: self.incident(id),
                    ts_ms,
                    incident,
                    note,
                }
            }
        })
    }

    fn notifications(&mut self, tx: &Db, ops: Vec<OutboxOp>) -> DbResult<Vec<OutboxOp>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                OutboxOp::Insert(mut r) => {
                    let id = Self::fresh(tx, Numbered::Outbox, &mut self.row_block)?;
                    self.rows.insert(r.id, id);
                    r.id = id;
                    r.incident_id = self.incident(r.incident_id);
                    r.item = r.item.map(|json| self.item(json));
                    OutboxOp::Insert(r)
                }
                OutboxOp::Settle {
                    id,
                    state,
                    note,
                    message,
                } => OutboxOp::Settle {
                    id: self.row(id),
                    state,
                    note,
                    message: message.map(|m| self.row(m)),
                },
                OutboxOp::Compose { id, payload, at_ms } => OutboxOp::Compose {
                    id: self.row(id),
                    payload,
                    at_ms,
                },
            });
        }
        Ok(out)
    }

    /// An outbox row's item names its incident: renumbered with it.
    fn item(&self, json: String) -> String {
        match serde_json::from_str::<Item>(&json) {
            Ok(mut item) => {
                item.incident.id = self.incident(item.incident.id);
                serde_json::to_string(&item).unwrap_or(json)
            }
            Err(_) => json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{Incident, IncidentKey, Kind, Severity};

    fn down(id: i64, opened_ms: i64) -> Change {
        Change::Opened(Incident {
            id,
            key: IncidentKey::server("lb1", "be", "s1"),
            kind: Kind::ServerDown,
            severity: Severity::Warning,
            host: "lb1".into(),
            backend: Some("be".into()),
            server: Some("s1".into()),
            opened_ms,
            reminder_ms: None,
            ack: None,
            summary: "server be/s1 is DOWN".into(),
            detail: Default::default(),
        })
    }

    fn event(ident: u8) -> EventRow {
        let mut e = EventRow::bare(
            1000,
            "lb1".into(),
            "state_change",
            "server_down".into(),
            "{}".into(),
            format!("line {ident}"),
        );
        e.ident = Some([ident; 16]);
        e
    }

    /// Two nodes spool the same line and each opens the same incident: the
    /// shared store gets the line once, both incidents under ids of its own,
    /// the later one resolved as a duplicate; merging again changes nothing.
    #[test]
    fn two_spools_merge_once_renumbered_with_duplicates_settled() {
        let Some(scratch) = crate::store::scratch::postgres() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let shared = scratch.open();
        let stored_before: i64 = shared
            .scalar("SELECT coalesce(max(id), 0) FROM incidents", &[])
            .unwrap();
        let counters = WriterCounters::default();
        let error = super::super::DbError::Timeout(Duration::from_secs(1));
        let mut merged_ids = Vec::new();
        for (n, name) in ["a", "b"].into_iter().enumerate() {
            let mut spool = Spool::open(
                &dir.path().join(format!("{name}.db")),
                Duration::from_secs(1),
                name,
            )
            .unwrap();
            spool.begin(&counters, &error, 10_000 + n as i64);
            let batch = [
                WriteOp::Events(vec![event(7)]),
                WriteOp::Incidents(vec![down((1 << 52) + 1, 2000 + n as i64)], vec![]),
            ];
            assert_eq!(
                spool.append(&batch, &counters),
                2,
                "an event and an incident, locally"
            );
            assert!(spool.pending().unwrap());
            spool.merge_into(&shared, &counters, 20_000).unwrap();
            assert!(!spool.spooling() && !spool.pending().unwrap());
            let local: i64 = spool
                .db
                .as_ref()
                .unwrap()
                .scalar("SELECT count(*) FROM incidents", &[])
                .unwrap();
            assert_eq!(local, 0, "the spool is emptied once merged");
            merged_ids = shared
                .query(
                    "SELECT id FROM incidents WHERE id > ?1 ORDER BY id",
                    &vals![stored_before],
                    |r| r.get::<i64>(0),
                )
                .unwrap();
        }
        assert_eq!(merged_ids.len(), 2);
        assert!(merged_ids.iter().all(|id| *id < 1 << 52), "{merged_ids:?}");
        let events: i64 = shared
            .scalar("SELECT count(*) FROM events WHERE raw = 'line 7'", &[])
            .unwrap();
        assert_eq!(events, 1, "the line both spooled is stored once");
        let spool = &counters.spool;
        assert_eq!(spool.duplicate_events.load(Relaxed), 1);
        assert_eq!(spool.duplicate_incidents.load(Relaxed), 1);
        let open: Vec<i64> = shared
            .query(
                "SELECT id FROM incidents WHERE id > ?1 AND resolved_at IS NULL",
                &vals![stored_before],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(open, vec![merged_ids[0]], "the first opened stays open");

        // A crash after the merge's commit, before the spool was emptied:
        // the episode is known to the shared store and not applied again.
        let mut spool = Spool::open(&dir.path().join("c.db"), Duration::from_secs(1), "c").unwrap();
        spool.begin(&counters, &error, 30_000);
        spool.append(&[WriteOp::Events(vec![event(9)])], &counters);
        let episode = spool.episode.clone().unwrap();
        shared
            .execute(
                "INSERT INTO spool_merges (episode, node, merged_at, ops, duplicates)
                 VALUES (?1, 'c', 1, 1, 0)",
                &vals![episode],
            )
            .unwrap();
        spool.merge_into(&shared, &counters, 40_000).unwrap();
        let events: i64 = shared
            .scalar("SELECT count(*) FROM events WHERE raw = 'line 9'", &[])
            .unwrap();
        assert_eq!(events, 0, "an episode merged before is not applied twice");
        assert!(!spool.pending().unwrap());
    }
}
