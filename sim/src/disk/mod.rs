//! `SimDisk`: the simulated disk of one node, implementing the server's `seam::Disk`.
//!
//! Owns: the node's files across restarts (the disk is created once per node, outside the
//! turmoil host closure, and handed to every incarnation of the member), sync latency drawn
//! from the node's [`LatencyModel`] and slept with `tokio::time` (simulated), injected faults,
//! the capacity limit, pause, and crashes. A crash bumps the disk's generation: handles opened
//! before it fail with EIO, as the file descriptors of a dead process would.
//!
//! Must never: touch the host file system, read the wall clock, or draw randomness from
//! anything but the node's seeded disk stream. Disk state lives behind a `std::sync::Mutex`
//! that is never held across an `.await`.

pub mod faults;
pub mod latency;
mod state;

pub use faults::{CrashModel, DiskFault, FaultId, FaultRule};
pub use latency::LatencyModel;

use async_trait::async_trait;
use etcd_server::seam::{Disk, DiskFile, OpenMode};
use faults::{eio, FaultSet};
use rand_chacha::ChaCha8Rng;
use state::{norm, FsState};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often a paused disk checks whether it was resumed.
const PAUSE_POLL: Duration = Duration::from_millis(1);

/// Counters of one disk, for tests and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Completed `sync_data`/`sync_dir` calls (with latency).
    pub syncs: u64,
    /// Completed `sync_data_now` calls (redb's commits; their latency is slept in
    /// `settle_syncs` and counted in `settled_time`).
    pub syncs_now: u64,
    /// Total latency slept for `sync_data_now` calls.
    pub settled_time: Duration,
    /// Total latency slept in syncs.
    pub sync_time: Duration,
    /// Longest single sync latency.
    pub max_sync: Duration,
    /// Faults that fired (EIO, ENOSPC, bit flips).
    pub faults_fired: u64,
    /// Crashes applied.
    pub crashes: u64,
}

struct Inner {
    fs: FsState,
    faults: FaultSet,
    latency: LatencyModel,
    /// Latency models for syncs of paths under a prefix (first match wins; else `latency`).
    path_latency: Vec<(PathBuf, LatencyModel)>,
    capacity: Option<u64>,
    rng: ChaCha8Rng,
    generation: u64,
    paused: bool,
    /// The files of the synchronous syncs whose latency the next `settle_syncs` charges.
    unsettled_syncs: Vec<PathBuf>,
    stats: DiskStats,
}

/// The simulated disk of one node. Cheap to clone (shared state); survives member restarts.
#[derive(Clone)]
pub struct SimDisk {
    name: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimDisk({})", self.name)
    }
}

impl SimDisk {
    /// A new empty disk for node `name`, drawing latencies and fault decisions from `rng` (the
    /// node's `disk/<name>` stream).
    pub fn new(name: &str, rng: ChaCha8Rng) -> Self {
        SimDisk {
            name: name.into(),
            inner: Arc::new(Mutex::new(Inner {
                fs: FsState::default(),
                faults: FaultSet::default(),
                latency: LatencyModel::default(),
                capacity: None,
                rng,
                generation: 0,
                paused: false,
                path_latency: Vec::new(),
                unsettled_syncs: Vec::new(),
                stats: DiskStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node this disk belongs to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the sync latency model (takes effect for syncs that start after the call).
    pub fn set_latency(&self, model: LatencyModel) {
        self.lock().latency = model;
    }

    /// Sets (or with `None` removes) the sync latency model of the paths under `prefix`
    /// (component-wise), which then differs from the disk's: a slow backend file on a disk
    /// whose WAL syncs are fast.
    pub fn set_path_latency(&self, prefix: &Path, model: Option<LatencyModel>) {
        let mut g = self.lock();
        g.path_latency.retain(|(p, _)| p != prefix);
        if let Some(m) = model {
            g.path_latency.push((prefix.to_path_buf(), m));
        }
    }

    /// The current sync latency model.
    pub fn latency(&self) -> LatencyModel {
        self.lock().latency
    }

    /// Switches a fault on; returns its id for [`SimDisk::remove_fault`].
    pub fn inject(&self, rule: FaultRule) -> FaultId {
        self.lock().faults.add(rule)
    }

    /// Switches one fault off; false if it was not active.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.lock().faults.remove(id)
    }

    /// Switches off every active rule equal to `rule`.
    pub fn remove_rule(&self, rule: &FaultRule) {
        self.lock().faults.remove_equal(rule);
    }

    /// Switches every fault rule off.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.lock().faults.rules()
    }

    /// Sets the capacity in bytes (`None`: unlimited). Writes that would grow the total size
    /// of live files past it fail with ENOSPC.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Bytes in live files.
    pub fn used(&self) -> u64 {
        self.lock().fs.used
    }

    /// Pauses the disk: syncs that start or finish while paused wait until [`SimDisk::resume`]
    /// (part of pausing a node).
    pub fn pause(&self) {
        self.lock().paused = true;
    }

    /// Resumes a paused disk.
    pub fn resume(&self) {
        self.lock().paused = false;
    }

    /// Applies a crash: what survives is decided by `model`; every handle opened before fails
    /// from now on. Call it when the node's process dies (before or after its tasks are
    /// dropped: stale handles cannot write).
    pub fn crash(&self, model: CrashModel) {
        let mut g = self.lock();
        let Inner { fs, rng, .. } = &mut *g;
        fs.crash(model, rng);
        g.generation += 1;
        g.paused = false;
        g.stats.crashes += 1;
    }

    /// Counters.
    pub fn stats(&self) -> DiskStats {
        self.lock().stats.clone()
    }

    /// Paths of live files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().fs.files()
    }

    /// Live files with their current (page-cache) sizes, sorted by path.
    pub fn file_sizes(&self) -> Vec<(PathBuf, u64)> {
        let g = self.lock();
        g.fs.files()
            .into_iter()
            .map(|p| {
                let len = g.fs.lookup(&p).and_then(|i| g.fs.len(i).ok()).unwrap_or(0);
                (p, len)
            })
            .collect()
    }

    /// The durable content of `path` (what a power loss keeping nothing unsynced would leave),
    /// `None` if its directory entry is not durable.
    pub fn durable_content(&self, path: &Path) -> Option<Vec<u8>> {
        self.lock().fs.durable_bytes(&norm(path))
    }

    /// Unsynced writes across all files.
    pub fn pending_writes(&self) -> usize {
        self.lock().fs.pending_ops()
    }

    /// Draws whether `fault` fires on `path`, counting it.
    fn fires(g: &mut Inner, fault: DiskFault, path: &Path) -> bool {
        let Inner { faults, rng, .. } = g;
        let fired = faults.fires(fault, path, rng);
        if fired {
            g.stats.faults_fired += 1;
            tracing::debug!(target: "sim::disk", fault = ?fault, path = %path.display(), "injected disk fault");
        }
        fired
    }

    async fn wait_resumed(&self) {
        while self.lock().paused {
            tokio::time::sleep(PAUSE_POLL).await;
        }
    }

    /// One sync's latency: waits out a pause, sleeps the drawn latency, waits out a pause again.
    async fn sync_delay(&self, path: &Path) -> Duration {
        self.wait_resumed().await;
        let d = {
            let mut g = self.lock();
            let Inner {
                latency,
                path_latency,
                rng,
                ..
            } = &mut *g;
            let model = path_latency
                .iter()
                .find(|(p, _)| path.starts_with(p))
                .map(|(_, m)| m)
                .unwrap_or(latency);
            model.sample(rng)
        };
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        self.wait_resumed().await;
        d
    }
}

fn record_sync(g: &mut Inner, d: Duration) {
    g.stats.syncs += 1;
    g.stats.sync_time += d;
    g.stats.max_sync = g.stats.max_sync.max(d);
}

#[async_trait]
impl Disk for SimDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.lock().fs.create_dir_all(&norm(path))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let path = norm(path);
        let mut g = self.lock();
        let ino = match (g.fs.lookup(&path), mode) {
            (Some(_), OpenMode::CreateNew) => return Err(io::ErrorKind::AlreadyExists.into()),
            (Some(ino), _) => ino,
            (None, OpenMode::Existing) => {
                if g.fs.dir_exists(&path) {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "is a directory",
                    ));
                }
                return Err(io::ErrorKind::NotFound.into());
            }
            (None, _) => {
                if Self::fires(&mut g, DiskFault::WriteEio, &path) {
                    return Err(eio());
                }
                g.fs.create(&path)?
            }
        };
        g.fs.opened(ino);
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            path,
            ino,
            generation: g.generation,
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.lock().fs.list(&norm(dir))
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock().fs.exists(&norm(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (norm(from), norm(to));
        let mut g = self.lock();
        if Self::fires(&mut g, DiskFault::WriteEio, &to) {
            return Err(eio());
        }
        g.fs.rename(&from, &to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut g = self.lock();
        if Self::fires(&mut g, DiskFault::WriteEio, &path) {
            return Err(eio());
        }
        g.fs.remove(&path)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = norm(dir);
        let generation = {
            let g = self.lock();
            if !g.fs.dir_exists(&dir) {
                return Err(io::ErrorKind::NotFound.into());
            }
            g.generation
        };
        let d = self.sync_delay(&dir).await;
        let mut g = self.lock();
        if g.generation != generation {
            return Err(eio());
        }
        if Self::fires(&mut g, DiskFault::FsyncEio, &dir) {
            return Err(eio());
        }
        if !Self::fires(&mut g, DiskFault::SyncLies, &dir) {
            g.fs.sync_dir(&dir);
        }
        record_sync(&mut g, d);
        Ok(())
    }

    async fn settle_syncs(&self) {
        let owed = std::mem::take(&mut self.lock().unsettled_syncs);
        for path in owed {
            let d = self.sync_delay(&path).await;
            let mut g = self.lock();
            g.stats.settled_time += d;
            g.stats.max_sync = g.stats.max_sync.max(d);
        }
    }
}

/// An open file on a [`SimDisk`].
struct SimFile {
    disk: SimDisk,
    path: PathBuf,
    ino: u64,
    generation: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile({}:{})", self.disk.name, self.path.display())
    }
}

impl SimFile {
    /// The disk state, or EIO if the disk crashed since this handle was opened.
    fn live(&self) -> io::Result<MutexGuard<'_, Inner>> {
        let g = self.disk.lock();
        if g.generation != self.generation {
            return Err(eio());
        }
        Ok(g)
    }

    /// The synchronous half of a sync: fault check, then durability up to `upto`.
    fn finish_sync(&self, g: &mut Inner, upto: u64) -> io::Result<()> {
        if SimDisk::fires(g, DiskFault::FsyncEio, &self.path) {
            g.fs.drop_upto(self.ino, upto)?;
            return Err(eio());
        }
        if SimDisk::fires(g, DiskFault::SyncLies, &self.path) {
            return Ok(());
        }
        g.fs.sync_upto(self.ino, upto)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut g = self.disk.lock();
        if g.generation == self.generation {
            g.fs.closed(self.ino);
        }
    }
}

#[async_trait]
impl DiskFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.live()?.fs.len(self.ino)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut g = self.live()?;
        if SimDisk::fires(&mut g, DiskFault::ReadEio, &self.path) {
            return Err(eio());
        }
        g.fs.read(self.ino, offset, buf)?;
        if !buf.is_empty() && SimDisk::fires(&mut g, DiskFault::ReadBitFlip, &self.path) {
            use rand::Rng;
            let bit = g.rng.gen_range(0..buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut g = self.live()?;
        if SimDisk::fires(&mut g, DiskFault::WriteEio, &self.path) {
            return Err(eio());
        }
        let cap = g.capacity;
        let r = g.fs.write(self.ino, offset, data, cap);
        if r.is_err() {
            g.stats.faults_fired += 1;
        }
        r
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut g = self.live()?;
        if SimDisk::fires(&mut g, DiskFault::WriteEio, &self.path) {
            return Err(eio());
        }
        let cap = g.capacity;
        let r = g.fs.set_len(self.ino, len, cap);
        if r.is_err() {
            g.stats.faults_fired += 1;
        }
        r
    }

    async fn sync_data(&self) -> io::Result<()> {
        let upto = self.live()?.fs.sync_point(self.ino)?;
        let d = self.disk.sync_delay(&self.path).await;
        let mut g = self.live()?;
        self.finish_sync(&mut g, upto)?;
        record_sync(&mut g, d);
        Ok(())
    }

    fn sync_data_now(&self) -> io::Result<()> {
        let mut g = self.live()?;
        let upto = g.fs.sync_point(self.ino)?;
        self.finish_sync(&mut g, upto)?;
        g.stats.syncs_now += 1;
        g.unsettled_syncs.push(self.path.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
