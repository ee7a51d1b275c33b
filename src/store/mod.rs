//! The store: one writer thread, read-only connections for queries; a
//! SQLite file, or a PostgreSQL database ([`db`] runs the same statements on either).

pub mod acks;
mod claims;
pub mod db;
pub mod guard;
pub mod ids;
pub mod incidents;
pub mod maintenance;
pub mod outbox;
#[cfg(test)]
mod pg_cluster;
pub mod queries;
pub mod replays;
mod rows;
pub mod schema;
pub mod schema_pg;
#[cfg(test)]
pub mod scratch;
pub mod silences;
pub mod spool;
pub mod summaries;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use db::{Db, DbError, DbResult};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("no database at {0} (has `hapwatch serve` or `hapwatch replay` run with this --db?)")]
    Missing(String),
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{path} was written by a newer hapwatch (schema {found}, this one knows {known})")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{path} is in use by another hapwatch (pid {pid}): one daemon per store")]
    Locked { path: String, pid: String },
    #[error("cannot lock the store with {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} cannot be written ({source}): check its owner, mode and the filesystem")]
    ReadOnly {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{store}: {source}")]
    Database { store: String, source: DbError },
    #[error("cannot connect to PostgreSQL at {store}: {source}")]
    Connect { store: String, source: DbError },
    #[error("{path} has an older schema ({found}, now {known}): start `hapwatch serve` once to upgrade it")]
    TooOld {
        path: String,
        found: i64,
        known: i64,
    },
}

fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// Opens (creating if needed) the file for writing, in WAL mode, migrated to the current schema.
pub fn open_write(path: &Path) -> Result<Db, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(sqlite(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite(path))?;
    // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commit.
    // The page cache is the daemon's largest memory: 8 MiB keeps the recent end of
    // every index hot, where live writes land (`replay` raises it for backfills).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192;",
    )
    .map_err(sqlite(path))?;
    // Before migrating: a migration may use them (8 sums histograms).
    writer::register_functions(&conn).map_err(sqlite(path))?;
    schema::migrate(&conn, path)?;
    // A file that opens but cannot be written would lose every batch: say so now.
    conn.pragma_update(None, "user_version", schema::CURRENT)
        .map_err(|source| StoreError::ReadOnly {
            path: path.display().to_string(),
            source,
        })?;
    Ok(Db::from(conn))
}

/// A read-only connection for queries; never creates the file.
pub fn open_read(path: &Path) -> Result<Db, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing(path.display().to_string()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite(path))?;
    let version = schema::version(&conn).map_err(sqlite(path))?;
    at_current(path.display().to_string(), version)?;
    Ok(Db::from(conn))
}

/// A store to read must be at this hapwatch's schema: not older, not newer.
fn at_current(store: String, found: i64) -> Result<(), StoreError> {
    match found.cmp(&schema::CURRENT) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(StoreError::TooNew {
            path: store,
            found,
            known: schema::CURRENT,
        }),
        std::cmp::Ordering::Less => Err(StoreError::TooOld {
            path: store,
            found,
            known: schema::CURRENT,
        }),
    }
}

/// A connection to a PostgreSQL store, as it is (not migrated).
fn connect_postgres(
    config: &tokio_postgres::Config,
    timeout: Option<std::time::Duration>,
) -> Result<Db, StoreError> {
    Db::connect_postgres(config.clone(), timeout).map_err(|source| StoreError::Connect {
        store: postgres_label(config),
        source,
    })
}

/// Where a PostgreSQL store is, for messages: never its password.
pub fn postgres_label(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgresql://{host}:{port}/{db}")
}

/// Connects to a PostgreSQL store, migrated to the current schema.
pub fn open_postgres(config: &tokio_postgres::Config) -> Result<Db, StoreError> {
    let db = connect_postgres(config, None)?;
    schema_pg::migrate(&db, &postgres_label(config))?;
    Ok(db)
}

/// Where the store is: a SQLite file, or a PostgreSQL database.
#[derive(Clone, Debug)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
}

/// A PostgreSQL database, and how long one statement on it may take.
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    /// `[storage] postgres_timeout`: past it a statement fails (and is
    /// retried), so a server that stopped answering holds no thread for good.
    pub timeout: Option<std::time::Duration>,
}

impl Location {
    /// A connection to write with, the schema migrated (a SQLite file is created).
    pub fn open_write(&self) -> Result<Db, StoreError> {
        match self {
            Location::Sqlite(path) => open_write(path),
            Location::Postgres(t) => {
                // Migrating may take longer than any statement of the daemon.
                let db = open_postgres(&t.config)?;
                db.set_deadline(t.timeout);
                Ok(db)
            }
        }
    }

    /// A connection to read with; never creates nor migrates the store.
    pub fn open_read(&self) -> Result<Db, StoreError> {
        match self {
            Location::Sqlite(path) => open_read(path),
            Location::Postgres(t) => {
                let db = connect_postgres(&t.config, t.timeout)?;
                let found = schema_pg::version(&db).map_err(|source| StoreError::Database {
                    store: postgres_label(&t.config),
                    source,
                })?;
                at_current(postgres_label(&t.config), found)?;
                Ok(db)
            }
        }
    }

    /// The SQLite file, if the store is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(t) => f.write_str(&postgres_label(&t.config)),
        }
    }
}
