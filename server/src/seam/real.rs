//! Real-mode implementations of the seam: std files with real fdatasync, tokio TCP.
//!
//! Owns: the only place in the server allowed to touch `std::fs` and `tokio::net`.
//!
//! Must never: be used in simulation (the simulator supplies its own `Disk` and `Network`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use super::disk::{Disk, DiskFile, OpenMode};
use super::net::{BoxIo, NetListener, Network};
use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The host file system.
#[derive(Debug, Clone, Copy)]
pub struct RealDisk;

#[derive(Debug)]
struct RealFile(File);

#[async_trait]
impl Disk for RealDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateOrOpen => {
                o.create(true);
            }
            OpenMode::CreateNew => {
                o.create_new(true);
            }
        }
        Ok(Arc::new(RealFile(o.open(path)?)))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

#[async_trait]
impl DiskFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    async fn sync_data(&self) -> io::Result<()> {
        // Blocks this task like etcd's raft goroutine blocks in fdatasync: that is the point.
        self.0.sync_data()
    }
    fn sync_data_now(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// Host TCP through tokio.
#[derive(Debug, Clone, Copy)]
pub struct RealNetwork;

struct RealListener(tokio::net::TcpListener);

#[async_trait]
impl NetListener for RealListener {
    async fn accept(&mut self) -> io::Result<BoxIo> {
        let (s, _) = self.0.accept().await?;
        s.set_nodelay(true)?;
        Ok(BoxIo(Box::new(s)))
    }
    fn local_addr(&self) -> String {
        self.0
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Network for RealNetwork {
    async fn bind(&self, addr: &str) -> io::Result<Box<dyn NetListener>> {
        Ok(Box::new(RealListener(
            tokio::net::TcpListener::bind(addr).await?,
        )))
    }
    async fn connect(&self, addr: &str) -> io::Result<BoxIo> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(BoxIo(Box::new(s)))
    }
}

/// A job for [`ThreadOffload`].
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs jobs one after another on one worker thread (the backend's commits, like etcd's
/// backend goroutine); if the thread could not be made, runs them inline.
#[derive(Debug)]
pub struct ThreadOffload {
    tx: std::sync::mpsc::Sender<Job>,
}

impl ThreadOffload {
    /// Starts the worker thread.
    pub fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        // If the thread cannot start, `rx` is dropped and every job runs inline.
        let _ = std::thread::Builder::new()
            .name("backend-commit".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            });
        ThreadOffload { tx }
    }
}

impl Default for ThreadOffload {
    fn default() -> Self {
        Self::new()
    }
}

impl super::Offload for ThreadOffload {
    fn run(&self, job: Job) {
        if let Err(back) = self.tx.send(job) {
            (back.0)();
        }
    }
}
