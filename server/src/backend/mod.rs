//! The backend: etcd's bbolt database, here redb running on the seam's disk
//! (`<data-dir>/member/snap/db`), like etcd's `server/storage/backend`.
//!
//! Owns: the database file, etcd's buckets as redb tables ([`Bucket`]), the batch transaction
//! (applied writes are buffered and committed durably every `--backend-batch-interval` or
//! `--backend-batch-limit` ops, with the consistent index and term in `meta` in the same redb
//! transaction), and the read buffer (every read merges the uncommitted batch over the last
//! durable commit, so reads see applied-but-uncommitted writes). A crash loses the uncommitted
//! batch and nothing else; the WAL replays the entries after the surviving consistent index.
//! With an offload (real mode) the periodic batch commit runs on another thread, as etcd's
//! backend goroutine does: the raft loop goes on applying into a new batch, and reads see the
//! new batch, then the one being written, then the database.
//!
//! Must never: touch the host file system (all I/O goes through [`crate::seam::Disk`]), read a
//! clock other than `tokio::time`, commit part of a batch without its consistent index, or
//! panic on a damaged file (corruption is a [`BackendError::Corrupt`] naming the file).

mod batch;
mod buckets;
mod error;
mod reader;
mod snapshot;
mod storage;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_offload;

pub use buckets::{cluster, meta, Bucket};
pub use error::BackendError;
pub use reader::BucketReader;

use crate::seam::{Disk, DiskFile, Offload, OpenMode};
use batch::{write_batch, InFlight};
use redb::ReadableDatabase;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storage::DiskStorage;

/// Tunables of the backend, named after etcd's flags.
#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// `--backend-batch-interval`: longest time applied writes stay uncommitted (etcd: 100 ms).
    pub batch_interval: Duration,
    /// `--backend-batch-limit`: most buffered ops before a commit is due (etcd: 10000).
    pub batch_limit: u64,
    /// redb page cache size in bytes.
    pub cache_size_bytes: usize,
    /// Verify every page checksum when opening (reads the whole file once; turns silent
    /// corruption into an error at open instead of a redb panic later). Default on.
    pub verify_on_open: bool,
    /// Save redb's allocator state with each commit (2-phase commit, like bbolt's two fsyncs),
    /// so that reopening after a crash needs no full repair.
    pub quick_repair: bool,
    /// The `defrag-commit-without-consistent-index` test defect (etcd 14685): defragmentation
    /// commits the batch without the consistent index.
    pub defrag_skips_consistent_index: bool,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            batch_interval: Duration::from_millis(100),
            batch_limit: 10_000,
            cache_size_bytes: 64 * 1024 * 1024,
            verify_on_open: true,
            quick_repair: true,
            defrag_skips_consistent_index: false,
        }
    }
}

/// Where etcd keeps the backend inside a data dir: `<data-dir>/member/snap/db`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

/// Uncommitted writes of one bucket: `Some(value)` = put, `None` = delete.
type Buffer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The open backend database.
pub struct Backend {
    path: PathBuf,
    file: Arc<dyn DiskFile>,
    db: Arc<redb::Database>,
    /// Where batch commits run (`None`: inline).
    offload: Option<Arc<dyn Offload>>,
    /// The batch being committed on the offload thread.
    in_flight: Option<InFlight>,
    opts: BackendOptions,
    buffer: BTreeMap<Bucket, Buffer>,
    pending_ops: u64,
    applied: (u64, u64),
    durable: (u64, u64),
    index_dirty: bool,
    last_commit: tokio::time::Instant,
    commits: u64,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("path", &self.path)
            .field("pending_ops", &self.pending_ops)
            .field("applied", &self.applied)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Opens (or creates) the database file at `path` (see [`db_path`]), creating missing
    /// parent directories and making new directory entries durable.
    pub async fn open(
        disk: Arc<dyn Disk>,
        path: &Path,
        opts: BackendOptions,
    ) -> Result<Backend, BackendError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut missing = Vec::new();
        let mut cursor = Some(dir.as_path());
        while let Some(d) = cursor {
            if d.as_os_str().is_empty() || disk.exists(d) {
                break;
            }
            missing.push(d.to_path_buf());
            cursor = d.parent();
        }
        disk.create_dir_all(&dir)
            .map_err(|e| BackendError::io(path, "create directory", e))?;
        let existed = disk.exists(path);
        let file = disk
            .open(path, OpenMode::CreateOrOpen)
            .map_err(|e| BackendError::io(path, "open", e))?;
        if !existed {
            disk.sync_dir(&dir)
                .await
                .map_err(|e| BackendError::io(path, "sync directory", e))?;
        }
        for d in &missing {
            if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent)
                    .await
                    .map_err(|e| BackendError::io(path, "sync directory", e))?;
            }
        }

        let storage = DiskStorage::new(file.clone(), path.to_path_buf())
            .map_err(|e| BackendError::io(path, "read", e))?;
        let mut builder = redb::Builder::new();
        builder
            .set_cache_size(opts.cache_size_bytes)
            .set_check_integrity_on_open(opts.verify_on_open);
        // redb may panic on some impossible on-disk states; a damaged file must be an error.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            builder.create_with_backend(storage)
        }));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(BackendError::from_redb(path, "open", e)),
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "redb panicked while opening".into());
                return Err(BackendError::Corrupt {
                    path: path.to_path_buf(),
                    op: "open",
                    detail,
                });
            }
        };

        let mut backend = Backend {
            path: path.to_path_buf(),
            file,
            db: Arc::new(db),
            offload: None,
            in_flight: None,
            opts,
            buffer: BTreeMap::new(),
            pending_ops: 0,
            applied: (0, 0),
            durable: (0, 0),
            index_dirty: false,
            last_commit: tokio::time::Instant::now(),
            commits: 0,
        };
        backend.create_missing_tables()?;
        if !existed {
            // redb lays a new file out with ~1 MiB of regions; shrink it to what it holds, so a
            // new member's db size (and the --quota-backend-bytes check) starts near bbolt's
            // ~20 KiB rather than at 1 MiB.
            backend.defragment()?;
        }
        let index = backend.read_u64(Bucket::Meta, meta::CONSISTENT_INDEX)?;
        let term = backend.read_u64(Bucket::Meta, meta::TERM)?;
        backend.applied = (index.unwrap_or(0), term.unwrap_or(0));
        backend.durable = backend.applied;
        backend.last_commit = tokio::time::Instant::now();
        Ok(backend)
    }

    fn create_missing_tables(&mut self) -> Result<(), BackendError> {
        let rtx = self.begin_read()?;
        let mut missing = false;
        for b in Bucket::ALL {
            match rtx.open_table(b.table()) {
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => missing = true,
                Err(e) => return Err(BackendError::from_redb(&self.path, "open table", e)),
            }
        }
        drop(rtx);
        if !missing {
            return Ok(());
        }
        let mut wtx = self.begin_write()?;
        for b in Bucket::ALL {
            wtx.open_table(b.table())
                .map_err(|e| BackendError::from_redb(&self.path, "create table", e))?;
        }
        wtx.set_quick_repair(self.opts.quick_repair);
        wtx.commit()
            .map_err(|e| BackendError::from_redb(&self.path, "commit", e))
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, BackendError> {
        self.db
            .begin_read()
            .map_err(|e| BackendError::from_redb(&self.path, "begin read", e))
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, BackendError> {
        self.db
            .begin_write()
            .map_err(|e| BackendError::from_redb(&self.path, "begin write", e))
    }

    fn read_u64(&self, bucket: Bucket, key: &[u8]) -> Result<Option<u64>, BackendError> {
        match self.get(bucket, key)? {
            None => Ok(None),
            Some(v) => Ok(Some(be_u64(&v).ok_or_else(|| BackendError::Corrupt {
                path: self.path.clone(),
                op: "read meta",
                detail: format!(
                    "meta key {:?} has {} bytes, want 8",
                    String::from_utf8_lossy(key),
                    v.len()
                ),
            })?)),
        }
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader of one bucket over a consistent view: the last commit plus the current batch.
    pub fn reader(&self, bucket: Bucket) -> Result<BucketReader<'_>, BackendError> {
        let rtx = self.begin_read()?;
        let table = rtx
            .open_table(bucket.table())
            .map_err(|e| BackendError::from_redb(&self.path, "open table", e))?;
        Ok(BucketReader::new(
            &self.path,
            self.buffer.get(&bucket),
            self.in_flight.as_ref().and_then(|f| f.batch.get(&bucket)),
            table,
        ))
    }

    /// Reads one key (batch first, then the database).
    pub fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if let Some(v) = self.buffer.get(&bucket).and_then(|b| b.get(key)) {
            return Ok(v.clone());
        }
        self.reader(bucket)?.get(key)
    }

    /// Calls `f` on every entry of `bucket` with `start <= key < end` (`end == None`: no upper
    /// bound), in key order, until `f` returns false.
    pub fn for_each(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        self.reader(bucket)?.for_each(start, end, f)
    }

    /// Buffers a put into the batch (visible to reads at once, durable at the next commit).
    pub fn put(&mut self, bucket: Bucket, key: &[u8], value: &[u8]) {
        self.buffer
            .entry(bucket)
            .or_default()
            .insert(key.to_vec(), Some(value.to_vec()));
        self.pending_ops += 1;
    }

    /// Buffers a delete into the batch.
    pub fn delete(&mut self, bucket: Bucket, key: &[u8]) {
        self.buffer
            .entry(bucket)
            .or_default()
            .insert(key.to_vec(), None);
        self.pending_ops += 1;
    }

    /// Records the last applied raft entry; it is written to `meta` in the same redb
    /// transaction as the batch it belongs to.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) {
        if (index, term) != self.applied {
            self.applied = (index, term);
            self.index_dirty = true;
        }
    }

    /// `(index, term)` of the last applied raft entry (possibly not yet durable).
    pub fn consistent_index(&self) -> (u64, u64) {
        self.applied
    }

    /// `(index, term)` covered by the last durable commit: what a crash now would keep.
    pub fn durable_consistent_index(&self) -> (u64, u64) {
        self.durable
    }

    /// Whether the last durable commit covers raft entry `index`.
    pub fn is_durable(&self, index: u64) -> bool {
        self.durable.0 >= index
    }

    /// Ops buffered since the last durable commit.
    pub fn pending_ops(&self) -> u64 {
        self.pending_ops
    }

    /// Durable commits made since open.
    pub fn commit_count(&self) -> u64 {
        self.commits
    }

    /// Whether a commit is due: batch limit reached or batch interval elapsed (by
    /// `tokio::time`, which the simulator controls).
    pub fn commit_due(&self) -> bool {
        self.pending_ops >= self.opts.batch_limit
            || tokio::time::Instant::now().saturating_duration_since(self.last_commit)
                >= self.opts.batch_interval
    }

    /// Commits the batch durably (redb `Durability::Immediate`, fsync) together with the
    /// consistent index and term, if `force` or [`Self::commit_due`] and there is anything to
    /// commit. Returns whether a commit happened. An error is fatal for the member (etcd panics):
    /// the batch stays buffered, but redb may refuse further commits.
    pub fn commit(&mut self, force: bool) -> Result<bool, BackendError> {
        self.finish_in_flight(true)?;
        if !self.should_commit(force) {
            return Ok(false);
        }
        self.write_buffer(self.applied)?;
        self.durable = self.applied;
        Ok(true)
    }

    /// Writes the buffered batch durably, labelled with consistent index and term `label`,
    /// and starts a new batch.
    fn write_buffer(&mut self, label: (u64, u64)) -> Result<(), BackendError> {
        write_batch(
            &self.db,
            &self.path,
            &self.buffer,
            label,
            self.opts.quick_repair,
        )?;
        self.buffer.clear();
        self.batch_taken();
        self.commits += 1;
        Ok(())
    }

    /// etcd 14685's defect: before 3.5.6 defrag committed the pending writes with
    /// `unsafeCommit`, which skipped the hook that writes the consistent index. The batch goes
    /// to disk labelled with the last durable index; the next regular commit (a batch interval
    /// later) writes the right one. A crash in between makes the member replay, on restart,
    /// entries whose writes it already holds.
    fn commit_without_consistent_index(&mut self) -> Result<(), BackendError> {
        self.finish_in_flight(true)?;
        if self.pending_ops == 0 {
            return Ok(());
        }
        self.write_buffer(self.durable)?;
        self.index_dirty = true;
        Ok(())
    }

    /// The periodic batch commit (`force`: the batch interval ticked; else only if due). With
    /// an offload it starts writing the batch on the offload thread and returns at once (a
    /// batch still being written defers this one); without, it is [`Self::commit`].
    pub fn commit_batch(&mut self, force: bool) -> Result<bool, BackendError> {
        let Some(offload) = self.offload.clone() else {
            return self.commit(force);
        };
        self.finish_in_flight(false)?;
        if self.in_flight.is_some() || !self.should_commit(force) {
            return Ok(false);
        }
        let batch = std::mem::take(&mut self.buffer);
        self.in_flight = Some(InFlight::start(
            offload.as_ref(),
            self.db.clone(),
            &self.path,
            batch,
            self.applied,
            self.opts.quick_repair,
        ));
        self.batch_taken();
        Ok(true)
    }

    /// Whether to commit now: there is something to commit, and `force` or it is due. With
    /// nothing to commit, the batch interval restarts.
    fn should_commit(&mut self, force: bool) -> bool {
        if self.pending_ops == 0 && !self.index_dirty {
            self.last_commit = tokio::time::Instant::now();
            return false;
        }
        force || self.commit_due()
    }

    /// The current batch has gone to be written: a new one starts.
    fn batch_taken(&mut self) {
        self.pending_ops = 0;
        self.index_dirty = false;
        self.last_commit = tokio::time::Instant::now();
    }

    /// Runs batch commits on `offload` from now on.
    pub fn set_offload(&mut self, offload: Option<Arc<dyn Offload>>) {
        self.offload = offload;
    }

    /// Learns the outcome of the batch being written, if it has finished (`wait`: waits).
    fn finish_in_flight(&mut self, wait: bool) -> Result<(), BackendError> {
        let Some(outcome) = self.in_flight.as_ref().and_then(|f| f.outcome(wait)) else {
            return Ok(());
        };
        let done = self.in_flight.take();
        outcome?;
        if let Some(f) = done {
            // New writes since it started are counted in `pending_ops`/`index_dirty` already.
            self.durable = f.applied;
            self.commits += 1;
        }
        Ok(())
    }

    /// Size of the database file in bytes (etcd's `dbSize`).
    pub fn size_bytes(&self) -> Result<u64, BackendError> {
        self.file
            .len()
            .map_err(|e| BackendError::io(&self.path, "stat", e))
    }

    /// Bytes of the file in use by the last commit (etcd's `dbSizeInUse`).
    pub fn size_in_use_bytes(&self) -> Result<u64, BackendError> {
        let wtx = self.begin_write()?;
        let stats = wtx
            .stats()
            .map_err(|e| BackendError::from_redb(&self.path, "stats", e))?;
        let used = stats.allocated_pages() * stats.page_size() as u64;
        wtx.abort()
            .map_err(|e| BackendError::from_redb(&self.path, "abort", e))?;
        Ok(used)
    }

    /// Commits, then compacts the file (etcd's defragment).
    pub fn defragment(&mut self) -> Result<(), BackendError> {
        if self.opts.defrag_skips_consistent_index {
            self.commit_without_consistent_index()?;
        } else {
            self.commit(true)?;
        }
        let path = self.path.clone();
        let db = Arc::get_mut(&mut self.db).ok_or_else(|| {
            BackendError::io(
                &path,
                "defragment",
                std::io::Error::other("the database is still in use by a commit"),
            )
        })?;
        for _ in 0..16 {
            let more = db.compact().map_err(|e| BackendError::Db {
                path: self.path.clone(),
                op: "defragment",
                source: Box::new(e.into()),
            })?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// Every bucket's content (including the uncommitted batch), for a raft snapshot.
    pub fn snapshot_data(&self) -> Result<Vec<u8>, BackendError> {
        let mut w = snapshot::SnapshotWriter::new();
        for b in Bucket::ALL {
            if b == Bucket::Meta {
                // The meta bucket carries the consistent index of this very content.
                let mut meta_entries = Vec::new();
                self.for_each(b, &[], None, |k, v| {
                    meta_entries.push((k.to_vec(), v.to_vec()));
                    true
                })?;
                let (index, term) = self.applied;
                for (k, v) in &meta_entries {
                    if k != meta::CONSISTENT_INDEX && k != meta::TERM {
                        w.entry(b, k, v);
                    }
                }
                w.entry(b, meta::CONSISTENT_INDEX, &index.to_be_bytes());
                w.entry(b, meta::TERM, &term.to_be_bytes());
                continue;
            }
            self.for_each(b, &[], None, |k, v| {
                w.entry(b, k, v);
                true
            })?;
        }
        Ok(w.finish())
    }

    /// The `(index, term)` recorded in a snapshot, after verifying it.
    pub fn snapshot_index(&self, data: &[u8]) -> Result<(u64, u64), BackendError> {
        let entries = snapshot::decode(data).map_err(|d| BackendError::snapshot(&self.path, d))?;
        self.snapshot_meta(&entries)
    }

    fn snapshot_meta(&self, entries: &[snapshot::Entry<'_>]) -> Result<(u64, u64), BackendError> {
        let find = |key: &[u8]| -> Result<u64, BackendError> {
            match entries
                .iter()
                .find(|(b, k, _)| *b == Bucket::Meta && *k == key)
            {
                None => Ok(0),
                Some((_, _, v)) => be_u64(v)
                    .ok_or_else(|| BackendError::snapshot(&self.path, "meta value is not 8 bytes")),
            }
        };
        Ok((find(meta::CONSISTENT_INDEX)?, find(meta::TERM)?))
    }

    /// Replaces the whole database with a snapshot made by [`Self::snapshot_data`], atomically
    /// and durably. Refuses a snapshot whose consistent index is below `min_index` (it would
    /// lose entries). Returns the snapshot's `(index, term)`, which become the consistent index.
    pub fn restore_snapshot(
        &mut self,
        data: &[u8],
        min_index: u64,
    ) -> Result<(u64, u64), BackendError> {
        let entries = snapshot::decode(data).map_err(|d| BackendError::snapshot(&self.path, d))?;
        let (index, term) = self.snapshot_meta(&entries)?;
        if index < min_index {
            return Err(BackendError::snapshot(
                &self.path,
                format!("snapshot consistent index {index} is below the raft snapshot index {min_index}"),
            ));
        }
        // A batch still being written would land after (and over) the snapshot.
        self.finish_in_flight(true)?;
        let wtx = self.begin_write()?;
        {
            let mut tables = Vec::new();
            for b in Bucket::ALL {
                wtx.delete_table(b.table())
                    .map_err(|e| BackendError::from_redb(&self.path, "delete table", e))?;
                tables.push(
                    wtx.open_table(b.table())
                        .map_err(|e| BackendError::from_redb(&self.path, "create table", e))?,
                );
            }
            for (b, k, v) in &entries {
                tables[usize::from(b.id())]
                    .insert(*k, *v)
                    .map_err(|e| BackendError::from_redb(&self.path, "write", e))?;
            }
        }
        let mut wtx = wtx;
        wtx.set_quick_repair(self.opts.quick_repair);
        wtx.commit()
            .map_err(|e| BackendError::from_redb(&self.path, "commit", e))?;
        self.buffer.clear();
        self.pending_ops = 0;
        self.applied = (index, term);
        self.durable = (index, term);
        self.index_dirty = false;
        self.last_commit = tokio::time::Instant::now();
        self.commits += 1;
        Ok((index, term))
    }
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

impl Drop for Backend {
    /// A batch still being written finishes before the database is closed (a reopen in the
    /// same process must not race it).
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            let _ = f.outcome(true);
        }
    }
}
