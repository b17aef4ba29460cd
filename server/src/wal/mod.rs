//! The raft write-ahead log, modelled on etcd's `server/storage/wal`.
//!
//! Owns: the segment files under `<data-dir>/member/wal` (`%016x-%016x.wal`, sequence and first
//! raft index), their record framing (see [`record`]), appending HardState/entries/snapshot
//! markers with fdatasync, cutting segments, replay on open (conflicting entries truncate, a
//! torn tail of the last segment is cut off, corruption anywhere else is an error naming the
//! file and byte offset), releasing old segments, and timing every fdatasync.
//!
//! Must never: touch files except through the [`Disk`] seam, read the wall clock (only
//! `tokio::time`), panic on bytes read from disk, or keep going after a failed write or
//! fdatasync (the state on disk is then unknown; every later call returns
//! [`WalError::Failed`], and the caller should stop as etcd does).
//!
//! Layout of a segment: a `Metadata` record at offset 0, then (when known) the newest snapshot
//! marker and the last HardState, so that each segment is self-describing after older ones are
//! released; then `Entry`/`State`/`Snapshot` records in the order they were saved. New segments
//! are written as `<name>.tmp`, fdatasynced, renamed and the directory synced, so a segment
//! either exists with its header or not at all.

mod error;
pub mod record;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sync;

pub use error::WalError;

use crate::seam::{Disk, DiskFile, OpenMode};
use protobuf::Message;
use raft::eraftpb::{Entry, HardState};
use record::{RecordType, Tail};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// An fdatasync slower than this is logged as `slow fdatasync`, as etcd does.
pub const SLOW_FDATASYNC: Duration = Duration::from_secs(1);

/// Default segment size limit: 64 MiB, as etcd's `SegmentSizeBytes`.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// WAL tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is cut once the current one reaches this many bytes.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// A snapshot marker, as etcd's `walpb.Snapshot`: raft entries up to `index` are in a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalSnapshot {
    /// Index of the last entry in the snapshot.
    pub index: u64,
    /// Its term.
    pub term: u64,
}

/// What a replay found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WalContents {
    /// The metadata given at create.
    pub metadata: Vec<u8>,
    /// The last HardState saved (default if none).
    pub hard_state: HardState,
    /// Entries after `snapshot` (all entries if `None`), in index order, conflicts resolved.
    pub entries: Vec<Entry>,
    /// The snapshot marker the entries follow: the newest in the WAL for [`Wal::open`], the
    /// requested one for [`Wal::open_at`].
    pub snapshot: Option<WalSnapshot>,
    /// Every snapshot marker still in the WAL, oldest first (for
    /// `Snapshotter::load_newest_available`).
    pub snapshots: Vec<WalSnapshot>,
}

/// fdatasync timings of one WAL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsyncStats {
    /// Number of fdatasyncs of WAL segment files.
    pub count: u64,
    /// Their total duration.
    pub total: Duration,
    /// The slowest.
    pub max: Duration,
    /// The most recent.
    pub last: Option<Duration>,
    /// How many took longer than [`SLOW_FDATASYNC`].
    pub slow: u64,
}

type FsyncObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// Times fdatasyncs, keeps [`FsyncStats`] and calls the observer (a metrics histogram).
#[derive(Default)]
struct SyncTimer {
    stats: FsyncStats,
    observer: Option<FsyncObserver>,
}

impl SyncTimer {
    async fn sync(&mut self, file: &dyn DiskFile, path: &Path) -> Result<(), WalError> {
        let start = Instant::now();
        let res = file.sync_data().await;
        let took = start.elapsed();
        let s = &mut self.stats;
        s.count += 1;
        s.total += took;
        s.max = s.max.max(took);
        s.last = Some(took);
        if took > SLOW_FDATASYNC {
            s.slow += 1;
            tracing::warn!(
                took = ?took,
                "expected-duration" = ?SLOW_FDATASYNC,
                path = %path.display(),
                "slow fdatasync"
            );
        }
        if let Some(obs) = &self.observer {
            obs(took);
        }
        res.map_err(|e| WalError::io("fdatasync", path, e))
    }
}

#[derive(Clone, Debug)]
struct Segment {
    seq: u64,
    first_index: u64,
    path: PathBuf,
    len: u64,
}

/// The segment file name for a sequence number and first raft index.
pub fn segment_name(seq: u64, first_index: u64) -> String {
    crate::fileutil::hex_pair_name(seq, first_index, "wal")
}

/// Parses a segment file name into (sequence, first index).
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    crate::fileutil::parse_hex_pair_name(name, "wal")
}

fn is_empty_hard_state(hs: &HardState) -> bool {
    hs.term == 0 && hs.vote == 0 && hs.commit == 0
}

fn encode_msg(
    out: &mut Vec<u8>,
    rtype: RecordType,
    what: &'static str,
    m: &dyn Message,
) -> Result<(), WalError> {
    let bytes = m.write_to_bytes().map_err(|e| WalError::Encode {
        what,
        reason: e.to_string(),
    })?;
    record::encode(out, rtype, &bytes).map_err(|reason| WalError::Encode { what, reason })
}

fn encode_snapshot(out: &mut Vec<u8>, s: WalSnapshot) -> Result<(), WalError> {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&s.index.to_le_bytes());
    p[8..].copy_from_slice(&s.term.to_le_bytes());
    record::encode(out, RecordType::Snapshot, &p).map_err(|reason| WalError::Encode {
        what: "snapshot marker",
        reason,
    })
}

fn decode_snapshot(p: &[u8]) -> Option<WalSnapshot> {
    let index = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let term = u64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    (p.len() == 16).then_some(WalSnapshot { index, term })
}

/// A decoded record and where it came from.
enum Item {
    Entry(Entry, usize, u64),
    State(HardState),
    Snapshot(WalSnapshot),
}

/// An open write-ahead log, appending to its last segment.
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    opts: WalOptions,
    metadata: Vec<u8>,
    /// Oldest first; the last is the one being appended to.
    segments: Vec<Segment>,
    file: Arc<dyn DiskFile>,
    /// Write offset in the current segment.
    offset: u64,
    /// Index of the last entry (or snapshot marker) written, as etcd's `enti`.
    last_index: u64,
    state: HardState,
    snapshot: Option<WalSnapshot>,
    timer: SyncTimer,
    /// Bytes were written to the current segment since its last fdatasync.
    unsynced: bool,
    failed: Option<String>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .field("offset", &self.offset)
            .field("last_index", &self.last_index)
            .field("snapshot", &self.snapshot)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Writes a new segment durably: `<name>.tmp`, header records, fdatasync, rename, dir sync.
async fn write_segment(
    disk: &dyn Disk,
    dir: &Path,
    seq: u64,
    first_index: u64,
    header: &[u8],
    timer: &mut SyncTimer,
) -> Result<(Arc<dyn DiskFile>, Segment), WalError> {
    let name = segment_name(seq, first_index);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    if disk.exists(&tmp) {
        disk.remove_file(&tmp)
            .map_err(|e| WalError::io("remove", &tmp, e))?;
    }
    let f = disk
        .open(&tmp, OpenMode::CreateNew)
        .map_err(|e| WalError::io("create", &tmp, e))?;
    f.write_at(0, header)
        .map_err(|e| WalError::io("write", &tmp, e))?;
    timer.sync(&*f, &tmp).await?;
    drop(f);
    disk.rename(&tmp, &path)
        .map_err(|e| WalError::io("rename", &tmp, e))?;
    disk.sync_dir(dir)
        .await
        .map_err(|e| WalError::io("sync dir", dir, e))?;
    let f = disk
        .open(&path, OpenMode::Existing)
        .map_err(|e| WalError::io("open", &path, e))?;
    let seg = Segment {
        seq,
        first_index,
        path,
        len: header.len() as u64,
    };
    Ok((f, seg))
}

/// Removes leftover `.wal.tmp` files of an interrupted segment creation.
async fn remove_tmp_files(disk: &dyn Disk, dir: &Path, names: &[String]) -> Result<(), WalError> {
    let mut removed = false;
    for n in names.iter().filter(|n| n.ends_with(".wal.tmp")) {
        let p = dir.join(n);
        tracing::warn!(path = %p.display(), "wal: removing incomplete segment file");
        disk.remove_file(&p)
            .map_err(|e| WalError::io("remove", &p, e))?;
        removed = true;
    }
    if removed {
        disk.sync_dir(dir)
            .await
            .map_err(|e| WalError::io("sync dir", dir, e))?;
    }
    Ok(())
}

impl Wal {
    /// Whether `dir` holds at least one WAL segment file.
    pub fn exists(disk: &dyn Disk, dir: &Path) -> bool {
        disk.list(dir)
            .map(|names| names.iter().any(|n| parse_segment_name(n).is_some()))
            .unwrap_or(false)
    }

    /// Creates a new WAL in `dir` (created if missing) whose segments carry `metadata`.
    pub async fn create(
        disk: Arc<dyn Disk>,
        dir: &Path,
        metadata: &[u8],
        opts: WalOptions,
    ) -> Result<Wal, WalError> {
        if Self::exists(&*disk, dir) {
            return Err(WalError::AlreadyExists { dir: dir.into() });
        }
        let new_dir = !disk.exists(dir);
        disk.create_dir_all(dir)
            .map_err(|e| WalError::io("create dir", dir, e))?;
        if new_dir {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent)
                    .await
                    .map_err(|e| WalError::io("sync dir", parent, e))?;
            }
        }
        let names = disk.list(dir).map_err(|e| WalError::io("list", dir, e))?;
        remove_tmp_files(&*disk, dir, &names).await?;
        let mut header = Vec::new();
        record::encode(&mut header, RecordType::Metadata, metadata).map_err(|reason| {
            WalError::Encode {
                what: "metadata",
                reason,
            }
        })?;
        let mut timer = SyncTimer::default();
        let (file, seg) = write_segment(&*disk, dir, 0, 0, &header, &mut timer).await?;
        Ok(Wal {
            disk,
            dir: dir.into(),
            opts,
            metadata: metadata.to_vec(),
            offset: seg.len,
            segments: vec![seg],
            file,
            last_index: 0,
            state: HardState::default(),
            snapshot: None,
            timer,
            unsynced: false,
            failed: None,
        })
    }

    /// Opens and replays: entries after the newest snapshot marker, the last HardState.
    /// A torn last record of the last segment is truncated away (and the truncation synced).
    pub async fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        opts: WalOptions,
    ) -> Result<(Wal, WalContents), WalError> {
        Self::open_inner(disk, dir, opts, None).await
    }

    /// Like [`Wal::open`], but returns the entries after the given snapshot marker (all
    /// entries when `start.index == 0`), as etcd's `wal.Open(dir, snap)` + `ReadAll`. The
    /// marker must be in the WAL ([`WalError::SnapshotNotFound`] / `SnapshotMismatch`). Use
    /// it when the newest snapshot file is unusable and an older one is loaded instead.
    pub async fn open_at(
        disk: Arc<dyn Disk>,
        dir: &Path,
        opts: WalOptions,
        start: WalSnapshot,
    ) -> Result<(Wal, WalContents), WalError> {
        Self::open_inner(disk, dir, opts, Some(start)).await
    }

    fn check_ok(&self) -> Result<(), WalError> {
        match &self.failed {
            Some(reason) => Err(WalError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Marks the WAL unusable after a failed write or fdatasync and passes the error on.
    fn fail(&mut self, e: WalError) -> WalError {
        self.failed = Some(e.to_string());
        e
    }

    fn current_path(&self) -> PathBuf {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    async fn write(&mut self, buf: &[u8]) -> Result<(), WalError> {
        if let Err(e) = self.file.write_at(self.offset, buf) {
            let err = WalError::io("write", self.current_path(), e);
            return Err(self.fail(err));
        }
        self.offset += buf.len() as u64;
        self.unsynced = true;
        if let Some(s) = self.segments.last_mut() {
            s.len = self.offset;
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), WalError> {
        let path = self.current_path();
        let file = self.file.clone();
        match self.timer.sync(&*file, &path).await {
            Ok(()) => {
                self.unsynced = false;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Appends HardState (if not empty/None) and entries; fdatasync when must_sync.
    /// Cuts a new segment (fdatasyncing the current one) when the segment size is reached.
    /// Any error here leaves the WAL unusable ([`WalError::Failed`]): treat it as fatal.
    pub async fn save(
        &mut self,
        hs: Option<&HardState>,
        entries: &[Entry],
        must_sync: bool,
    ) -> Result<(), WalError> {
        self.check_ok()?;
        let hs = hs.filter(|h| !is_empty_hard_state(h));
        if hs.is_none() && entries.is_empty() {
            if must_sync && self.unsynced {
                self.sync().await?;
            }
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            encode_msg(&mut buf, RecordType::Entry, "entry", e)?;
        }
        if let Some(h) = hs {
            encode_msg(&mut buf, RecordType::State, "hard state", h)?;
        }
        self.write(&buf).await?;
        if let Some(e) = entries.last() {
            self.last_index = e.index;
        }
        if let Some(h) = hs {
            self.state = h.clone();
        }
        if self.offset < self.opts.segment_size {
            if must_sync {
                self.sync().await?;
            }
            return Ok(());
        }
        self.cut().await
    }

    /// Records a snapshot marker (fsynced), as etcd's SaveSnapshot.
    pub async fn save_snapshot(&mut self, snap: WalSnapshot) -> Result<(), WalError> {
        self.check_ok()?;
        let mut buf = Vec::new();
        encode_snapshot(&mut buf, snap)?;
        self.write(&buf).await?;
        self.last_index = self.last_index.max(snap.index);
        if self.snapshot.is_none_or(|s| snap.index >= s.index) {
            self.snapshot = Some(snap);
        }
        self.sync().await
    }

    /// The header records of a new segment: metadata, newest snapshot marker, last HardState.
    fn segment_header(&self) -> Result<Vec<u8>, WalError> {
        let mut h = Vec::new();
        record::encode(&mut h, RecordType::Metadata, &self.metadata).map_err(|reason| {
            WalError::Encode {
                what: "metadata",
                reason,
            }
        })?;
        if let Some(s) = self.snapshot {
            encode_snapshot(&mut h, s)?;
        }
        if !is_empty_hard_state(&self.state) {
            encode_msg(&mut h, RecordType::State, "hard state", &self.state)?;
        }
        Ok(h)
    }

    /// fdatasyncs the current segment and starts the next one, named after the next index.
    async fn cut(&mut self) -> Result<(), WalError> {
        self.sync().await?;
        let header = self.segment_header()?;
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let first = self.last_index + 1;
        let disk = self.disk.clone();
        let res = write_segment(&*disk, &self.dir, seq, first, &header, &mut self.timer).await;
        match res {
            Ok((file, seg)) => {
                tracing::debug!(path = %seg.path.display(), "wal: created segment");
                self.unsynced = false;
                self.offset = seg.len;
                self.file = file;
                self.segments.push(seg);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Deletes whole segments that only hold entries below `index` (etcd's ReleaseLockTo +
    /// purge), keeping the segment that contains index. As etcd, it keeps every segment from
    /// the last one whose first index is below `index`, and never the current one. `index` is
    /// clamped to the newest snapshot marker saved, so replay always finds what follows it.
    pub async fn release_to(&mut self, index: u64) -> Result<(), WalError> {
        self.check_ok()?;
        let index = index.min(self.snapshot.map_or(0, |s| s.index));
        let Some(keep_from) = self.segments.iter().rposition(|s| s.first_index < index) else {
            return Ok(());
        };
        let keep_from = keep_from.min(self.segments.len() - 1);
        if keep_from == 0 {
            return Ok(());
        }
        let mut removed = 0;
        let mut result = Ok(());
        for s in &self.segments[..keep_from] {
            if let Err(e) = self.disk.remove_file(&s.path) {
                result = Err(WalError::io("remove", &s.path, e));
                break;
            }
            tracing::debug!(path = %s.path.display(), "wal: released segment");
            removed += 1;
        }
        self.segments.drain(..removed);
        result?;
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(|e| WalError::io("sync dir", &self.dir, e))
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Total bytes in the segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Index of the last entry (or snapshot marker) written.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// fdatasync timings so far.
    pub fn fsync_stats(&self) -> &FsyncStats {
        &self.timer.stats
    }

    /// Calls `f` with the duration of every fdatasync from now on (for the
    /// `etcd_disk_wal_fsync_duration_seconds` histogram).
    pub fn set_fsync_observer(&mut self, f: impl Fn(Duration) + Send + Sync + 'static) {
        self.timer.observer = Some(Box::new(f));
    }
}
