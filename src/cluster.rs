//! Several nodes on one PostgreSQL store. Every node stores what it receives
//! (an event once however many nodes saw it, each sender's window counted by
//! one node). Nodes receiving the same load balancers form a group (an HA
//! pair); one node of each group at a time decides for it: it opens and
//! resolves incidents, groups and queues notifications. Groups receiving
//! different load balancers (shards) decide side by side over one history.
//! The deciding node holds its group's lease row, renewed well inside its
//! term; a node that finds the lease lapsed takes it under the next epoch,
//! reads its group's decisions back from the store, and goes over what it
//! received lately that they may not cover. The writer commits a decision
//! only while the database still names its epoch, so a node that was paused
//! or cut off cannot act on a stale view. One deciding node also holds the
//! jobs lease: the digest is composed once for all groups.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::db::{vals, Db, DbResult};

/// The database's clock in Unix ms: leases are judged by one clock, not by
/// each node's.
pub const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// This node's part in the cluster, shared by the lease thread (which
/// renews), the pipeline (which decides once it has caught up) and the
/// writer (which fences decisions).
#[derive(Debug)]
pub struct Role {
    /// `[cluster] node`: shown to people.
    pub node: Arc<str>,
    /// `[cluster] group`: the load balancers this node decides for, with its peers.
    pub group: Arc<str>,
    /// The name of the group's lease row.
    decide_lease: String,
    /// This process: a node restarted under the same name is another holder.
    pub holder: String,
    pub lease: Duration,
    /// The epoch the lease is held under (0: another node holds it).
    held: AtomicI64,
    /// The epoch the pipeline decides under (0: it stands by). Set once the
    /// pipeline has read the store back after taking the lease.
    deciding: AtomicI64,
    /// The epoch of the jobs lease this node holds (0: none).
    jobs: AtomicI64,
    /// The node the database last named as deciding, and until when (ms, its clock).
    leader: Mutex<(String, i64)>,
    /// When the pipeline last ticked: a lease is renewed only for a pipeline
    /// that still runs.
    ticked: Mutex<Instant>,
    /// The shared store does not answer: this node decides (fails open)
    /// whoever held the lease, and its writer spools.
    failing_open: std::sync::atomic::AtomicBool,
}

/// The lease of the once-only jobs (the digest).
const JOBS: &str = "jobs";

impl Role {
    pub fn new(node: Arc<str>, group: Arc<str>, lease: Duration) -> Arc<Role> {
        let nonce = std::collections::hash_map::RandomState::new();
        let nonce = std::hash::BuildHasher::hash_one(&nonce, std::process::id());
        Arc::new(Role {
            holder: format!("{node}#{}#{nonce:016x}", std::process::id()),
            node,
            decide_lease: format!("decide:{group}"),
            group,
            lease,
            held: AtomicI64::new(0),
            deciding: AtomicI64::new(0),
            jobs: AtomicI64::new(0),
            leader: Mutex::new((String::new(), 0)),
            ticked: Mutex::new(Instant::now()),
            failing_open: Default::default(),
        })
    }

    /// The pipeline ran its tick.
    pub fn ticked(&self) {
        *self.ticked.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// The pipeline has not ticked for twice the lease (10 s at least, as a
    /// takeover may wait 5 s for the writer): renewing would keep its group
    /// from a node that can decide.
    fn stalled(&self) -> bool {
        let since = self
            .ticked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        since > (2 * self.lease).max(Duration::from_secs(10))
    }

    /// Whether this node runs the once-only jobs.
    pub fn runs_jobs(&self) -> bool {
        self.jobs.load(Relaxed) != 0
    }

    /// The epoch of the lease this node holds (0: none).
    pub fn held(&self) -> i64 {
        self.held.load(Relaxed)
    }

    /// The epoch decisions are made under (0: standing by).
    pub fn deciding(&self) -> i64 {
        self.deciding.load(Relaxed)
    }

    pub fn is_deciding(&self) -> bool {
        self.deciding() != 0 || self.failing_open()
    }

    /// Whether the store is unreachable and this node decides regardless.
    pub fn failing_open(&self) -> bool {
        self.failing_open.load(Relaxed)
    }

    /// Set by the writer when it begins spooling, and cleared once merged.
    pub fn fail_open(&self, on: bool) {
        self.failing_open.store(on, Relaxed);
    }

    /// The pipeline caught up under `epoch` (or stands by: 0).
    pub fn decide_under(&self, epoch: i64) {
        self.deciding.store(epoch, Relaxed);
    }

    /// The node deciding, as the database last said (empty: none yet).
    pub fn leader(&self) -> String {
        self.leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    fn set_leader(&self, node: String, until_ms: i64) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = (node, until_ms);
    }
}

/// Makes sure this node's lease rows exist (a group's first node names it).
pub fn prepare(db: &Db, role: &Role) -> DbResult<()> {
    for name in [role.decide_lease.as_str(), JOBS] {
        db.execute(
            "INSERT INTO cluster_leases (name, node, holder, epoch, until)
             VALUES (?1, '', '', 0, 0) ON CONFLICT (name) DO NOTHING",
            &vals![name],
        )?;
    }
    Ok(())
}

/// Takes or renews the group's lease: Some(epoch) when this holder has it
/// (a new epoch when it was lapsed or another's), None when another node holds it.
pub fn renew(db: &Db, role: &Role) -> DbResult<Option<i64>> {
    renew_named(db, role, &role.decide_lease)
}

fn renew_named(db: &Db, role: &Role, name: &str) -> DbResult<Option<i64>> {
    let lease_ms = role.lease.as_millis() as i64;
    db.query_opt(
        &format!(
            "UPDATE cluster_leases SET
                epoch = CASE WHEN holder = ?1 AND until > {DB_NOW_MS} THEN epoch ELSE epoch + 1 END,
                node = ?2, holder = ?1, until = {DB_NOW_MS} + ?3
             WHERE name = ?4 AND (holder = ?1 OR until <= {DB_NOW_MS})
             RETURNING epoch"
        ),
        &vals![role.holder, &*role.node, lease_ms, name],
        |r| r.get(0),
    )
}

/// Gives the leases up (a clean stop): the next node need not wait them out.
pub fn release(db: &Db, role: &Role) -> DbResult<()> {
    db.execute(
        "UPDATE cluster_leases SET until = 0 WHERE holder = ?1",
        &vals![role.holder],
    )?;
    Ok(())
}

/// Whether the database still names `epoch` of this holder for the group;
/// inside a transaction it also keeps the lease from changing hands until the commit.
pub fn fenced(tx: &Db, role: &Role, epoch: i64) -> DbResult<bool> {
    let row: Option<i64> = tx.query_opt(
        "SELECT epoch FROM cluster_leases WHERE name = ?3 AND holder = ?1 AND epoch = ?2 FOR SHARE",
        &vals![role.holder, epoch, role.decide_lease],
        |r| r.get(0),
    )?;
    Ok(row.is_some())
}

/// The node the database names as deciding for a group, and until when (ms, its clock).
type Leader = (String, i64);

/// One round of the lease thread: the group's lease, then (while this node
/// decides) the jobs lease; returns the group's epoch held, and its leader.
fn round(db: &Db, role: &Role) -> DbResult<(Option<i64>, Option<Leader>)> {
    let held = renew(db, role)?;
    let jobs = if held.is_some() && role.is_deciding() {
        renew_named(db, role, JOBS)?
    } else {
        if role.runs_jobs() {
            db.execute(
                "UPDATE cluster_leases SET until = 0 WHERE name = ?1 AND holder = ?2",
                &vals![JOBS, role.holder],
            )?;
        }
        None
    };
    let before = role.jobs.swap(jobs.unwrap_or(0), Relaxed);
    if (before != 0) != jobs.is_some() {
        tracing::info!(
            jobs = jobs.is_some(),
            "the once-only jobs (the digest) moved"
        );
    }
    let leader = db.query_opt(
        "SELECT node, until FROM cluster_leases WHERE name = ?1",
        &vals![role.decide_lease],
        |r| r.get(0),
    )?;
    Ok((held, leader))
}

/// Renews the lease every fifth of its term until `stop` is set, then gives
/// it up. A database that cannot be reached changes nothing here: no other
/// node can take the lease through it either, and the writer's fence keeps
/// a decision from landing once another has.
pub fn spawn_lease(
    location: crate::store::Location,
    role: Arc<Role>,
    stop: std::sync::mpsc::Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hapwatch-lease".into())
        .spawn(move || {
            let every = (role.lease / 5).max(Duration::from_millis(100));
            let mut conn: Option<Db> = None;
            let mut failing = false;
            let mut was_stalled = false;
            loop {
                if conn.is_none() {
                    conn = location
                        .open_read()
                        .ok()
                        .filter(|db| prepare(db, &role).is_ok());
                }
                let stalled = role.stalled();
                if stalled != was_stalled {
                    if stalled {
                        tracing::error!("the pipeline has stopped ticking: the lease is left to lapse");
                    } else {
                        tracing::info!("the pipeline ticks again: the lease is renewed");
                    }
                    was_stalled = stalled;
                }
                if let (Some(db), false) = (&conn, stalled) {
                    match round(db, &role) {
                        Ok((held, leader)) => {
                            if failing {
                                tracing::info!("the lease can be renewed again");
                                failing = false;
                            }
                            note(&role, held.unwrap_or(0));
                            if let Some((node, until)) = leader {
                                role.set_leader(node, until);
                            }
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "the lease cannot be renewed; deciding as before until the database answers");
                                failing = true;
                            }
                            // A connection the server dropped stays dropped: connect again.
                            conn = None;
                        }
                    }
                }
                match stop.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            if let Some(db) = &conn {
                if role.held() != 0 || role.runs_jobs() {
                    if let Err(e) = release(db, &role) {
                        tracing::warn!(error = %e, "the lease could not be given up; another node takes it when it lapses");
                    }
                }
            }
        })
}

/// Records what the database said of the lease, logging a change of hands.
fn note(role: &Role, epoch: i64) {
    let before = role.held.swap(epoch, Relaxed);
    match (before, epoch) {
        (0, e) if e != 0 => tracing::info!(epoch = e, "this node holds the lease: it decides"),
        (b, 0) if b != 0 => {
            tracing::warn!("another node took the lease: this node stands by")
        }
        (b, e) if b != e => tracing::warn!(epoch = e, "the lease lapsed and was taken again"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_lapsed_lease_moves_under_a_new_epoch() {
        let Some(scratch) = crate::store::scratch::postgres() else {
            return;
        };
        let db = scratch.open();
        let a = Role::new("a".into(), "default".into(), Duration::from_secs(3));
        let b = Role::new("b".into(), "default".into(), Duration::from_secs(3));
        prepare(&db, &a).unwrap();
        prepare(&db, &b).unwrap();
        let first = renew(&db, &a).unwrap().expect("a free lease is taken");
        assert_eq!(renew(&db, &b).unwrap(), None, "held by a");
        assert_eq!(renew(&db, &a).unwrap(), Some(first), "renewed, same epoch");
        assert!(fenced(&db, &a, first).unwrap());
        assert!(!fenced(&db, &b, first).unwrap());
        std::thread::sleep(Duration::from_millis(3200));
        let second = renew(&db, &b).unwrap().expect("a lapsed lease is taken");
        assert!(second > first);
        assert!(!fenced(&db, &a, first).unwrap(), "a is fenced off");
        assert_eq!(renew(&db, &a).unwrap(), None);
        release(&db, &b).unwrap();
        let third = renew(&db, &a)
            .unwrap()
            .expect("a released lease is taken at once");
        assert!(third > second);
        // A restarted process under the same name is another holder.
        let a_again = Role::new("a".into(), "default".into(), Duration::from_secs(3));
        assert_ne!(a_again.holder, a.holder);
        assert_eq!(renew(&db, &a_again).unwrap(), None);
    }

    #[test]
    fn groups_decide_side_by_side_and_one_decider_runs_the_jobs() {
        let Some(scratch) = crate::store::scratch::postgres() else {
            return;
        };
        let db = scratch.open();
        let eu = Role::new("eu-1".into(), "eu".into(), Duration::from_secs(30));
        let us = Role::new("us-1".into(), "us".into(), Duration::from_secs(30));
        let eu_peer = Role::new("eu-2".into(), "eu".into(), Duration::from_secs(30));
        for r in [&eu, &us, &eu_peer] {
            prepare(&db, r).unwrap();
        }
        let e = renew(&db, &eu).unwrap().expect("eu's lease");
        let u = renew(&db, &us).unwrap().expect("us's lease, beside eu's");
        assert_eq!(renew(&db, &eu_peer).unwrap(), None, "eu-1 decides for eu");
        assert!(fenced(&db, &eu, e).unwrap() && fenced(&db, &us, u).unwrap());
        assert!(!fenced(&db, &eu_peer, e).unwrap());
        // The jobs go to a deciding node, one at a time.
        eu.decide_under(e);
        us.decide_under(u);
        let (held, leader) = round(&db, &eu).unwrap();
        assert_eq!(held, Some(e));
        assert_eq!(leader.map(|l| l.0).as_deref(), Some("eu-1"));
        round(&db, &us).unwrap();
        assert!(eu.runs_jobs() && !us.runs_jobs());
        // eu-1 stops deciding: it gives the jobs up, and us-1 takes them.
        eu.decide_under(0);
        round(&db, &eu).unwrap();
        round(&db, &us).unwrap();
        assert!(!eu.runs_jobs() && us.runs_jobs());
    }

    #[test]
    fn a_pipeline_that_stopped_ticking_is_stalled_until_it_ticks_again() {
        let role = Role::new("a".into(), "default".into(), Duration::from_secs(2));
        assert!(!role.stalled());
        *role.ticked.lock().unwrap() = Instant::now() - Duration::from_secs(9);
        assert!(!role.stalled(), "a takeover may hold a tick up for 5 s");
        *role.ticked.lock().unwrap() = Instant::now() - Duration::from_secs(11);
        assert!(role.stalled());
        role.ticked();
        assert!(!role.stalled());
    }
}
