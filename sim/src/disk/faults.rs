//! Injectable disk faults and the crash model of one simulated disk.
//!
//! Owns: the fault rules (kind, path prefix, probability) a scenario switches on and off, the
//! decision whether a given operation on a given path fails, and the description of what a
//! crash keeps of unsynced data.
//!
//! Must never: decide with anything but the node's seeded disk stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::io;
use std::path::{Path, PathBuf};

/// Linux's EIO.
pub const EIO: i32 = 5;
/// Linux's ENOSPC.
pub const ENOSPC: i32 = 28;

/// An I/O error as the kernel would report it.
pub fn eio() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

/// ENOSPC, as the kernel would report it.
pub fn enospc() -> io::Error {
    io::Error::from_raw_os_error(ENOSPC)
}

/// A kind of injected disk fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiskFault {
    /// `write_at`, `set_len` and directory changes (create, rename, remove) fail with EIO and
    /// change nothing.
    WriteEio,
    /// `sync_data`/`sync_data_now`/`sync_dir` fail with EIO after their latency. As on Linux
    /// ("fsyncgate"), the writes that sync should have made durable are then never durable: the
    /// page cache still shows them, a crash loses them.
    FsyncEio,
    /// Syncs (`sync_data`, `sync_data_now`, `sync_dir`) report success without making anything
    /// durable: a drive whose volatile write cache lies. A later crash loses the data.
    SyncLies,
    /// `read_at` fails with EIO (a latent sector error).
    ReadEio,
    /// `read_at` succeeds but one random bit of the returned buffer is flipped (silent
    /// corruption on the read path; the stored bytes are unchanged).
    ReadBitFlip,
}

/// One fault rule: operations of kind `fault` on paths under `prefix` fail with `probability`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// What fails.
    pub fault: DiskFault,
    /// Paths it applies to (component-wise prefix; empty or `/` means every path).
    pub prefix: PathBuf,
    /// Chance in [0, 1] that a matching operation fails (1.0: always).
    pub probability: f64,
}

impl FaultRule {
    /// A rule that always fires for every path under `prefix`.
    pub fn always(fault: DiskFault, prefix: impl Into<PathBuf>) -> Self {
        FaultRule {
            fault,
            prefix: prefix.into(),
            probability: 1.0,
        }
    }

    fn matches(&self, fault: DiskFault, path: &Path) -> bool {
        self.fault == fault
            && (self.prefix.as_os_str().is_empty()
                || self.prefix == Path::new("/")
                || path.starts_with(&self.prefix))
    }
}

/// Identifies an injected rule so it can be removed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(pub u64);

/// The active rules of one disk.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<(FaultId, FaultRule)>,
    next: u64,
}

impl FaultSet {
    pub(crate) fn add(&mut self, rule: FaultRule) -> FaultId {
        self.next += 1;
        let id = FaultId(self.next);
        self.rules.push((id, rule));
        id
    }

    pub(crate) fn remove(&mut self, id: FaultId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(i, _)| *i != id);
        before != self.rules.len()
    }

    pub(crate) fn remove_equal(&mut self, rule: &FaultRule) {
        self.rules.retain(|(_, r)| r != rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Whether an operation of kind `fault` on `path` fails now. Draws from `rng` only when a
    /// rule matches with a probability strictly between 0 and 1.
    pub(crate) fn fires(&self, fault: DiskFault, path: &Path, rng: &mut ChaCha8Rng) -> bool {
        self.rules.iter().any(|(_, r)| {
            r.matches(fault, path)
                && (r.probability >= 1.0 || (r.probability > 0.0 && rng.gen_bool(r.probability)))
        })
    }
}

/// What a crash keeps of data that was written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashModel {
    /// Process kill: the kernel survives, so the page cache (all unsynced writes and directory
    /// changes) survives too.
    KeepAll,
    /// Power loss, worst case: every unsynced write and every unsynced directory change is lost.
    LoseAll,
    /// Power loss, realistic: per file, a random prefix of the unsynced writes survives, the
    /// first lost write torn at `sector` bytes (512 or 4096); per directory, its unsynced changes
    /// survive all together or not at all.
    TornPrefix {
        /// Sector size in bytes at which a write may be torn.
        sector: u64,
    },
}

impl CrashModel {
    /// Power loss with 4 KiB sectors.
    pub fn power_loss() -> Self {
        CrashModel::TornPrefix { sector: 4096 }
    }
}
