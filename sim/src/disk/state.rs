//! The file-system model of one simulated disk: directories, directory entries (live and
//! durable), inodes with page-cache bytes, durable bytes and the log of unsynced writes.
//!
//! Owns: what "durable" means. A write lands in the inode's page cache and its pending log; a
//! data sync moves pending writes into the durable bytes; a directory sync makes that
//! directory's entries durable; a crash rebuilds the live view from the durable one (plus what
//! the crash model lets survive).
//!
//! Must never: sleep, draw randomness other than from the `ChaCha8Rng` it is handed, or touch
//! the host file system. Latency and fault injection live in the caller (`disk/mod.rs`).

use super::faults::{enospc, CrashModel};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

/// Largest file the simulated disk holds (files live in memory).
pub(crate) const MAX_FILE: u64 = 16 << 30;
/// Linux's EFBIG.
const EFBIG: i32 = 27;

/// An unsynced change to an inode's data.
#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Op {
    fn apply(&self, buf: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => write_into(buf, *offset, data),
            Op::SetLen(len) => buf.resize(*len as usize, 0),
        }
    }
}

fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

/// One file's content.
#[derive(Debug, Default)]
pub(crate) struct Inode {
    /// What reads see (page cache).
    data: Vec<u8>,
    /// What survives power loss.
    durable: Vec<u8>,
    /// Unsynced changes, oldest first, with their sequence numbers.
    pending: Vec<(u64, Op)>,
    /// Sequence number of the latest change.
    seq: u64,
}

impl Inode {
    fn push(&mut self, op: Op) {
        op.apply(&mut self.data);
        self.seq += 1;
        self.pending.push((self.seq, op));
    }

    /// Makes every change up to `upto` durable.
    fn sync_upto(&mut self, upto: u64) {
        let n = self.pending.partition_point(|(s, _)| *s <= upto);
        for (_, op) in self.pending.drain(..n) {
            op.apply(&mut self.durable);
        }
    }

    /// Forgets (without making durable) every change up to `upto`: a failed fsync.
    fn drop_upto(&mut self, upto: u64) {
        let n = self.pending.partition_point(|(s, _)| *s <= upto);
        self.pending.drain(..n);
    }

    /// Power loss: keep what `model` lets survive, and make it the whole content.
    fn crash(&mut self, model: CrashModel, rng: &mut ChaCha8Rng) {
        let pending = std::mem::take(&mut self.pending);
        match model {
            CrashModel::KeepAll => {
                for (_, op) in &pending {
                    op.apply(&mut self.durable);
                }
            }
            CrashModel::LoseAll => {}
            CrashModel::TornPrefix { sector } => {
                let keep = rng.gen_range(0..=pending.len());
                for (_, op) in &pending[..keep] {
                    op.apply(&mut self.durable);
                }
                if let Some((_, Op::Write { offset, data })) = pending.get(keep) {
                    let torn = torn_len(*offset, data.len() as u64, sector.max(1), rng);
                    write_into(&mut self.durable, *offset, &data[..torn as usize]);
                }
            }
        }
        self.data = self.durable.clone();
        self.seq = 0;
    }

    /// Unsynced changes.
    pub(crate) fn pending_ops(&self) -> usize {
        self.pending.len()
    }
}

/// How many leading bytes of a write of `len` bytes at `offset` survive when it is torn at a
/// random sector boundary strictly inside it (or before it: nothing survives).
fn torn_len(offset: u64, len: u64, sector: u64, rng: &mut ChaCha8Rng) -> u64 {
    let end = offset + len;
    let mut cuts = vec![0u64];
    let mut b = (offset / sector + 1) * sector;
    while b < end {
        cuts.push(b - offset);
        b += sector;
    }
    cuts[rng.gen_range(0..cuts.len())]
}

/// Path normalisation: drop `.` components so equal paths compare equal.
pub(crate) fn norm(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn parent_of(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn is_root(p: &Path) -> bool {
    p.as_os_str().is_empty() || p == Path::new("/")
}

/// The whole disk.
#[derive(Debug, Default)]
pub(crate) struct FsState {
    dirs: BTreeSet<PathBuf>,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    open: BTreeMap<u64, usize>,
    next_ino: u64,
    /// Bytes in live files (the page-cache view).
    pub(crate) used: u64,
}

impl FsState {
    pub(crate) fn dir_exists(&self, p: &Path) -> bool {
        is_root(p) || self.dirs.contains(p)
    }

    pub(crate) fn create_dir_all(&mut self, p: &Path) -> io::Result<()> {
        if self.live.contains_key(p) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file is in the way",
            ));
        }
        let mut cur = PathBuf::new();
        for c in p.components() {
            cur.push(c);
            if !is_root(&cur) {
                self.dirs.insert(cur.clone());
            }
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, p: &Path) -> Option<u64> {
        self.live.get(p).copied()
    }

    /// Creates an empty file (the entry is live, not yet durable).
    pub(crate) fn create(&mut self, p: &Path) -> io::Result<u64> {
        if !self.dir_exists(&parent_of(p)) {
            return Err(io::ErrorKind::NotFound.into());
        }
        if self.dirs.contains(p) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.inodes.insert(ino, Inode::default());
        self.live.insert(p.to_path_buf(), ino);
        Ok(ino)
    }

    pub(crate) fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        if !self.dir_exists(dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let mut names = BTreeSet::new();
        let children = self.live.keys().chain(self.dirs.iter());
        for p in children {
            if p.parent() == Some(dir) || (is_root(dir) && p.parent().is_some_and(is_root)) {
                if let Some(n) = p.file_name() {
                    names.insert(n.to_string_lossy().into_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    pub(crate) fn exists(&self, p: &Path) -> bool {
        self.live.contains_key(p) || self.dir_exists(p)
    }

    pub(crate) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let ino = self.lookup(from).ok_or(io::ErrorKind::NotFound)?;
        if !self.dir_exists(&parent_of(to)) {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.live.remove(from);
        if let Some(old) = self.live.insert(to.to_path_buf(), ino) {
            self.gc(old);
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, p: &Path) -> io::Result<()> {
        let ino = self.live.remove(p).ok_or(io::ErrorKind::NotFound)?;
        self.gc(ino);
        Ok(())
    }

    /// Makes the entries directly inside `dir` durable as they are now.
    pub(crate) fn sync_dir(&mut self, dir: &Path) {
        let in_dir = |p: &Path| parent_of(p) == dir;
        let gone: Vec<(PathBuf, u64)> = self
            .durable
            .iter()
            .filter(|(p, _)| in_dir(p) && !self.live.contains_key(*p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, ino) in gone {
            self.durable.remove(&p);
            self.gc(ino);
        }
        let now: Vec<(PathBuf, u64)> = self
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, ino) in now {
            if let Some(old) = self.durable.insert(p, ino) {
                if old != ino {
                    self.gc(old);
                }
            }
        }
    }

    pub(crate) fn inode(&self, ino: u64) -> io::Result<&Inode> {
        self.inodes
            .get(&ino)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "stale file handle"))
    }

    fn inode_mut(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "stale file handle"))
    }

    pub(crate) fn len(&self, ino: u64) -> io::Result<u64> {
        Ok(self.inode(ino)?.data.len() as u64)
    }

    pub(crate) fn read(&self, ino: u64, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let data = &self.inode(ino)?.data;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        if end > data.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    /// Grows `used` for a file growing from `old` to `new` bytes, or fails with ENOSPC (or
    /// EFBIG past [`MAX_FILE`]).
    fn reserve(&mut self, old: u64, new: u64, capacity: Option<u64>) -> io::Result<()> {
        if new > MAX_FILE {
            return Err(io::Error::from_raw_os_error(EFBIG));
        }
        if new > old {
            let after = self.used + (new - old);
            if capacity.is_some_and(|c| after > c) {
                return Err(enospc());
            }
            self.used = after;
        } else {
            self.used -= old - new;
        }
        Ok(())
    }

    pub(crate) fn write(
        &mut self,
        ino: u64,
        offset: u64,
        data: &[u8],
        capacity: Option<u64>,
    ) -> io::Result<()> {
        let old = self.len(ino)?;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(EFBIG))?;
        let new = old.max(end);
        self.reserve(old, new, capacity)?;
        self.inode_mut(ino)?.push(Op::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    pub(crate) fn set_len(&mut self, ino: u64, len: u64, capacity: Option<u64>) -> io::Result<()> {
        let old = self.len(ino)?;
        self.reserve(old, len, capacity)?;
        self.inode_mut(ino)?.push(Op::SetLen(len));
        Ok(())
    }

    /// The sequence number a sync started now must reach.
    pub(crate) fn sync_point(&self, ino: u64) -> io::Result<u64> {
        Ok(self.inode(ino)?.seq)
    }

    pub(crate) fn sync_upto(&mut self, ino: u64, upto: u64) -> io::Result<()> {
        self.inode_mut(ino)?.sync_upto(upto);
        Ok(())
    }

    pub(crate) fn drop_upto(&mut self, ino: u64, upto: u64) -> io::Result<()> {
        self.inode_mut(ino)?.drop_upto(upto);
        Ok(())
    }

    pub(crate) fn opened(&mut self, ino: u64) {
        *self.open.entry(ino).or_default() += 1;
    }

    pub(crate) fn closed(&mut self, ino: u64) {
        if let Some(n) = self.open.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ino);
                self.gc(ino);
            }
        }
    }

    /// Drops an inode nothing refers to any more.
    fn gc(&mut self, ino: u64) {
        let referenced = self.open.contains_key(&ino)
            || self.live.values().any(|i| *i == ino)
            || self.durable.values().any(|i| *i == ino);
        if !referenced {
            if let Some(inode) = self.inodes.remove(&ino) {
                self.used -= inode.data.len() as u64;
            }
        }
    }

    /// Power loss or process kill: rebuild the live view from what survives.
    pub(crate) fn crash(&mut self, model: CrashModel, rng: &mut ChaCha8Rng) {
        match model {
            CrashModel::KeepAll => self.durable = self.live.clone(),
            CrashModel::LoseAll => self.live = self.durable.clone(),
            CrashModel::TornPrefix { .. } => {
                let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
                for (p, i) in &self.live {
                    if self.durable.get(p) != Some(i) {
                        dirs.insert(parent_of(p));
                    }
                }
                for (p, i) in &self.durable {
                    if self.live.get(p) != Some(i) {
                        dirs.insert(parent_of(p));
                    }
                }
                for d in dirs {
                    if rng.gen_bool(0.5) {
                        self.sync_dir(&d);
                    }
                }
                self.live = self.durable.clone();
            }
        }
        self.open.clear();
        let keep: BTreeSet<u64> = self.durable.values().copied().collect();
        self.inodes.retain(|i, _| keep.contains(i));
        for inode in self.inodes.values_mut() {
            inode.crash(model, rng);
        }
        self.used = self.inodes.values().map(|i| i.data.len() as u64).sum();
    }

    /// Live file paths, sorted.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        self.live.keys().cloned().collect()
    }

    /// The bytes of `p` that would survive a power loss that keeps nothing unsynced.
    pub(crate) fn durable_bytes(&self, p: &Path) -> Option<Vec<u8>> {
        let ino = self.durable.get(p)?;
        self.inodes.get(ino).map(|i| i.durable.clone())
    }

    /// Total unsynced changes across files.
    pub(crate) fn pending_ops(&self) -> usize {
        self.inodes.values().map(Inode::pending_ops).sum()
    }
}
