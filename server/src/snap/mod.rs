//! Raft snapshot files, modelled on etcd's `server/etcdserver/api/snap`.
//!
//! Owns: the `%016x-%016x.snap` files (term, index) under `<data-dir>/member/snap`, each a raft
//! [`Snapshot`] (metadata + data) behind a crc32c: `[u32 LE crc32c(payload)][payload]` where
//! payload is the protobuf encoding. Saving (temp file, fdatasync, rename, directory sync),
//! loading the newest valid one (a damaged file is reported, renamed `<name>.broken` and
//! skipped, as etcd does), and purging old ones.
//!
//! Must never: touch files except through the [`Disk`] seam, touch files in the directory that
//! are not its own (the backend's `db` lives next to the snapshots), or panic on bytes read
//! from disk.

#[cfg(test)]
mod tests;

use crate::seam::disk::write_file_atomic;
use crate::seam::{Disk, OpenMode};
use crate::wal::WalSnapshot;
use protobuf::Message;
use raft::eraftpb::Snapshot;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An error from the snapshot store. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    /// An I/O operation failed.
    #[error("snap: {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A snapshot file is damaged or does not match its name.
    #[error("snap: corrupt snapshot file {}: {reason}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot could not be encoded.
    #[error("snap: encoding snapshot for {}: {reason}", file.display())]
    Encode {
        /// The file it was meant for.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The file name of a snapshot with this term and index.
pub fn snap_name(term: u64, index: u64) -> String {
    crate::fileutil::hex_pair_name(term, index, "snap")
}

/// Parses a snapshot file name into (term, index).
pub fn parse_snap_name(name: &str) -> Option<(u64, u64)> {
    crate::fileutil::parse_hex_pair_name(name, "snap")
}

/// Encodes a snapshot file's bytes.
fn encode(snap: &Snapshot) -> Result<Vec<u8>, String> {
    let payload = snap.write_to_bytes().map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and checks a snapshot file's bytes against the (term, index) in its name.
fn decode(buf: &[u8], term: u64, index: u64) -> Result<Snapshot, String> {
    let (crc, payload) = match buf.split_first_chunk::<4>() {
        Some((c, p)) => (u32::from_le_bytes(*c), p),
        None => return Err(format!("file is {} bytes, too short", buf.len())),
    };
    let got = crc32c::crc32c(payload);
    if got != crc {
        return Err(format!(
            "crc mismatch: stored {crc:#010x}, computed {got:#010x}"
        ));
    }
    let snap = Snapshot::parse_from_bytes(payload).map_err(|e| format!("undecodable: {e}"))?;
    let m = snap.get_metadata();
    if (m.term, m.index) != (term, index) {
        return Err(format!(
            "holds term {} index {}, but its name says term {term} index {index}",
            m.term, m.index
        ));
    }
    Ok(snap)
}

/// Saves and loads raft snapshots in one directory.
#[derive(Clone, Debug)]
pub struct Snapshotter {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
}

impl Snapshotter {
    /// A snapshotter over `dir`. Removes temp files a crash during `save` left behind (best
    /// effort: failures are logged).
    pub fn new(disk: Arc<dyn Disk>, dir: &Path) -> Snapshotter {
        if let Ok(names) = disk.list(dir) {
            for n in names.iter().filter(|n| is_snap_tmp(n)) {
                let p = dir.join(n);
                match disk.remove_file(&p) {
                    Ok(()) => tracing::info!(path = %p.display(), "snap: removed temp file"),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "snap: cannot remove temp file")
                    }
                }
            }
        }
        Snapshotter {
            disk,
            dir: dir.into(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves a snapshot durably: temp file, fdatasync, rename, directory sync. An empty
    /// snapshot (index 0) is not saved, as in etcd.
    pub async fn save(&self, snap: &Snapshot) -> Result<(), SnapError> {
        let m = snap.get_metadata();
        if m.index == 0 {
            return Ok(());
        }
        let path = self.dir.join(snap_name(m.term, m.index));
        let bytes = encode(snap).map_err(|reason| SnapError::Encode {
            file: path.clone(),
            reason,
        })?;
        if !self.disk.exists(&self.dir) {
            self.disk
                .create_dir_all(&self.dir)
                .map_err(|e| SnapError::Io {
                    op: "create dir",
                    path: self.dir.clone(),
                    source: e,
                })?;
        }
        write_file_atomic(&*self.disk, &path, &bytes)
            .await
            .map_err(|e| SnapError::Io {
                op: "save",
                path: path.clone(),
                source: e,
            })?;
        tracing::debug!(path = %path.display(), bytes = bytes.len(), "snap: saved snapshot");
        Ok(())
    }

    /// Snapshot files as (term, index, name), newest (highest index) first.
    fn names(&self) -> Result<Vec<(u64, u64, String)>, SnapError> {
        let names = match self.disk.list(&self.dir) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SnapError::Io {
                    op: "list",
                    path: self.dir.clone(),
                    source: e,
                })
            }
        };
        let mut out: Vec<(u64, u64, String)> = names
            .into_iter()
            .filter_map(|n| parse_snap_name(&n).map(|(t, i)| (t, i, n)))
            .collect();
        out.sort_by_key(|&(term, index, _)| std::cmp::Reverse((index, term)));
        Ok(out)
    }

    /// Reads and checks one snapshot file.
    pub fn load_file(&self, name: &str) -> Result<Snapshot, SnapError> {
        let path = self.dir.join(name);
        let (term, index) = parse_snap_name(name).ok_or_else(|| SnapError::Corrupt {
            file: path.clone(),
            reason: "not a snapshot file name".into(),
        })?;
        let buf = self
            .disk
            .open(&path, OpenMode::Existing)
            .and_then(|f| f.read_all())
            .map_err(|e| SnapError::Io {
                op: "read",
                path: path.clone(),
                source: e,
            })?;
        decode(&buf, term, index).map_err(|reason| SnapError::Corrupt { file: path, reason })
    }

    /// The newest valid snapshot, or `None` if there is none. A damaged file is logged,
    /// renamed `<name>.broken` and skipped; an unreadable one (I/O error) is logged and
    /// skipped. Either way the previous valid snapshot is returned, as etcd does.
    pub fn load_newest(&self) -> Result<Option<Snapshot>, SnapError> {
        self.load_matching(|_, _| true)
    }

    /// Like [`Snapshotter::load_newest`], but only snapshots that have a marker in the WAL
    /// (etcd's `LoadNewestAvailable`), so that the WAL holds the entries that follow.
    pub fn load_newest_available(
        &self,
        markers: &[WalSnapshot],
    ) -> Result<Option<Snapshot>, SnapError> {
        self.load_matching(|term, index| markers.iter().any(|m| m.term == term && m.index == index))
    }

    fn load_matching(
        &self,
        keep: impl Fn(u64, u64) -> bool,
    ) -> Result<Option<Snapshot>, SnapError> {
        for (term, index, name) in self.names()? {
            if !keep(term, index) {
                continue;
            }
            match self.load_file(&name) {
                Ok(s) => return Ok(Some(s)),
                Err(e @ SnapError::Corrupt { .. }) => {
                    let from = self.dir.join(&name);
                    let to = self.dir.join(format!("{name}.broken"));
                    tracing::warn!(error = %e, renamed_to = %to.display(), "snap: skipping damaged snapshot file");
                    if let Err(re) = self.disk.rename(&from, &to) {
                        tracing::warn!(path = %from.display(), error = %re, "snap: cannot rename damaged snapshot file");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "snap: skipping unreadable snapshot file");
                }
            }
        }
        Ok(None)
    }

    /// Removes all but the newest `keep` snapshot files; returns how many it removed. Other
    /// files in the directory (the backend, `.broken` files) are left alone. The removals are
    /// not directory-synced: losing one in a crash only leaves an old snapshot behind.
    pub fn purge(&self, keep: usize) -> Result<usize, SnapError> {
        let mut removed = 0;
        for (_, _, name) in self.names()?.into_iter().skip(keep) {
            let path = self.dir.join(&name);
            self.disk.remove_file(&path).map_err(|e| SnapError::Io {
                op: "remove",
                path: path.clone(),
                source: e,
            })?;
            tracing::debug!(path = %path.display(), "snap: purged snapshot file");
            removed += 1;
        }
        Ok(removed)
    }
}

/// A temp file `write_file_atomic` leaves behind for a snapshot: `%016x-%016x.tmp`.
fn is_snap_tmp(name: &str) -> bool {
    name.strip_suffix(".tmp")
        .is_some_and(|stem| parse_snap_name(&format!("{stem}.snap")).is_some())
}
