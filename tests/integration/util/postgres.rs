//! A throwaway PostgreSQL cluster for this test process (the store's own
//! launcher, src/store/pg_cluster.rs), and a fresh database in it per test.

#[path = "../../../src/store/pg_cluster.rs"]
mod pg_cluster;

use pg_cluster::Cluster;

/// A fresh database: its key=value connection string. None (the test
/// skipped) only without HAPWATCH_E2E and without PostgreSQL.
pub fn database() -> Option<String> {
    Cluster::shared().map(Cluster::database)
}

pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("the test cluster answers")
}

/// One integer read from the database now.
pub fn count(url: &str, sql: &str) -> i64 {
    connect(url)
        .query_one(sql, &[])
        .expect("a count")
        .get::<_, i64>(0)
}
