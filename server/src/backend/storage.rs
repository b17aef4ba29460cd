//! redb's `StorageBackend` over the seam's `DiskFile`, so the backend's reads, writes and
//! fsyncs go through the same disk (real or simulated) as the WAL — with a CRC-32C of every
//! 4 KiB block kept in memory, so that a block that changes under the database (bit rot, a
//! bad read, another writer) is an I/O error naming the file and offset instead of bytes
//! redb would trust (and may panic on).
//!
//! Owns: the block sums: taken from the file when it is opened (redb then verifies its own
//! page checksums over the same bytes), updated on every write, checked on every read.
//! Must never: keep a sum that does not match what this process wrote or found at open.

use crate::seam::DiskFile;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Checksummed block size.
const BLOCK: u64 = 4096;

/// Per block: (CRC-32C, bytes covered); `None` = not known (a region the file grew into and
/// nobody wrote yet: zeros, trusted on first read).
#[derive(Debug, Default)]
struct Sums {
    len: u64,
    blocks: Vec<Option<(u32, u32)>>,
}

/// A database file seen through the seam.
#[derive(Debug, Clone)]
pub(crate) struct DiskStorage {
    file: Arc<dyn DiskFile>,
    path: PathBuf,
    sums: Arc<RwLock<Sums>>,
}

fn crc(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

impl DiskStorage {
    /// Wraps `file` (at `path`, for errors), summing every block it holds now.
    pub(crate) fn new(file: Arc<dyn DiskFile>, path: PathBuf) -> io::Result<Self> {
        let len = file.len()?;
        let mut blocks = Vec::with_capacity(len.div_ceil(BLOCK) as usize);
        let mut buf = vec![0u8; BLOCK as usize];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(BLOCK) as usize;
            file.read_at(at, &mut buf[..n])?;
            blocks.push(Some((crc(&buf[..n]), n as u32)));
            at += BLOCK;
        }
        Ok(DiskStorage {
            file,
            path,
            sums: Arc::new(RwLock::new(Sums { len, blocks })),
        })
    }

    fn poisoned(&self) -> io::Error {
        io::Error::other(format!(
            "{}: block checksum table poisoned by a panic",
            self.path.display()
        ))
    }

    /// The bytes of block `b` (`n` of them): from `have` if it covers them, else read.
    fn block_bytes<'a>(
        &self,
        b: u64,
        n: usize,
        have: (u64, &'a [u8]),
        scratch: &'a mut Vec<u8>,
    ) -> io::Result<&'a [u8]> {
        let start = b * BLOCK;
        let (off, data) = have;
        if start >= off && start + n as u64 <= off + data.len() as u64 {
            let i = (start - off) as usize;
            return Ok(&data[i..i + n]);
        }
        scratch.resize(n, 0);
        self.file.read_at(start, scratch)?;
        Ok(&scratch[..])
    }

    fn blocks_of(offset: u64, len: usize) -> std::ops::RangeInclusive<u64> {
        let last = (offset + len.max(1) as u64 - 1) / BLOCK;
        (offset / BLOCK)..=last
    }
}

impl redb::StorageBackend for DiskStorage {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read_at(offset, out)?;
        // Blocks the read covers whole are checked (redb's pages); partial reads (its header)
        // are left to redb's own header checksums, so they cost no extra I/O.
        let sums = self.sums.read().map_err(|_| self.poisoned())?;
        for b in Self::blocks_of(offset, out.len()) {
            let Some(Some((sum, n))) = sums.blocks.get(b as usize).copied() else {
                continue;
            };
            let start = b * BLOCK;
            if start < offset || start + u64::from(n) > offset + out.len() as u64 {
                continue;
            }
            let i = (start - offset) as usize;
            if crc(&out[i..i + n as usize]) != sum {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: block at offset {start} ({n} bytes) changed under the database \
                         (checksum mismatch)",
                        self.path.display(),
                    ),
                ));
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut sums = self.sums.write().map_err(|_| self.poisoned())?;
        self.file.set_len(len)?;
        let keep = (len / BLOCK) as usize; // blocks wholly below the new end keep their sums
        sums.blocks.truncate(keep);
        sums.blocks.resize(len.div_ceil(BLOCK) as usize, None);
        sums.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        // redb calls this synchronously from inside a commit; the sim disk charges no latency
        // here (the backend commit is off the raft loop's fsync path, as in etcd).
        self.file.sync_data_now()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        // redb never reads a page while another thread writes it (copy-on-write), so the I/O
        // runs outside the lock; only the table update is under it.
        self.file.write_at(offset, data)?;
        let len = {
            let mut sums = self.sums.write().map_err(|_| self.poisoned())?;
            sums.len = sums.len.max(offset + data.len() as u64);
            sums.len
        };
        let mut scratch = Vec::new();
        let mut fresh = Vec::new();
        for b in Self::blocks_of(offset, data.len()) {
            let n = (len - b * BLOCK).min(BLOCK) as usize;
            let bytes = self.block_bytes(b, n, (offset, data), &mut scratch)?;
            fresh.push((b as usize, (crc(bytes), n as u32)));
        }
        let mut sums = self.sums.write().map_err(|_| self.poisoned())?;
        for (i, entry) in fresh {
            if sums.blocks.len() <= i {
                sums.blocks.resize(i + 1, None);
            }
            sums.blocks[i] = Some(entry);
        }
        Ok(())
    }
}
