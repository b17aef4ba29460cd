//! WAL errors. Every variant names the file or directory it is about.

use std::io;
use std::path::PathBuf;

/// An error from the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O operation failed.
    #[error("wal: {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `write`, `fdatasync`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A record is damaged somewhere other than a torn tail of the last segment.
    #[error("wal: corrupt record in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad record's header in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The segment files in the directory are not a valid sequence.
    #[error("wal: invalid segment files in {}: {reason}", dir.display())]
    InvalidSegments {
        /// The WAL directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `open` found no segment file.
    #[error("wal: no WAL segment files in {}", dir.display())]
    NotFound {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// `create` found existing segment files.
    #[error("wal: {} already holds WAL segment files", dir.display())]
    AlreadyExists {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// `open_at` was asked to start at a snapshot the WAL holds no marker for.
    #[error("wal: snapshot marker index={index} term={term} not found in {}", dir.display())]
    SnapshotNotFound {
        /// The WAL directory.
        dir: PathBuf,
        /// Requested index.
        index: u64,
        /// Requested term.
        term: u64,
    },
    /// `open_at`'s snapshot has a marker at the same index with another term.
    #[error(
        "wal: snapshot marker at index {index} in {} has term {found}, expected {expected}",
        dir.display()
    )]
    SnapshotMismatch {
        /// The WAL directory.
        dir: PathBuf,
        /// The index.
        index: u64,
        /// The term asked for.
        expected: u64,
        /// The term in the WAL.
        found: u64,
    },
    /// The entries right after the starting snapshot marker are gone (their segments were
    /// released): the WAL cannot continue from that snapshot.
    #[error(
        "wal: entries after snapshot index {index} are no longer in {} (the first one left is {first})",
        dir.display()
    )]
    EntriesReleased {
        /// The WAL directory.
        dir: PathBuf,
        /// The snapshot index replay started from.
        index: u64,
        /// The first entry index found after it.
        first: u64,
    },
    /// A raft message could not be encoded.
    #[error("wal: encoding {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// An earlier write or fdatasync failed; the on-disk state is unknown, so the WAL refuses
    /// further use (as etcd, which exits). Reopen it to recover.
    #[error("wal: unusable after an earlier failure: {0}")]
    Failed(String),
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
