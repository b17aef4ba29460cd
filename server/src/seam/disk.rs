//! The disk trait the server's WAL, snapshots and backend are written through.
//!
//! Owns the file-level contract: positional reads and writes land in a page cache and become
//! durable only after `sync_data` (and, for a new directory entry, `sync_dir` of its parent).
//! Implementations decide the latency of a sync and what a crash keeps.
//!
//! Must never: expose anything that would let a caller reach the host file system around it.

use async_trait::async_trait;
use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file; `NotFound` if it does not exist.
    Existing,
    /// Create the file if missing, keep its content otherwise.
    CreateOrOpen,
    /// Create a new file; `AlreadyExists` if it exists.
    CreateNew,
}

/// A directory tree of files. Paths are absolute or relative to the server's working directory
/// in real mode, and names inside the node's private namespace in simulation.
#[async_trait]
pub trait Disk: Send + Sync + Debug + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>>;
    /// File names (not paths) directly inside `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Atomically renames a file (durable only after `sync_dir` of the parent).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file (durable only after `sync_dir` of the parent).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Waits out the latency of the synchronous syncs ([`DiskFile::sync_data_now`], the redb
    /// backend's) made since the last call. A synchronous caller cannot wait inside the sync,
    /// so the simulator charges that latency (and any pause of the disk) here; a real disk
    /// charged it already, and returns at once.
    async fn settle_syncs(&self) {}
}

/// An open file.
#[async_trait]
pub trait DiskFile: Send + Sync + Debug {
    /// Current length in bytes (including unsynced writes).
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` past the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `data` at `offset`, extending the file if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: makes the file's data durable. Takes the disk's sync latency.
    async fn sync_data(&self) -> io::Result<()>;
    /// fdatasync for synchronous callers (the redb backend); its simulated latency is charged
    /// by the next [`Disk::settle_syncs`].
    fn sync_data_now(&self) -> io::Result<()>;

    /// Reads the whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut buf = vec![0u8; len];
        self.read_at(0, &mut buf)?;
        Ok(buf)
    }
}

/// Writes a whole file durably: a temp file, fdatasync, rename, directory sync.
pub async fn write_file_atomic(disk: &dyn Disk, path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    if disk.exists(&tmp) {
        disk.remove_file(&tmp)?;
    }
    let f = disk.open(&tmp, OpenMode::CreateNew)?;
    f.write_at(0, data)?;
    f.sync_data().await?;
    disk.rename(&tmp, path)?;
    disk.sync_dir(dir).await
}
