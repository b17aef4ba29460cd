//! Batch commits on an offload thread: reads see the new batch over the batch being written
//! over the database, durability advances only when the write is done, and a forced commit
//! waits for it.

use super::*;
use crate::seam::real::{RealDisk, ThreadOffload};
use std::sync::Mutex;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Holds jobs until released, so a test can look at the backend while a commit is in flight.
#[derive(Default)]
struct Held(Mutex<Vec<Job>>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

impl Offload for Held {
    fn run(&self, job: Job) {
        self.0.lock().unwrap().push(job);
    }
}

impl Held {
    fn release(&self) {
        let jobs: Vec<Job> = self.0.lock().unwrap().drain(..).collect();
        for j in jobs {
            j();
        }
    }
}

fn opts() -> BackendOptions {
    BackendOptions {
        batch_interval: Duration::from_secs(3600),
        cache_size_bytes: 1 << 20,
        ..BackendOptions::default()
    }
}

fn all(b: &Backend) -> Vec<String> {
    let mut out = Vec::new();
    b.for_each(Bucket::Key, &[], None, |k, v| {
        out.push(format!(
            "{}={}",
            String::from_utf8_lossy(k),
            String::from_utf8_lossy(v)
        ));
        true
    })
    .unwrap();
    out
}

#[tokio::test]
async fn reads_layer_the_new_batch_over_the_one_in_flight_over_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let path = db_path(dir.path());
    let held = Arc::new(Held::default());
    let mut b = Backend::open(disk.clone(), &path, opts()).await.unwrap();
    b.set_offload(Some(held.clone()));
    for k in ["a", "c", "e", "g"] {
        b.put(Bucket::Key, k.as_bytes(), b"old");
    }
    b.set_consistent_index(5, 1);
    b.commit(true).unwrap();

    b.put(Bucket::Key, b"b", b"mid");
    b.delete(Bucket::Key, b"c");
    b.put(Bucket::Key, b"e", b"mid");
    b.set_consistent_index(6, 1);
    assert!(
        b.commit_batch(true).unwrap(),
        "the batch goes to the offload"
    );
    b.put(Bucket::Key, b"c", b"new");
    b.put(Bucket::Key, b"e", b"new");
    b.put(Bucket::Key, b"h", b"new");
    b.set_consistent_index(7, 1);

    let expected = ["a=old", "b=mid", "c=new", "e=new", "g=old", "h=new"];
    assert_eq!(all(&b), expected);
    assert_eq!(b.get(Bucket::Key, b"b").unwrap(), Some(b"mid".to_vec()));
    assert_eq!(b.durable_consistent_index(), (5, 1), "not written yet");
    assert!(
        !b.commit_batch(true).unwrap(),
        "one batch in flight at a time"
    );

    held.release();
    assert!(b.commit_batch(false).is_ok());
    assert_eq!(b.durable_consistent_index(), (6, 1));
    assert_eq!(all(&b), expected);
    assert!(b.commit(true).unwrap());
    assert_eq!(b.durable_consistent_index(), (7, 1));
    drop(b);

    let b = Backend::open(disk, &path, opts()).await.unwrap();
    assert_eq!(all(&b), expected);
    assert_eq!(b.consistent_index(), (7, 1));
}

#[tokio::test]
async fn a_forced_commit_and_defragmentation_wait_for_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let path = db_path(dir.path());
    let mut b = Backend::open(disk.clone(), &path, opts()).await.unwrap();
    b.set_offload(Some(Arc::new(ThreadOffload::new())));
    for round in 0..50u64 {
        for k in 0..20u64 {
            b.put(
                Bucket::Key,
                format!("k{k:02}").as_bytes(),
                &round.to_be_bytes(),
            );
        }
        b.set_consistent_index(round + 1, 1);
        b.commit_batch(true).unwrap();
        if round % 10 == 9 {
            b.defragment().unwrap();
        }
    }
    b.commit(true).unwrap();
    assert_eq!(b.durable_consistent_index(), (50, 1));
    drop(b);
    let b = Backend::open(disk, &path, opts()).await.unwrap();
    assert_eq!(b.consistent_index(), (50, 1));
    assert_eq!(
        b.get(Bucket::Key, b"k07").unwrap(),
        Some(49u64.to_be_bytes().to_vec())
    );
}
