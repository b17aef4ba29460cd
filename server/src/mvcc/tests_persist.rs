//! Persistence: commit + reopen, crash before commit, raft snapshot round trip, determinism.

use super::tests::{del, get, get_req, put};
use super::*;
use crate::backend::tests::CrashDisk;
use crate::seam::real::RealDisk;
use crate::seam::Disk;
use etcd_api::etcdserverpb as pb;
use std::path::{Path, PathBuf};
use std::sync::Arc;

async fn open_on(disk: Arc<dyn Disk>, path: &Path) -> Store {
    Store::open(
        disk,
        path,
        BackendOptions::default(),
        super::StoreDefects::default(),
    )
    .await
    .unwrap()
}

/// A deterministic workload: puts, overwrites, deletes, a txn, a compaction.
fn workload(s: &mut Store, first_index: u64) {
    let mut index = first_index;
    let mut step = |s: &mut Store| {
        index += 1;
        s.set_consistent_index(index, 2);
    };
    for i in 0..20 {
        put(s, &format!("k{:02}", i % 7), &format!("v{i}"));
        step(s);
        if i % 5 == 4 {
            del(s, &format!("k{:02}", i % 3), "");
            step(s);
        }
    }
    s.compact(&pb::CompactionRequest {
        revision: 12,
        physical: true,
    })
    .unwrap();
    step(s);
    put(s, "after", "compaction");
    step(s);
}

/// Everything a client can observe: every readable revision's full range, and the marks.
fn observe(s: &Store) -> (i64, i64, Vec<Result<pb::RangeResponse, String>>) {
    let mut views = Vec::new();
    for rev in 0..=s.current_revision() + 1 {
        let r = s.range(&pb::RangeRequest {
            revision: rev,
            ..get_req("\0", "\0")
        });
        views.push(r.map_err(|e| e.to_string()));
    }
    (s.current_revision(), s.compact_revision(), views)
}

#[tokio::test]
async fn committed_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::backend::db_path(dir.path());
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let before = {
        let mut s = open_on(disk.clone(), &path).await;
        workload(&mut s, 0);
        s.commit(true).unwrap();
        assert_eq!(s.durable_consistent_index(), s.consistent_index());
        (observe(&s), s.consistent_index(), s.hash_kv(0).unwrap())
    };
    let s = open_on(disk.clone(), &path).await;
    assert_eq!(observe(&s), before.0);
    assert_eq!(s.consistent_index(), before.1);
    assert_eq!(s.consistent_term(), 2);
    assert_eq!(s.hash_kv(0).unwrap(), before.2);
    assert_eq!(s.compact_revision(), 12);
    assert!(s.db_size() > 0 && s.db_size_in_use() > 0);
}

#[tokio::test]
async fn crash_loses_only_the_uncommitted_batch() {
    let disk = Arc::new(CrashDisk::default());
    let path = PathBuf::from("/data/member/snap/db");
    let mut s = open_on(disk.clone(), &path).await;
    put(&mut s, "a", "1"); // rev 2
    s.set_consistent_index(5, 1);
    s.commit(true).unwrap();
    let durable = observe(&s);
    put(&mut s, "b", "1"); // rev 3, applied but not committed
    del(&mut s, "a", "");
    s.set_consistent_index(7, 1);
    s.compact(&pb::CompactionRequest {
        revision: 3,
        physical: true,
    })
    .unwrap();
    s.commit(false).unwrap(); // not due: the default interval is 100 ms of tokio time
    assert_eq!(s.consistent_index(), 7);
    assert_eq!(s.durable_consistent_index(), 5);

    let r = open_on(disk.crash(), &path).await;
    assert_eq!(r.consistent_index(), 5, "matches exactly what survived");
    assert_eq!(observe(&r), durable);
    assert!(get(&r, "b").is_none());
    assert_eq!(get(&r, "a").unwrap().value, b"1");

    // Replaying entries 6..7 (as the WAL would) reaches the same state as before the crash.
    let mut r = r;
    put(&mut r, "b", "1");
    del(&mut r, "a", "");
    r.set_consistent_index(7, 1);
    r.compact(&pb::CompactionRequest {
        revision: 3,
        physical: true,
    })
    .unwrap();
    assert_eq!(observe(&r), observe(&s));
    assert_eq!(r.hash_kv(0).unwrap(), s.hash_kv(0).unwrap());
}

/// A store that ran `writes` (durably), compacted at the revision they return, and crashed
/// right after the compaction (its batch not committed), reopened; with the revision.
async fn crashed_in_compaction(
    defects: StoreDefects,
    writes: impl FnOnce(&mut Store) -> i64,
) -> (Store, i64) {
    let disk = Arc::new(CrashDisk::default());
    let path = PathBuf::from("/data/member/snap/db");
    let mut s = Store::open(disk.clone(), &path, BackendOptions::default(), defects)
        .await
        .unwrap();
    let revision = writes(&mut s);
    s.set_consistent_index(100, 1);
    s.commit(true).unwrap();
    s.compact(&pb::CompactionRequest {
        revision,
        physical: true,
    })
    .unwrap();
    let r = Store::open(disk.crash(), &path, BackendOptions::default(), defects)
        .await
        .unwrap();
    (r, revision)
}

/// etcd 19179's mechanism: killed between a compaction's deletions and its finished mark (the
/// window of etcd's batched compaction), a member resumes the compaction at start-up. The
/// fixed restore indexes the key whose only stored revision is its deletion at the compact
/// revision, so the resumed compaction keeps that tombstone and a watch from there sees the
/// delete; the 3.5.17 restore does not, and the tombstone is deleted.
#[tokio::test]
async fn a_compaction_resumed_after_a_crash_keeps_the_tombstone_at_its_revision() {
    async fn resumed(defects: StoreDefects) -> (i64, usize) {
        let (r, deleted_at) = crashed_in_compaction(defects, |s| {
            put(s, "a", "1"); // rev 2
            put(s, "b", "1"); // rev 3
            del(s, "a", "").1 // rev 4: a's tombstone
        })
        .await;
        let (events, _) =
            crate::mvcc::history::events_between(r.backend(), deleted_at, deleted_at + 1, 10)
                .unwrap();
        (r.compact_revision(), events.len())
    }
    let window = StoreDefects {
        compaction_commits_before_finish: true,
        ..StoreDefects::default()
    };
    assert_eq!(
        resumed(window).await,
        (4, 1),
        "fixed: the delete at 4 is kept"
    );
    let etcd_3_5_17 = StoreDefects {
        restore_skips_tombstone_only_keys: true,
        ..window
    };
    assert_eq!(
        resumed(etcd_3_5_17).await,
        (4, 0),
        "3.5.17: the delete at 4 is gone"
    );
    assert_eq!(
        resumed(StoreDefects::default()).await,
        (-1, 1),
        "one batch: the crash loses the whole compaction"
    );
}

/// etcd 17780's mechanism: a compaction at the newest revision, a delete whose tombstone the
/// 3.5.13 compaction removes, and a crash between its deletions and its finished mark. The
/// fixed restore (3.5.14) takes the store revision up to the scheduled compaction; the 3.5.13
/// restore comes back two revisions short, refuses to resume the compaction (a future
/// revision) and would hand those revisions out again.
#[tokio::test]
async fn a_crash_in_a_compaction_of_the_newest_delete_keeps_the_revision() {
    async fn restored(defects: StoreDefects) -> Store {
        let (r, _) = crashed_in_compaction(defects, |s| {
            put(s, "a", "1"); // rev 2
            del(s, "a", "").1 // rev 3, the newest
        })
        .await;
        r
    }
    let fixed = StoreDefects {
        drop_tombstone_at_compaction: true,
        compaction_commits_before_finish: true,
        ..StoreDefects::default()
    };
    let r = restored(fixed).await;
    assert_eq!(
        (r.current_revision(), r.compact_revision()),
        (3, 3),
        "fixed: the revision and the resumed compaction"
    );
    let buggy = StoreDefects {
        restore_ignores_scheduled_compaction: true,
        ..fixed
    };
    let r = restored(buggy).await;
    assert_eq!(
        (r.current_revision(), r.compact_revision()),
        (1, -1),
        "3.5.13: both of a's revisions are gone, the store revision went back to 1 and the \
         compaction at 3 was not resumed"
    );
    assert!(
        get(&r, "a").is_none(),
        "reads go on at the lowered revision"
    );
}

#[tokio::test]
async fn snapshot_round_trip_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let mut leader = open_on(disk.clone(), &dir.path().join("l/db")).await;
    workload(&mut leader, 0);
    let index = leader.consistent_index();
    let data = leader.snapshot_data().unwrap(); // includes the uncommitted batch

    let fpath = dir.path().join("f/db");
    let mut follower = open_on(disk.clone(), &fpath).await;
    put(&mut follower, "stale", "x");
    follower.set_consistent_index(3, 1);
    follower.commit(true).unwrap();
    let e = follower.restore_snapshot(&data, index + 1, 2).unwrap_err();
    assert!(
        e.to_string().contains("below the raft snapshot index"),
        "{e}"
    );
    follower.restore_snapshot(&data, index, 2).unwrap();
    assert_eq!(observe(&follower), observe(&leader));
    assert_eq!(follower.consistent_index(), index);
    assert_eq!(
        follower.durable_consistent_index(),
        index,
        "restore is durable"
    );
    assert_eq!(follower.hash_kv(0).unwrap(), leader.hash_kv(0).unwrap());
    assert!(get(&follower, "stale").is_none());

    // The follower keeps working from there, identically to the leader.
    put(&mut follower, "next", "1");
    put(&mut leader, "next", "1");
    assert_eq!(observe(&follower), observe(&leader));
    drop(follower);
    let reopened = open_on(disk.clone(), &fpath).await;
    assert_eq!(reopened.consistent_index(), index);
    assert!(
        get(&reopened, "next").is_none(),
        "not committed after restore"
    );
    assert_eq!(get(&reopened, "after").unwrap().value, b"compaction");

    let mut bad = data.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x10;
    let mut r = reopened;
    assert!(r.restore_snapshot(&bad, 0, 0).is_err());
    assert_eq!(
        get(&r, "after").unwrap().value,
        b"compaction",
        "a bad snapshot changes nothing"
    );
}

#[tokio::test]
async fn same_entries_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let mut a = open_on(disk.clone(), &dir.path().join("a/db")).await;
    let mut b = open_on(disk.clone(), &dir.path().join("b/db")).await;
    workload(&mut a, 0);
    workload(&mut b, 0);
    b.commit(true).unwrap(); // commit timing must not matter
    assert_eq!(a.snapshot_data().unwrap(), b.snapshot_data().unwrap());
    assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
    assert_eq!(observe(&a), observe(&b));
}
