//! Offline storage migration, as etcdutl's `migrate` (`etcd-server migrate --data-dir D
//! --target-version X.Y [--force]`): moves a stopped member's `meta/storageVersion` to the
//! target release line.
//!
//! Owns: etcdutl's checks and messages (target format, minimum 3.5, `storage version
//! up-to-date`, `cannot downgrade storage, WAL contains newer entries ...` unless forced) and
//! the WAL's version: the highest cluster version any entry since the newest snapshot set.
//!
//! Must never: touch anything but `meta/storageVersion`, or run on a missing database (it
//! would create an empty one).

use super::{storage_version_for, Version, VersionCheckError};
use crate::backend::{meta, Backend, BackendError, BackendOptions, Bucket};
use crate::etcdserver::request::{InternalRaftRequest, Op};
use crate::seam::Disk;
use crate::wal::{Wal, WalError, WalOptions};
use prost::Message as _;
use raft::eraftpb::EntryType;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Why a migration did not happen.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// Not `X.Y`.
    #[error("wrong target version format, expected \"X.Y\", got {0:?}")]
    Format(String),
    /// `X.Y` that is no version.
    #[error("failed to parse target version: {0}")]
    Parse(String),
    /// Below 3.5.
    #[error("target version {0:?} not supported. Minimal \"3.5\"")]
    TooOld(String),
    /// No database at the data dir.
    #[error("{0}: no such database (want <data-dir>/member/snap/db)")]
    NoDatabase(String),
    /// The database has no storage version and no applied term either.
    #[error("cannot detect storage schema version: missing term information ({0})")]
    Undetectable(String),
    /// The WAL since the newest snapshot has entries of a newer cluster version.
    #[error("cannot downgrade storage, WAL contains newer entries, as the target version ({target}) is lower than the version ({wal}) detected from WAL logs")]
    WalNewer {
        /// The target, `X.Y.0`.
        target: Version,
        /// The WAL's version.
        wal: Version,
    },
    /// The backend.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The WAL.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A damaged version key.
    #[error(transparent)]
    Version(#[from] VersionCheckError),
}

/// `etcd-server migrate`'s flags (etcdutl's names).
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "etcd-server migrate",
    about = "Migrates schema of etcd data dir files to make them compatible with different etcd version"
)]
pub struct MigrateArgs {
    /// Path to the etcd data dir.
    #[arg(long = "data-dir")]
    pub data_dir: String,
    /// Target etcd version to migrate contents of data dir. Minimal value 3.5. Format "X.Y"
    /// for example 3.6.
    #[arg(long = "target-version")]
    pub target_version: String,
    /// Ignore migration failure and forcefully override storage version. Not recommended.
    #[arg(long)]
    pub force: bool,
}

/// The target as etcdutl reads it: exactly `X.Y`, at least 3.5.
pub fn parse_target(s: &str) -> Result<Version, MigrateError> {
    if s.matches('.').count() != 1 {
        return Err(MigrateError::Format(s.to_string()));
    }
    let v = Version::parse(s).map_err(|e| MigrateError::Parse(e.to_string()))?;
    if v < Version::minor_line(3, 5) {
        return Err(MigrateError::TooOld(s.to_string()));
    }
    Ok(v)
}

/// The highest cluster version set by an entry after the WAL's newest snapshot (etcd's
/// `MinimalEtcdVersion` of the WAL, for the entries this server writes).
fn wal_version(entries: &[raft::eraftpb::Entry]) -> Option<Version> {
    entries
        .iter()
        .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
        .filter_map(|e| InternalRaftRequest::decode(&e.data[..]).ok())
        .filter_map(|r| match r.op {
            Some(Op::ClusterVersionSet(c)) => Version::parse(&c.ver).ok().map(Version::line),
            _ => None,
        })
        .max()
}

/// Runs the migration; returns what was done (etcdutl's log message).
pub async fn migrate(disk: Arc<dyn Disk>, args: &MigrateArgs) -> Result<String, MigrateError> {
    let target = parse_target(&args.target_version)?;
    let member = Path::new(&args.data_dir).join("member");
    let db = member.join("snap").join("db");
    if !disk.exists(&db) {
        return Err(MigrateError::NoDatabase(db.display().to_string()));
    }
    let mut backend = Backend::open(disk.clone(), &db, BackendOptions::default()).await?;
    let stored = super::load_versions(&backend)?;
    let current = match stored.storage {
        Some(v) => v.line(),
        // 3.5 data has no storage version; etcd also requires confState, which this server's
        // backend does not keep, so an applied term is what marks 3.5 data here.
        None if backend.get(Bucket::Meta, meta::TERM)?.is_some() => Version::minor_line(3, 5),
        None => return Err(MigrateError::Undetectable(db.display().to_string())),
    };
    if current == target {
        return Ok(format!(
            "storage version up-to-date (storage-version {current})"
        ));
    }
    if target < current {
        let wal_dir = member.join("wal");
        if Wal::exists(&*disk, &wal_dir) {
            let (_wal, contents) = Wal::open(disk.clone(), &wal_dir, WalOptions::default()).await?;
            if let Some(wal) = wal_version(&contents.entries).filter(|w| target < *w) {
                if !args.force {
                    return Err(MigrateError::WalNewer { target, wal });
                }
                tracing::warn!(error = %MigrateError::WalNewer { target, wal }, "normal migrate failed, trying with force");
            }
        }
    }
    let message = match storage_version_for(target) {
        Some(v) => {
            backend.put(
                Bucket::Meta,
                meta::STORAGE_VERSION,
                v.to_string().as_bytes(),
            );
            format!("updated storage version (new-storage-version {v})")
        }
        None => {
            backend.delete(Bucket::Meta, meta::STORAGE_VERSION);
            format!("updated storage version (storage version cleared for {target})")
        }
    };
    backend.commit(true)?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_etcdutls() {
        assert_eq!(parse_target("3.5").ok(), Some(Version::minor_line(3, 5)));
        assert_eq!(
            parse_target("3.5.0").unwrap_err().to_string(),
            "wrong target version format, expected \"X.Y\", got \"3.5.0\""
        );
        assert_eq!(
            parse_target("3.4").unwrap_err().to_string(),
            "target version \"3.4\" not supported. Minimal \"3.5\""
        );
        assert!(parse_target("x.y")
            .unwrap_err()
            .to_string()
            .starts_with("failed to parse target version"));
    }
}
