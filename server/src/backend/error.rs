//! Errors of the backend, each naming the database file it concerns.

use std::io;
use std::path::{Path, PathBuf};

/// A failure of the backend database (redb on the seam's disk).
///
/// Every variant names the file, so an operator knows which data dir is affected. A commit
/// failure is fatal for the member (etcd panics on it): the caller should stop applying.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The disk returned an error (EIO, ENOSPC, ...).
    #[error("backend {}: {op}: {source}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// What the backend was doing.
        op: &'static str,
        /// The disk's error.
        #[source]
        source: io::Error,
    },
    /// redb reported an error that is neither I/O nor corruption.
    #[error("backend {}: {op}: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// What the backend was doing.
        op: &'static str,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The database file is damaged (bad checksum, bad header, impossible page).
    #[error("backend {}: database file is corrupt ({op}): {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the backend was doing.
        op: &'static str,
        /// What redb found.
        detail: String,
    },
    /// A snapshot handed to `restore_snapshot` is malformed or older than required.
    #[error("backend {}: invalid snapshot: {detail}", path.display())]
    InvalidSnapshot {
        /// The database file the snapshot was to be restored into.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

impl BackendError {
    /// Whether the error means the database file is damaged (as opposed to a failing disk).
    pub fn is_corruption(&self) -> bool {
        matches!(self, BackendError::Corrupt { .. })
    }

    pub(crate) fn from_redb(path: &Path, op: &'static str, err: impl Into<redb::Error>) -> Self {
        let err: redb::Error = err.into();
        match err {
            redb::Error::Corrupted(detail) => BackendError::Corrupt {
                path: path.to_path_buf(),
                op,
                detail,
            },
            redb::Error::Io(source) => BackendError::Io {
                path: path.to_path_buf(),
                op,
                source,
            },
            other => BackendError::Db {
                path: path.to_path_buf(),
                op,
                source: Box::new(other),
            },
        }
    }

    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        BackendError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    pub(crate) fn snapshot(path: &Path, detail: impl Into<String>) -> Self {
        BackendError::InvalidSnapshot {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}
