//! The daemon's hold on its store: an exclusive lock, so a second daemon on
//! the same file refuses to start and names the first, and a watch that the
//! file written is still the one at the path (not unlinked or replaced).
//! The lock file stays after exit: removing it could let two holders in.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::StoreError;

pub struct StoreGuard {
    path: PathBuf,
    /// Held (flock) for the life of the process; holds our pid.
    _lock: File,
    /// The database file as opened, to compare with what the path names now.
    watched: Option<(File, (u64, u64))>,
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StoreGuard {
    /// Takes the store's lock, before anything opens the database.
    pub fn acquire(db: &Path) -> Result<StoreGuard, StoreError> {
        let shown = || db.display().to_string();
        let lock_file = lock_path(db);
        let io = |source| StoreError::Lock {
            path: lock_file.display().to_string(),
            source,
        };
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .map_err(io)?;
        if let Err(e) = lock.try_lock() {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            return Err(match e {
                std::fs::TryLockError::WouldBlock => StoreError::Locked {
                    path: shown(),
                    pid: pid.trim().to_owned(),
                },
                std::fs::TryLockError::Error(source) => io(source),
            });
        }
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(StoreGuard {
            path: db.to_owned(),
            _lock: lock,
            watched: None,
        })
    }

    /// From now on, `check` compares the path with the file as it is now.
    pub fn watch(&mut self) -> Result<(), StoreError> {
        let io = |source| StoreError::Lock {
            path: self.path.display().to_string(),
            source,
        };
        let file = File::open(&self.path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        self.watched = Some((file, (meta.dev(), meta.ino())));
        Ok(())
    }

    /// Whether the file written is still the one the path names.
    pub fn check(&self) -> Result<(), StoreGone> {
        let Some((file, identity)) = &self.watched else {
            return Ok(());
        };
        let path = || self.path.display().to_string();
        let opened = file.metadata().map_err(|source| StoreGone::Unreadable {
            path: path(),
            source,
        })?;
        if opened.nlink() == 0 {
            return Err(StoreGone::Deleted { path: path() });
        }
        match std::fs::metadata(&self.path) {
            Ok(now) if (now.dev(), now.ino()) == *identity => Ok(()),
            Ok(_) => Err(StoreGone::Replaced { path: path() }),
            Err(source) => Err(StoreGone::Missing {
                path: path(),
                source,
            }),
        }
    }
}

/// The store file the daemon writes is no longer the one its path names.
#[derive(Debug, thiserror::Error)]
pub enum StoreGone {
    #[error("{path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} was deleted while in use: what is written now would be lost")]
    Deleted { path: String },
    #[error("{path} was replaced by another file while in use")]
    Replaced { path: String },
    #[error("{path} is gone while in use: {source}")]
    Missing {
        path: String,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_a_replaced_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db");
        std::fs::write(&db, b"").unwrap();
        let mut guard = StoreGuard::acquire(&db).unwrap();
        guard.watch().unwrap();
        assert!(guard.check().is_ok());
        match StoreGuard::acquire(&db) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("{:?}", other.err()),
        }
        // Moved away and another file put in its place.
        std::fs::rename(&db, dir.path().join("old.db")).unwrap();
        std::fs::write(&db, b"").unwrap();
        assert!(matches!(guard.check(), Err(StoreGone::Replaced { .. })));
        std::fs::remove_file(dir.path().join("old.db")).unwrap();
        assert!(matches!(guard.check(), Err(StoreGone::Deleted { .. })));
    }
}
