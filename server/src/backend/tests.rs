//! Backend tests: batching, read buffer, durability across a crash, snapshots, corruption.

use super::*;
use crate::seam::real::RealDisk;
use async_trait::async_trait;
use std::io;
use std::sync::Mutex;

/// A disk that keeps only fsynced bytes across a "crash" (page cache dropped).
#[derive(Debug, Default)]
pub(crate) struct CrashDisk {
    files: Mutex<BTreeMap<PathBuf, Arc<CrashFile>>>,
}

#[derive(Debug, Default)]
pub(crate) struct CrashFile {
    data: Mutex<Vec<u8>>,
    durable: Mutex<Vec<u8>>,
}

impl CrashDisk {
    /// The disk as a power loss would leave it: every file reverts to its last synced bytes.
    pub(crate) fn crash(&self) -> Arc<CrashDisk> {
        let files = self.files.lock().unwrap();
        let mut out = BTreeMap::new();
        for (p, f) in files.iter() {
            let durable = f.durable.lock().unwrap().clone();
            out.insert(
                p.clone(),
                Arc::new(CrashFile {
                    data: Mutex::new(durable.clone()),
                    durable: Mutex::new(durable),
                }),
            );
        }
        Arc::new(CrashDisk {
            files: Mutex::new(out),
        })
    }

    pub(crate) fn file(&self, path: &Path) -> Option<Arc<CrashFile>> {
        self.files.lock().unwrap().get(path).cloned()
    }
}

impl CrashFile {
    pub(crate) fn flip_byte(&self, offset: usize) {
        let mut d = self.data.lock().unwrap();
        d[offset] ^= 0xFF;
        let mut dur = self.durable.lock().unwrap();
        if offset < dur.len() {
            dur[offset] ^= 0xFF;
        }
    }
    pub(crate) fn len_now(&self) -> usize {
        self.data.lock().unwrap().len()
    }
}

#[async_trait]
impl Disk for CrashDisk {
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut files = self.files.lock().unwrap();
        match (files.get(path), mode) {
            (Some(f), OpenMode::Existing | OpenMode::CreateOrOpen) => Ok(f.clone()),
            (Some(_), OpenMode::CreateNew) => Err(io::ErrorKind::AlreadyExists.into()),
            (None, OpenMode::Existing) => Err(io::ErrorKind::NotFound.into()),
            (None, _) => {
                let f = Arc::new(CrashFile::default());
                files.insert(path.to_path_buf(), f.clone());
                Ok(f)
            }
        }
    }
    fn list(&self, _dir: &Path) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.lock().unwrap().contains_key(path)
    }
    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.files.lock().unwrap().remove(path);
        Ok(())
    }
    async fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl DiskFile for CrashFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().unwrap().len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = self.data.lock().unwrap();
        let start = offset as usize;
        let end = start + buf.len();
        if end > d.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&d[start..end]);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut d = self.data.lock().unwrap();
        let start = offset as usize;
        if d.len() < start + data.len() {
            d.resize(start + data.len(), 0);
        }
        d[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.data.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }
    async fn sync_data(&self) -> io::Result<()> {
        self.sync_data_now()
    }
    fn sync_data_now(&self) -> io::Result<()> {
        let d = self.data.lock().unwrap().clone();
        *self.durable.lock().unwrap() = d;
        Ok(())
    }
}

fn opts() -> BackendOptions {
    BackendOptions {
        batch_interval: Duration::from_secs(3600),
        batch_limit: 1000,
        cache_size_bytes: 1 << 20,
        ..BackendOptions::default()
    }
}

fn collect(b: &Backend, bucket: Bucket) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    b.for_each(bucket, &[], None, |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    out
}

#[tokio::test]
async fn reads_see_batch_and_commit_persists_with_consistent_index() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let path = db_path(dir.path());
    {
        let mut b = Backend::open(disk.clone(), &path, opts()).await.unwrap();
        assert_eq!(b.consistent_index(), (0, 0));
        b.put(Bucket::Key, b"a", b"1");
        b.put(Bucket::Lease, b"l", b"x");
        b.set_consistent_index(7, 2);
        assert_eq!(b.get(Bucket::Key, b"a").unwrap(), Some(b"1".to_vec()));
        assert!(
            !b.commit(false).unwrap(),
            "not due: interval 1h, limit 1000"
        );
        assert!(b.commit(true).unwrap());
        assert_eq!(b.durable_consistent_index(), (7, 2));
        assert!(b.is_durable(7) && !b.is_durable(8));
        // Not committed: lost on reopen without commit.
        b.put(Bucket::Key, b"b", b"2");
        b.set_consistent_index(8, 2);
        assert_eq!(b.consistent_index(), (8, 2));
    }
    let b = Backend::open(disk.clone(), &path, opts()).await.unwrap();
    assert_eq!(b.consistent_index(), (7, 2));
    assert_eq!(b.get(Bucket::Key, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(b.get(Bucket::Key, b"b").unwrap(), None);
    assert_eq!(b.get(Bucket::Lease, b"l").unwrap(), Some(b"x".to_vec()));
    assert!(b.size_bytes().unwrap() > 0);
    let in_use = b.size_in_use_bytes().unwrap();
    assert!(in_use > 0 && in_use <= b.size_bytes().unwrap());
}

#[tokio::test]
async fn batch_limit_makes_commit_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.batch_limit = 3;
    let mut b = Backend::open(Arc::new(RealDisk), &db_path(dir.path()), o)
        .await
        .unwrap();
    b.put(Bucket::Key, b"a", b"1");
    b.put(Bucket::Key, b"b", b"1");
    assert!(!b.commit(false).unwrap());
    b.put(Bucket::Key, b"c", b"1");
    assert!(b.commit(false).unwrap());
    assert_eq!(b.pending_ops(), 0);
    assert!(!b.commit(true).unwrap(), "nothing pending");
    assert_eq!(b.commit_count(), 1);
}

#[tokio::test]
async fn batch_interval_makes_commit_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.batch_interval = Duration::from_millis(200);
    let mut b = Backend::open(Arc::new(RealDisk), &db_path(dir.path()), o)
        .await
        .unwrap();
    b.put(Bucket::Key, b"a", b"1");
    assert!(!b.commit(false).unwrap());
    tokio::time::sleep(Duration::from_millis(210)).await;
    assert!(b.commit(false).unwrap());
}

#[tokio::test]
async fn merged_iteration_overlays_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Backend::open(Arc::new(RealDisk), &db_path(dir.path()), opts())
        .await
        .unwrap();
    for k in [b"a", b"c", b"e", b"g"] {
        b.put(Bucket::Key, k, b"old");
    }
    b.commit(true).unwrap();
    b.put(Bucket::Key, b"b", b"new");
    b.delete(Bucket::Key, b"c");
    b.put(Bucket::Key, b"e", b"new");
    b.put(Bucket::Key, b"h", b"new");
    let all: Vec<_> = collect(&b, Bucket::Key)
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )
        })
        .collect();
    assert_eq!(all, ["a=old", "b=new", "e=new", "g=old", "h=new"]);
    let mut part = Vec::new();
    b.for_each(Bucket::Key, b"b", Some(b"g"), |k, _| {
        part.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(part, [b"b".to_vec(), b"e".to_vec()]);
    let mut first = Vec::new();
    b.for_each(Bucket::Key, b"", None, |k, _| {
        first.push(k.to_vec());
        first.len() < 2
    })
    .unwrap();
    assert_eq!(first.len(), 2);
    assert!(collect(&b, Bucket::Alarm).is_empty());
    b.for_each(Bucket::Key, b"z", Some(b"a"), |_, _| {
        panic!("inverted range")
    })
    .unwrap();
}

#[tokio::test]
async fn crash_keeps_last_durable_commit_only() {
    let disk = Arc::new(CrashDisk::default());
    let path = PathBuf::from("/d/member/snap/db");
    let mut b = Backend::open(disk.clone(), &path, opts()).await.unwrap();
    b.put(Bucket::Key, b"k1", b"v1");
    b.set_consistent_index(5, 1);
    b.commit(true).unwrap();
    b.put(Bucket::Key, b"k2", b"v2");
    b.set_consistent_index(9, 1);
    let crashed = disk.crash();
    let r = Backend::open(crashed, &path, opts()).await.unwrap();
    assert_eq!(r.consistent_index(), (5, 1));
    assert_eq!(r.get(Bucket::Key, b"k1").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(r.get(Bucket::Key, b"k2").unwrap(), None);

    b.commit(true).unwrap();
    let crashed = disk.crash();
    let r = Backend::open(crashed, &path, opts()).await.unwrap();
    assert_eq!(r.consistent_index(), (9, 1));
    assert_eq!(r.get(Bucket::Key, b"k2").unwrap(), Some(b"v2".to_vec()));
}

#[tokio::test]
async fn snapshot_round_trip_replaces_everything() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let mut src = Backend::open(disk.clone(), &dir.path().join("a/db"), opts())
        .await
        .unwrap();
    src.put(Bucket::Key, b"k", b"v");
    src.commit(true).unwrap();
    src.put(Bucket::Members, b"m1", b"{}");
    src.set_consistent_index(42, 3);
    let snap = src.snapshot_data().unwrap();
    assert_eq!(src.snapshot_index(&snap).unwrap(), (42, 3));

    let mut dst = Backend::open(disk.clone(), &dir.path().join("b/db"), opts())
        .await
        .unwrap();
    dst.put(Bucket::Key, b"stale", b"x");
    dst.commit(true).unwrap();
    dst.put(Bucket::Key, b"stale2", b"x");
    let err = dst.restore_snapshot(&snap, 43).unwrap_err();
    assert!(
        err.to_string().contains("below the raft snapshot index"),
        "{err}"
    );
    assert_eq!(dst.restore_snapshot(&snap, 40).unwrap(), (42, 3));
    assert_eq!(collect(&dst, Bucket::Key), [(b"k".to_vec(), b"v".to_vec())]);
    assert_eq!(
        dst.get(Bucket::Members, b"m1").unwrap(),
        Some(b"{}".to_vec())
    );
    assert_eq!(dst.durable_consistent_index(), (42, 3));
    drop(dst);
    let dst = Backend::open(disk.clone(), &dir.path().join("b/db"), opts())
        .await
        .unwrap();
    assert_eq!(dst.consistent_index(), (42, 3));
    assert_eq!(collect(&dst, Bucket::Key).len(), 1);

    let mut bad = snap.clone();
    bad[40] ^= 1;
    let mut dst = dst;
    let err = dst.restore_snapshot(&bad, 0).unwrap_err();
    assert!(matches!(err, BackendError::InvalidSnapshot { .. }), "{err}");
}

#[tokio::test]
async fn garbage_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let path = dir.path().join("db");
    let f = disk.open(&path, OpenMode::CreateNew).unwrap();
    f.write_at(0, &[0xAB; 8192]).unwrap();
    let err = Backend::open(disk, &path, opts()).await.unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn flipped_bytes_with_verify_are_an_error_not_a_panic() {
    let disk = Arc::new(CrashDisk::default());
    let path = PathBuf::from("/x/db");
    let mut b = Backend::open(disk.clone(), &path, opts()).await.unwrap();
    for i in 0..200u32 {
        b.put(Bucket::Key, &i.to_be_bytes(), &[7u8; 100]);
    }
    b.commit(true).unwrap();
    drop(b);
    let f = disk.file(&path).unwrap();
    let len = f.len_now();
    // Damage every page past the header region (the data pages of the committed trees).
    for off in (4096..len).step_by(4096) {
        f.flip_byte(off + 100);
    }
    let mut o = opts();
    o.verify_on_open = true;
    let res = Backend::open(disk.clone(), &path, o).await;
    let err = res.unwrap_err();
    assert!(err.to_string().contains("/x/db"), "{err}");
}

/// Bytes that change under an open database (bit rot, a bad read) are an error naming the
/// file and the offset, from reads and from commits — never a redb panic.
#[tokio::test]
async fn blocks_damaged_after_open_are_errors_naming_file_and_offset() {
    let disk = Arc::new(CrashDisk::default());
    let path = PathBuf::from("/x/db");
    let mut o = opts();
    o.cache_size_bytes = 0; // every read goes to the file
    let mut b = Backend::open(disk.clone(), &path, o).await.unwrap();
    for i in 0..2000u32 {
        b.put(Bucket::Key, &i.to_be_bytes(), &[7u8; 100]);
    }
    b.commit(true).unwrap();
    let f = disk.file(&path).unwrap();
    for off in (4096..f.len_now()).step_by(4096) {
        f.flip_byte(off + 100);
    }
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.for_each(Bucket::Key, &[], None, |_, _| true)
    }))
    .expect("no panic");
    let err = read.expect_err("damaged pages must not be read as data");
    let text = err.to_string();
    assert!(
        text.contains("/x/db: block at offset") && text.contains("changed under the database"),
        "{text}"
    );
    b.put(Bucket::Key, b"zz", b"1");
    let commit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.commit(true)))
        .expect("no panic");
    assert!(commit.is_err(), "{commit:?}");
}
