//! WAL tests of fdatasync failures: a failed sync makes the WAL unusable, and an empty save
//! that must sync still syncs earlier writes.

use super::tests::{disk, ents, hs};
use super::*;
use crate::seam::real::RealDisk;
use std::sync::atomic::Ordering;

/// A real disk whose files' fdatasync fails while `fail` is set.
#[derive(Debug)]
struct FlakyDisk {
    fail: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct FlakyFile {
    inner: Arc<dyn DiskFile>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Disk for FlakyDisk {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        RealDisk.create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn DiskFile>> {
        Ok(Arc::new(FlakyFile {
            inner: RealDisk.open(path, mode)?,
            fail: self.fail.clone(),
        }))
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        RealDisk.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        RealDisk.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealDisk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        RealDisk.remove_file(path)
    }
    async fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        RealDisk.sync_dir(dir).await
    }
}

#[async_trait::async_trait]
impl DiskFile for FlakyFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    async fn sync_data(&self) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected EIO"));
        }
        self.inner.sync_data().await
    }
    fn sync_data_now(&self) -> std::io::Result<()> {
        self.inner.sync_data_now()
    }
}

#[tokio::test]
async fn failed_fdatasync_makes_the_wal_unusable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flaky: Arc<dyn Disk> = Arc::new(FlakyDisk { fail: fail.clone() });
    let mut w = Wal::create(flaky.clone(), &dir, b"m", WalOptions::default())
        .await
        .unwrap();
    w.save(Some(&hs(1, 1, 0)), &ents(1..=3, 1), true)
        .await
        .unwrap();
    fail.store(true, Ordering::SeqCst);
    let err = w.save(None, &ents(4..=4, 1), true).await.unwrap_err();
    assert!(
        matches!(&err, WalError::Io { op: "fdatasync", path, .. } if path.starts_with(&dir)),
        "{err}"
    );
    fail.store(false, Ordering::SeqCst);
    let err = w.save(None, &ents(5..=5, 1), true).await.unwrap_err();
    assert!(
        matches!(err, WalError::Failed(ref r) if r.contains("injected EIO")),
        "{err}"
    );
    assert!(matches!(
        w.save_snapshot(WalSnapshot { index: 1, term: 1 }).await,
        Err(WalError::Failed(_))
    ));
    drop(w);
    // Reopening recovers what reached the file.
    let (_, c) = Wal::open(flaky, &dir, WalOptions::default()).await.unwrap();
    assert_eq!(c.entries, ents(1..=4, 1));
}

#[tokio::test]
async fn empty_save_with_must_sync_syncs_earlier_unsynced_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"m", WalOptions::default())
        .await
        .unwrap();
    w.save(Some(&hs(1, 1, 0)), &ents(1..=2, 1), true)
        .await
        .unwrap();
    let n = w.fsync_stats().count;
    w.save(None, &[], true).await.unwrap();
    assert_eq!(w.fsync_stats().count, n, "nothing unsynced: no fdatasync");
    w.save(None, &ents(3..=3, 1), false).await.unwrap();
    assert_eq!(w.fsync_stats().count, n);
    w.save(Some(&HardState::default()), &[], true)
        .await
        .unwrap();
    assert_eq!(
        w.fsync_stats().count,
        n + 1,
        "the unsynced entry 3 is synced"
    );
    assert!(w.fsync_stats().last.is_some());
}
