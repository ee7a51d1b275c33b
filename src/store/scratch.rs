//! Throwaway stores for the test suites: a fresh SQLite file, and a fresh
//! database in a PostgreSQL cluster started once for the test process. The
//! store's tests run on both; with HAPWATCH_E2E set (as CI sets it) a
//! PostgreSQL that cannot start fails them rather than skipping.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;

use super::pg_cluster::Cluster;
use super::Db;

/// A store to open connections to.
pub enum Scratch {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Scratch {
    /// A new connection, the schema migrated.
    pub fn open(&self) -> Db {
        match self {
            Scratch::Sqlite(dir) => super::open_write(&dir.path().join("scratch.db")),
            Scratch::Postgres(url) => super::open_postgres(&url.parse().expect("a scratch URL")),
        }
        .expect("a scratch store")
    }
}

fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| match Cluster::start() {
            Ok(c) => Some(c),
            Err(why) if std::env::var_os("HAPWATCH_E2E").is_some() => {
                panic!("PostgreSQL for the store tests: {why}")
            }
            Err(why) => {
                eprintln!("store tests on SQLite only: {why}");
                None
            }
        })
        .as_ref()
}

/// A fresh database on the test cluster, if PostgreSQL is installed.
pub fn postgres() -> Option<Scratch> {
    static CREATED: AtomicU32 = AtomicU32::new(0);
    let c = cluster()?;
    let name = format!("scratch_{}", CREATED.fetch_add(1, Relaxed));
    let mut admin = postgres::Client::connect(&c.url("postgres"), postgres::NoTls)
        .expect("the test cluster answers");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a scratch database");
    Some(Scratch::Postgres(c.url(&name)))
}

/// Every kind of store, fresh.
pub fn stores() -> Vec<Scratch> {
    let sqlite = Scratch::Sqlite(tempfile::tempdir().expect("a temporary directory"));
    std::iter::once(sqlite).chain(postgres()).collect()
}

/// Runs `test` on a fresh store of each kind.
pub fn each(mut test: impl FnMut(&Db)) {
    for store in stores() {
        test(&store.open());
    }
}
