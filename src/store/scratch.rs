//! Throwaway stores for the test suites: a fresh SQLite file, and a fresh
//! database in a PostgreSQL cluster started once for the test process
//! ([`Cluster::shared`]). The store's tests run on both.

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

/// A fresh database on the test cluster, if PostgreSQL is installed.
pub fn postgres() -> Option<Scratch> {
    Cluster::shared().map(|c| Scratch::Postgres(c.database()))
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
