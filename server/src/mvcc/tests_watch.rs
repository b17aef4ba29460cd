//! The watchable store's catch-up of unsynced watchers (etcd's syncWatchers) around
//! compaction.

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
