//! The SQLite file: one writer thread, read-only connections for queries.

pub mod acks;
pub mod guard;
pub mod incidents;
pub mod maintenance;
pub mod outbox;
pub mod queries;
pub mod replays;
pub mod schema;
pub mod silences;
pub mod summaries;
pub mod writer;

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

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
pub fn open_write(path: &Path) -> Result<Connection, StoreError> {
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
    Ok(conn)
}

/// A read-only connection for queries; never creates the file.
pub fn open_read(path: &Path) -> Result<Connection, StoreError> {
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
    if version > schema::CURRENT {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: version,
            known: schema::CURRENT,
        });
    }
    if version < schema::CURRENT {
        return Err(StoreError::TooOld {
            path: path.display().to_string(),
            found: version,
            known: schema::CURRENT,
        });
    }
    Ok(conn)
}
