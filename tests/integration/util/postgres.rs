//! A throwaway PostgreSQL cluster for this test process (the store's own
//! launcher, src/store/pg_cluster.rs), and a fresh database in it per test.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;

#[path = "../../../src/store/pg_cluster.rs"]
mod pg_cluster;

pub use pg_cluster::Cluster;

fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| match Cluster::start() {
            Ok(c) => Some(c),
            Err(why) => {
                super::cannot_run(&why);
                None
            }
        })
        .as_ref()
}

/// A fresh database: its key=value connection string. None (the test
/// skipped) only without HAPWATCH_E2E and without PostgreSQL.
pub fn database() -> Option<String> {
    static CREATED: AtomicU32 = AtomicU32::new(0);
    let c = cluster()?;
    let name = format!("it_{}", CREATED.fetch_add(1, Relaxed));
    connect(&c.url("postgres"))
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a test database");
    Some(c.url(&name))
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
