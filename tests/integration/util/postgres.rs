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

/// Polls the database (60 s at most) until `sql` counts at least `n`.
pub fn wait_count(url: &str, sql: &str, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(url, sql) < n {
        assert!(std::time::Instant::now() < deadline, "{sql}: never {n}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
