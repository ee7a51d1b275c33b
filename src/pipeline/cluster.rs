//! A node among others on one store: decisions go to the writer only while
//! this node decides for its group; on taking the group's lease it reads the
//! group's decisions back and goes over what it received lately.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use hapwatch_parsers::Event;

use super::{decide, event_row, sender, Processor};
use crate::notify::notifier::Notifier;
use crate::store::ids::Numbered;
use crate::store::writer::WriteOp;

/// Decisions (incidents and the notifications they owe) go to the writer,
/// unless this node stands by while another node sharing the store decides.
pub struct Decisions {
    pub(super) store: SyncSender<WriteOp>,
    pub(super) role: Option<Arc<crate::cluster::Role>>,
}

impl Decisions {
    pub(super) fn deciding(&self) -> bool {
        self.role.as_ref().is_none_or(|r| r.is_deciding())
    }

    pub(super) fn send(&self, op: WriteOp) {
        if self.deciding() {
            let _ = self.store.send(op);
        }
    }
}

/// What a node standing by needs to take over: the store to read the
/// decisions back from, the config to build its engine by, and the events it
/// received lately, which the last decider may have died before deciding.
pub(super) struct Cluster {
    pub(super) role: Arc<crate::cluster::Role>,
    location: crate::store::Location,
    pub(super) config: crate::config::Config,
    recent: std::collections::VecDeque<(Box<[u8]>, Option<IpAddr>, i64)>,
    /// This episode of failing open is being decided for (see `fail_open`).
    failed_open: bool,
}

impl Cluster {
    /// Keeps an event to go over on taking the lease, for as long as a lease
    /// can take to change hands.
    pub(super) fn remember(&mut self, bytes: &[u8], peer: Option<IpAddr>, received_ms: i64) {
        let keep_ms = 2 * self.role.lease.as_millis() as i64 + 5000;
        while self
            .recent
            .front()
            .is_some_and(|(_, _, at)| *at < received_ms - keep_ms)
            || self.recent.len() >= RECENT_EVENTS
        {
            self.recent.pop_front();
        }
        self.recent.push_back((bytes.into(), peer, received_ms));
    }
}

/// Events kept to go over after taking the lease, at most.
const RECENT_EVENTS: usize = 10_000;

impl Processor {
    /// Shares the store with other nodes: decides only while `role` holds
    /// the lease, and reads the decisions back from `location` on taking it.
    pub fn with_cluster(
        mut self,
        role: Arc<crate::cluster::Role>,
        location: crate::store::Location,
        config: &crate::config::Config,
    ) -> Self {
        self.decisions.role = Some(role.clone());
        self.cluster = Some(Cluster {
            role,
            location,
            config: config.clone(),
            recent: Default::default(),
            failed_open: false,
        });
        self
    }

    /// Follows the lease (each tick): standing by when another node took it;
    /// on taking it, reads back what was decided and goes over what this
    /// node received lately, so a change the last decider died before
    /// deciding is decided now, and one it decided is not decided again.
    pub fn follow_lease(&mut self) {
        let Some(c) = &mut self.cluster else { return };
        c.role.ticked();
        // Failing open, this node decides whoever holds the lease; once the
        // spool is merged it reads the store back (below) before going on.
        match (c.role.failing_open(), c.failed_open) {
            (true, false) => return self.fail_open(),
            (true, true) => return,
            (false, _) => c.failed_open = false,
        }
        let held = c.role.held();
        if held == c.role.deciding() {
            return;
        }
        if held == 0 {
            c.role.decide_under(0);
            tracing::warn!(leader = %c.role.leader(), "standing by: another node decides");
            return;
        }
        // Decisions still queued from an earlier term land (or are fenced)
        // first. A writer that far behind is waited for at the next tick, not
        // here, where the ingest queue would fill behind this thread.
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        if self.store.send(WriteOp::Barrier(done_tx)).is_err()
            || done
                .recv_timeout(std::time::Duration::from_secs(5))
                .is_err()
        {
            tracing::warn!("the store is still busy; taking over at the next tick");
            return;
        }
        let now = self.wall.now_ms();
        let taken = c
            .location
            .open_read()
            .map_err(crate::daemon::DaemonError::from)
            .and_then(|conn| {
                let (engine, outbox, settle) =
                    crate::daemon::restore(&c.config, &c.location, &conn, now)?;
                Ok((engine, outbox, settle, conn))
            });
        let (engine, outbox, settle, conn) = match taken {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the decisions back; taking over at the next tick");
                return;
            }
        };
        let mut engine = engine;
        if let Some(before) = &mut self.engine {
            engine.carry_hearing(before);
        }
        // Each takes its first block now, on the connection in hand (the
        // ingest queue fills while this thread waits): a store that cannot
        // hand one out is retried at the next tick, before anything is numbered.
        let first = |what, next_id: fn(&crate::store::Db) -> crate::store::DbResult<i64>| {
            // Past every id stored, however numbered (`replay` numbers on its own).
            next_id(&conn).and_then(|floor| crate::store::ids::reserve(&conn, what, floor))
        };
        let blocks = first(Numbered::Incidents, crate::store::incidents::next_id)
            .and_then(|i| Ok((i, first(Numbered::Outbox, crate::store::outbox::next_id)?)));
        let (first_incidents, first_rows) = match blocks {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no block of ids can be reserved; taking over at the next tick");
                return;
            }
        };
        let incident_ids = id_source(&c.location, Numbered::Incidents);
        engine.number_from(with_first(first_incidents, incident_ids));
        let mut notifier = Notifier::new(&c.config, 1);
        notifier.schedule_digest(now);
        notifier.restore(outbox);
        notifier.number_from(with_first(
            first_rows,
            id_source(&c.location, Numbered::Outbox),
        ));
        notifier.read_silences_from(conn);
        self.notifier = notifier;
        self.engine = Some(engine);
        c.role.decide_under(held);
        if !settle.is_empty() {
            self.decisions.send(WriteOp::Incidents(Vec::new(), settle));
        }
        let recent: Vec<_> = c.recent.iter().cloned().collect();
        tracing::info!(
            epoch = held,
            recent = recent.len(),
            "deciding: the store's incidents and outbox read back"
        );
        // What the store already reflects of each sender: its newest server
        // state as decided. Only what came later is decided again, so a DOWN
        // and UP the last decider paged are not paged twice.
        let mut decided: HashMap<String, i64> = HashMap::new();
        if let Some(engine) = &self.engine {
            for ((host, _, _), s) in &engine.fleet().servers {
                let mark = decided.entry(host.clone()).or_insert(i64::MIN);
                *mark = (*mark).max(s.since_ms);
            }
        }
        for (bytes, peer, received_ms) in recent {
            self.decide_again(&bytes, peer, received_ms, &decided);
        }
    }

    /// The store stopped answering: this node decides from now on, with every
    /// other node that lost it (duplicates are counted at the merge; a page
    /// missed is not acceptable). The decider goes on as it was. A node that
    /// stood by starts an engine of its own, numbering far past any stored id
    /// (the merge renumbers what it opened), and decides again what it
    /// received since the store last answered.
    fn fail_open(&mut self) {
        let Some(c) = &mut self.cluster else { return };
        c.failed_open = true;
        if c.role.deciding() != 0 {
            tracing::warn!("failing open: deciding on, into the local spool");
            return;
        }
        let since = self.wall.now_ms()
            - c.config.storage.postgres_timeout.as_millis() as i64
            - FAIL_OPEN_MARGIN_MS;
        let mut engine = crate::incidents::Engine::new(
            c.config.incidents.clone(),
            SPOOLED_IDS,
            Vec::new(),
            Default::default(),
        )
        .with_host_limit(c.config.limits.hosts)
        .with_server_idle(c.config.limits.route_idle);
        if let Some(before) = &mut self.engine {
            engine.carry_hearing(before);
        }
        self.engine = Some(engine);
        self.notifier = self.notifier.fail_open(&c.config, SPOOLED_IDS);
        let recent: Vec<_> = c
            .recent
            .iter()
            .filter(|(_, _, at)| *at >= since)
            .cloned()
            .collect();
        tracing::warn!(
            recent = recent.len(),
            "failing open: this node stood by, and decides now with an engine of its own"
        );
        for (bytes, peer, received_ms) in recent {
            self.decide_again(&bytes, peer, received_ms, &HashMap::new());
        }
    }

    /// An event received before taking the lease, put to the engine again.
    fn decide_again(
        &mut self,
        bytes: &[u8],
        peer: Option<IpAddr>,
        received_ms: i64,
        decided: &HashMap<String, i64>,
    ) {
        let parser = self.parser.clone();
        let Ok(rec) = parser.parse(bytes) else { return };
        if matches!(rec.event, Event::Traffic(_)) {
            return;
        }
        let ts = self.event_ms(&rec, received_ms);
        let host = sender(
            rec.envelope.hostname,
            &mut self.peer_names,
            &self.local_host,
            peer,
        );
        if decided.get(host).is_some_and(|mark| ts <= *mark) {
            return;
        }
        let now = self.wall.now_ms();
        let deciding = (&self.rates, &self.decisions, &mut self.notifier, now);
        decide(&mut self.engine, deciding, host, &rec, ts);
        // Stored already (by its identity), but the servers' states as
        // decided are written only now.
        let row = event_row(&rec, host.to_owned(), ts, bytes);
        self.events.push(row);
    }
}

/// Ids in blocks reserved in the store, for an engine or notifier that
/// numbers side by side with other groups' (see `store::ids`).
fn id_source(location: &crate::store::Location, what: Numbered) -> hapwatch_engine::IdSource {
    let location = location.clone();
    let mut conn: Option<crate::store::Db> = None;
    // A store that failed to answer is left alone this long: each try would
    // hold up the pipeline for a statement's deadline.
    let mut quiet_until: Option<std::time::Instant> = None;
    Box::new(move |next| {
        if quiet_until.is_some_and(|t| std::time::Instant::now() < t) {
            return None;
        }
        if conn.is_none() {
            conn = location.open_read().ok();
            if let Some(db) = &conn {
                db.set_deadline(db.deadline().map(|d| d.min(ID_DEADLINE)));
            }
        }
        let reserved = match &conn {
            Some(db) => crate::store::ids::reserve(db, what, next).map_err(|e| e.to_string()),
            None => Err("cannot connect to the store".to_owned()),
        };
        match reserved {
            Ok(block) => {
                quiet_until = None;
                Some(block)
            }
            Err(error) => {
                tracing::error!(
                    ?what,
                    error,
                    "no block of ids can be reserved: numbering on past the last one"
                );
                conn = None;
                quiet_until = Some(std::time::Instant::now() + std::time::Duration::from_secs(10));
                None
            }
        }
    })
}

/// A source that hands out `first` before asking `then` for more.
fn with_first(
    first: std::ops::Range<i64>,
    mut then: hapwatch_engine::IdSource,
) -> hapwatch_engine::IdSource {
    let mut first = Some(first);
    Box::new(move |next| first.take().or_else(|| then(next)))
}

/// Where a node failing open numbers what it opens: past any id a store
/// hands out, so the merge tells its ids from stored ones.
const SPOOLED_IDS: i64 = 1 << 52;
/// Events received this long before the store was found unreachable are
/// decided again on failing open.
const FAIL_OPEN_MARGIN_MS: i64 = 5_000;

/// The longest the pipeline waits to reserve a block of ids.
const ID_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
