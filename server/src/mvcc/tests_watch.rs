//! The watchable store's catch-up of unsynced watchers (etcd's syncWatchers) around
//! compaction, and progress notifications.

use super::tests::{open_store, put};
use super::watchable::{KeyRange, WatchHub};
use etcd_api::etcdserverpb as pb;
use tokio::sync::mpsc;

fn everything() -> KeyRange {
    KeyRange {
        key: vec![0],
        range_end: vec![0],
    }
}

/// A watcher behind the compaction is canceled with the compact revision; one that starts at
/// or after it still gets every event from its start — the compacted one must not make the
/// catch-up round skip them (the simulator's compaction-under-watch scenario found this).
#[tokio::test]
async fn a_compacted_watcher_does_not_make_others_skip_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    for i in 0..10 {
        put(&mut s, &format!("k{i}"), "v"); // revisions 2..=11
    }
    s.compact(&pb::CompactionRequest {
        revision: 6,
        physical: true,
    })
    .unwrap();
    let hub = WatchHub::default();
    let stream = hub.new_stream();
    let (old_tx, mut old_rx) = mpsc::channel(16);
    let (new_tx, mut new_rx) = mpsc::channel(16);
    hub.add(&s, stream, 1, everything(), 3, old_tx);
    hub.add(&s, stream, 2, everything(), 6, new_tx);
    hub.sync(&s).unwrap();

    let canceled = old_rx.try_recv().expect("the compacted watcher hears why");
    assert_eq!(canceled.compact_revision, 6);
    assert!(canceled.events.is_empty());

    let mut revs = Vec::new();
    while let Ok(b) = new_rx.try_recv() {
        assert_eq!(b.compact_revision, 0);
        revs.extend(
            b.events
                .iter()
                .filter_map(|e| e.kv.as_ref())
                .map(|kv| kv.mod_revision),
        );
    }
    assert_eq!(revs, (6..=11).collect::<Vec<i64>>());
}

/// etcd's TestWatchNoEventLossOnCompact (etcd 17529): on a stream whose queue holds one batch,
/// two watchers start before the compaction and one after. The second compacted watcher's
/// response finds the queue full: it must be told later, not brought to the round's revisions.
/// Under the `compacted-watcher-skips-ahead` defect it is, and it gets events it should not.
#[tokio::test]
async fn a_compacted_watcher_finding_its_queue_full_is_told_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    for i in 0..10 {
        put(&mut s, "foo", &format!("v{i}")); // revisions 2..=11
    }
    s.compact(&pb::CompactionRequest {
        revision: 5,
        physical: true,
    })
    .unwrap();
    let serve = |hub: WatchHub| {
        let stream = hub.new_stream();
        let (tx, mut rx) = mpsc::channel(1);
        for (id, start) in [(0, 1), (1, 1), (2, 6)] {
            hub.add(&s, stream, id, everything(), start, tx.clone());
        }
        // Each round fills the one-batch queue; the client then takes that batch.
        let mut got = Vec::new();
        for _ in 0..10 {
            hub.sync(&s).unwrap();
            while let Ok(b) = rx.try_recv() {
                let first = b.events.first().and_then(|e| e.kv.as_ref());
                got.push((
                    b.watch_id,
                    b.compact_revision,
                    first.map(|kv| kv.mod_revision),
                ));
            }
        }
        got
    };
    let fixed = serve(WatchHub::default());
    assert_eq!(
        fixed,
        vec![(0, 5, None), (1, 5, None), (2, 0, Some(6))],
        "both compacted watchers are canceled, the third gets every event from 6"
    );
    let defect = super::watchable::HubDefects {
        compacted_watcher_skips_ahead: true,
        ..Default::default()
    };
    let skipped = serve(WatchHub::with_defects(defect));
    assert!(
        skipped.contains(&(1, 0, Some(6))),
        "the defect serves the compacted watcher from revision 6 instead: {skipped:?}"
    );
}

/// A progress notification is queued behind the events already on their way to the stream
/// (etcd 15220: it was sent around them and overtook them), and carries the store's revision.
#[tokio::test]
async fn progress_is_queued_behind_pending_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    let hub = WatchHub::default();
    let stream = hub.new_stream();
    let (tx, mut rx) = mpsc::channel(16);
    hub.add(&s, stream, 7, everything(), 0, tx);
    s.record_events(true);
    let rev = put(&mut s, "a", "1");
    hub.notify(rev, &s.take_events());
    assert!(hub.request_progress(&s, stream, None, -1));
    let events = rx.try_recv().expect("the event batch");
    assert!(!events.progress);
    assert_eq!(events.revision, rev);
    let progress = rx.try_recv().expect("then the progress notification");
    assert!(progress.progress && progress.events.is_empty());
    assert_eq!((progress.watch_id, progress.revision), (-1, rev));
}

/// No progress while a watcher is unsynced, nor while the store is below a watcher's start
/// revision (etcd 20221: a client resuming after such a notification asks for revisions
/// before the one it wanted); a stream without watchers gets nothing.
#[tokio::test]
async fn no_progress_while_unsynced_or_before_a_future_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    for i in 0..3 {
        put(&mut s, &format!("k{i}"), "v"); // revisions 2..=4
    }
    let hub = WatchHub::default();
    let empty = hub.new_stream();
    assert!(hub.request_progress(&s, empty, None, -1));

    let behind = hub.new_stream();
    let (tx, mut rx) = mpsc::channel(16);
    hub.add(&s, behind, 1, everything(), 2, tx);
    assert!(!hub.request_progress(&s, behind, None, -1));
    hub.sync(&s).unwrap();
    assert_eq!(rx.try_recv().map(|b| b.progress).ok(), Some(false));
    assert!(hub.request_progress(&s, behind, Some(1), 1));
    let p = rx.try_recv().expect("progress once caught up");
    assert!(p.progress && p.revision == 4 && p.watch_id == 1);

    let future = hub.new_stream();
    let (tx, mut rx) = mpsc::channel(16);
    hub.add(&s, future, 1, everything(), 6, tx);
    assert!(!hub.request_progress(&s, future, None, -1));
    assert!(rx.try_recv().is_err());
    put(&mut s, "k5", "v"); // revision 5: still before the start
    assert!(!hub.request_progress(&s, future, None, -1));
    put(&mut s, "k6", "v"); // 6: reached (the watcher's own event batch is not sent here)
    assert!(hub.request_progress(&s, future, None, -1));
    assert_eq!(
        rx.try_recv().map(|b| (b.progress, b.revision)).ok(),
        Some((true, 6))
    );
}

/// After a snapshot from the leader every watcher goes through a catch-up round; one waiting
/// for a future revision keeps its start and gets only the events from there (etcd's
/// `TestWatchRestore` "future revision" case). etcd 20221's defect, where the round sets every
/// watcher to the store's revision, hands it the events before its start.
#[tokio::test]
async fn a_future_watcher_keeps_its_start_through_a_restore() {
    let serve = |hub: WatchHub| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open_store(dir.path()).await;
        put(&mut s, "k", "v"); // revision 2
        let stream = hub.new_stream();
        let (tx, mut rx) = mpsc::channel(16);
        hub.add(&s, stream, 1, everything(), 5, tx);
        hub.unsync_all(); // what applying a snapshot from the leader does
        hub.sync(&s).unwrap();
        s.record_events(true);
        let mut got = Vec::new();
        for i in 3..=6 {
            let rev = put(&mut s, &format!("k{i}"), "v");
            hub.notify(rev, &s.take_events());
            while let Ok(b) = rx.try_recv() {
                got.extend(
                    b.events
                        .iter()
                        .filter_map(|e| e.kv.as_ref())
                        .map(|kv| kv.mod_revision),
                );
            }
        }
        got
    };
    assert_eq!(serve(WatchHub::default()).await, vec![5, 6]);
    let defect = super::watchable::HubDefects {
        restore_lowers_future_watchers: true,
        ..Default::default()
    };
    assert_eq!(
        serve(WatchHub::with_defects(defect)).await,
        vec![3, 4, 5, 6],
        "the defect lowers the watcher to the store's revision"
    );
}
