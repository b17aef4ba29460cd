//! KV semantics: revisions, versions, ranges and their options, compaction errors.

use super::consts::{sort_order, sort_target};
use super::*;
use crate::seam::real::RealDisk;
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;
use std::sync::Arc;

pub(super) async fn open_store(dir: &std::path::Path) -> Store {
    Store::open(
        Arc::new(RealDisk),
        &crate::backend::db_path(dir),
        BackendOptions::default(),
        super::StoreDefects::default(),
    )
    .await
    .unwrap()
}

pub(super) fn put_req(k: &str, v: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

pub(super) fn put(s: &mut Store, k: &str, v: &str) -> i64 {
    s.put(&put_req(k, v)).unwrap().header.unwrap().revision
}

pub(super) fn get_req(k: &str, end: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

pub(super) fn get(s: &Store, k: &str) -> Option<mvccpb::KeyValue> {
    s.range(&get_req(k, "")).unwrap().kvs.into_iter().next()
}

pub(super) fn keys(kvs: &[mvccpb::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

pub(super) fn del(s: &mut Store, k: &str, end: &str) -> (i64, i64) {
    let r = s
        .delete_range(&pb::DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })
        .unwrap();
    (r.deleted, r.header.unwrap().revision)
}

#[tokio::test]
async fn put_get_revisions_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    assert_eq!(s.current_revision(), 1, "etcd starts at revision 1");
    assert_eq!(s.compact_revision(), -1);
    let r = s.range(&get_req("a", "")).unwrap();
    assert_eq!(r.header.unwrap().revision, 1);
    assert!(r.kvs.is_empty() && r.count == 0 && !r.more);

    assert_eq!(put(&mut s, "a", "1"), 2);
    assert_eq!(put(&mut s, "b", "1"), 3);
    assert_eq!(put(&mut s, "a", "2"), 4);
    let a = get(&s, "a").unwrap();
    assert_eq!(
        (
            a.create_revision,
            a.mod_revision,
            a.version,
            a.value.as_slice()
        ),
        (2, 4, 2, &b"2"[..])
    );
    // Delete resets the version; re-create starts a new generation.
    assert_eq!(del(&mut s, "a", ""), (1, 5));
    assert!(get(&s, "a").is_none());
    assert_eq!(put(&mut s, "a", "3"), 6);
    let a = get(&s, "a").unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (6, 6, 1));
    // Deleting nothing does not bump the revision.
    assert_eq!(del(&mut s, "zzz", ""), (0, 6));
    assert_eq!(s.current_revision(), 6);
    // History.
    let old = s
        .range(&pb::RangeRequest {
            revision: 4,
            ..get_req("a", "")
        })
        .unwrap();
    assert_eq!(old.kvs[0].value, b"2");
    assert_eq!(
        old.header.unwrap().revision,
        6,
        "header is the current revision"
    );
    let gone = s
        .range(&pb::RangeRequest {
            revision: 5,
            ..get_req("a", "")
        })
        .unwrap();
    assert!(gone.kvs.is_empty());
}

#[tokio::test]
async fn put_prev_kv_ignore_value_ignore_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    let r = s
        .put(&pb::PutRequest {
            prev_kv: true,
            lease: 7,
            ..put_req("k", "v1")
        })
        .unwrap();
    assert!(r.prev_kv.is_none());
    let r = s
        .put(&pb::PutRequest {
            prev_kv: true,
            ..put_req("k", "v2")
        })
        .unwrap();
    let prev = r.prev_kv.unwrap();
    assert_eq!(
        (prev.value.as_slice(), prev.lease, prev.version),
        (&b"v1"[..], 7, 1)
    );

    // ignore_value keeps the value, takes the new lease.
    s.put(&pb::PutRequest {
        ignore_value: true,
        lease: 9,
        ..put_req("k", "")
    })
    .unwrap();
    let kv = get(&s, "k").unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v2"[..], 9, 3)
    );
    // ignore_lease keeps the lease.
    s.put(&pb::PutRequest {
        ignore_lease: true,
        ..put_req("k", "v4")
    })
    .unwrap();
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"v4"[..], 9));

    let rev = s.current_revision();
    let e = s
        .put(&pb::PutRequest {
            ignore_value: true,
            ..put_req("missing", "")
        })
        .unwrap_err();
    assert!(matches!(e, MvccError::KeyNotFound));
    assert_eq!(e.to_status().code(), tonic::Code::InvalidArgument);
    assert_eq!(e.to_status().message(), "etcdserver: key not found");
    let e = s
        .put(&pb::PutRequest {
            ignore_value: true,
            ..put_req("k", "x")
        })
        .unwrap_err();
    assert_eq!(e.to_status().message(), "etcdserver: value is provided");
    let e = s
        .put(&pb::PutRequest {
            ignore_lease: true,
            lease: 3,
            ..put_req("k", "x")
        })
        .unwrap_err();
    assert_eq!(e.to_status().message(), "etcdserver: lease is provided");
    assert_eq!(s.current_revision(), rev, "failed puts change nothing");

    // Lease hook.
    s.set_lease_checker(Box::new(|id| id == 9));
    let e = s
        .put(&pb::PutRequest {
            lease: 10,
            ..put_req("k", "x")
        })
        .unwrap_err();
    assert_eq!(e.to_status().code(), tonic::Code::NotFound);
    assert_eq!(
        e.to_status().message(),
        "etcdserver: requested lease not found"
    );
    s.put(&pb::PutRequest {
        lease: 9,
        ..put_req("k", "x")
    })
    .unwrap();
}

#[tokio::test]
async fn delete_range_prefix_and_prev_kvs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    for k in ["a", "b/1", "b/2", "b/3", "c"] {
        put(&mut s, k, k);
    }
    let r = s
        .delete_range(&pb::DeleteRangeRequest {
            key: "b/".into(),
            range_end: "b0".into(),
            prev_kv: true,
        })
        .unwrap();
    assert_eq!(r.deleted, 3);
    assert_eq!(keys(&r.prev_kvs), ["b/1", "b/2", "b/3"]);
    assert_eq!(r.header.unwrap().revision, 7);
    // All three deletes share one revision, with sub revisions 0..3.
    let all = s.range(&get_req("\0", "\0")).unwrap();
    assert_eq!(keys(&all.kvs), ["a", "c"]);
    assert_eq!(
        del(&mut s, "b", "\0"),
        (1, 8),
        "from-key range end deletes c"
    );
    assert_eq!(keys(&s.range(&get_req("\0", "\0")).unwrap().kvs), ["a"]);
}

#[tokio::test]
async fn range_limit_more_count_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    for k in ["foo", "foo/a", "foo/b", "foo/c", "fop", "g"] {
        put(&mut s, k, k);
    }
    let prefix = get_req("foo/", "foo0");
    let r = s.range(&prefix).unwrap();
    assert_eq!(keys(&r.kvs), ["foo/a", "foo/b", "foo/c"]);
    assert_eq!((r.count, r.more), (3, false));

    let r = s
        .range(&pb::RangeRequest {
            limit: 2,
            ..prefix.clone()
        })
        .unwrap();
    assert_eq!(keys(&r.kvs), ["foo/a", "foo/b"]);
    assert_eq!((r.count, r.more), (3, true));
    let r = s
        .range(&pb::RangeRequest {
            limit: 3,
            ..prefix.clone()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (3, 3, false));

    let r = s
        .range(&pb::RangeRequest {
            count_only: true,
            ..get_req("f", "\0")
        })
        .unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!((r.count, r.more), (6, false));

    let r = s
        .range(&pb::RangeRequest {
            keys_only: true,
            ..get_req("fop", "\0")
        })
        .unwrap();
    assert_eq!(keys(&r.kvs), ["fop", "g"]);
    assert!(r
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.version == 1));

    // Range end at or below the key: nothing.
    assert!(s.range(&get_req("g", "a")).unwrap().kvs.is_empty());
    assert!(s.range(&get_req("g", "g")).unwrap().kvs.is_empty());
    // Everything.
    assert_eq!(s.range(&get_req("\0", "\0")).unwrap().count, 6);
}

#[tokio::test]
async fn range_sort_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "z"); // 2
    put(&mut s, "b", "y"); // 3
    put(&mut s, "c", "x"); // 4
    put(&mut s, "a", "w"); // 5: a mod 5, version 2
    let all = || get_req("a", "d");
    let sorted = |order, target| {
        let r = s
            .range(&pb::RangeRequest {
                sort_order: order,
                sort_target: target,
                ..all()
            })
            .unwrap();
        keys(&r.kvs)
    };
    assert_eq!(
        sorted(sort_order::DESCEND, sort_target::KEY),
        ["c", "b", "a"]
    );
    assert_eq!(
        sorted(sort_order::ASCEND, sort_target::MOD),
        ["b", "c", "a"]
    );
    assert_eq!(
        sorted(sort_order::DESCEND, sort_target::MOD),
        ["a", "c", "b"]
    );
    // Target other than KEY with order NONE sorts ascending.
    assert_eq!(
        sorted(sort_order::NONE, sort_target::VALUE),
        ["a", "c", "b"]
    );
    assert_eq!(
        sorted(sort_order::ASCEND, sort_target::CREATE),
        ["a", "b", "c"]
    );
    // Ties (version 1 for b and c) stay in key order.
    assert_eq!(
        sorted(sort_order::DESCEND, sort_target::VERSION),
        ["a", "b", "c"]
    );

    // Sorting happens before the limit.
    let r = s
        .range(&pb::RangeRequest {
            sort_order: sort_order::DESCEND,
            sort_target: sort_target::KEY,
            limit: 1,
            ..all()
        })
        .unwrap();
    assert_eq!(
        (keys(&r.kvs), r.count, r.more),
        (vec!["c".to_string()], 3, true)
    );

    let filt = |f: pb::RangeRequest| keys(&s.range(&f).unwrap().kvs);
    assert_eq!(
        filt(pb::RangeRequest {
            min_mod_revision: 4,
            ..all()
        }),
        ["a", "c"]
    );
    assert_eq!(
        filt(pb::RangeRequest {
            max_mod_revision: 3,
            ..all()
        }),
        ["b"]
    );
    assert_eq!(
        filt(pb::RangeRequest {
            min_create_revision: 3,
            ..all()
        }),
        ["b", "c"]
    );
    assert_eq!(
        filt(pb::RangeRequest {
            max_create_revision: 2,
            ..all()
        }),
        ["a"]
    );
    // Count ignores filters and limit.
    let r = s
        .range(&pb::RangeRequest {
            min_mod_revision: 5,
            limit: 1,
            ..all()
        })
        .unwrap();
    assert_eq!(
        (keys(&r.kvs), r.count, r.more),
        (vec!["a".to_string()], 3, false)
    );

    let e = s
        .range(&pb::RangeRequest {
            sort_target: 9,
            ..all()
        })
        .unwrap_err();
    assert_eq!(e.to_status().message(), "etcdserver: invalid sort option");
}

#[tokio::test]
async fn compaction_errors_and_physical_removal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "1"); // 4
    del(&mut s, "b", ""); // 5
    put(&mut s, "c", "1"); // 6
    put(&mut s, "a", "3"); // 7

    let compact = |s: &mut Store, rev| {
        s.compact(&pb::CompactionRequest {
            revision: rev,
            physical: true,
        })
    };
    let e = compact(&mut s, 8).unwrap_err();
    assert!(matches!(e, MvccError::FutureRev));
    assert_eq!(e.to_status().code(), tonic::Code::OutOfRange);
    assert_eq!(
        e.to_status().message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    let r = compact(&mut s, 5).unwrap();
    assert_eq!(r.header.unwrap().revision, 7);
    assert_eq!(s.compact_revision(), 5);
    assert_eq!(s.current_revision(), 7);
    let e = compact(&mut s, 5).unwrap_err();
    assert!(matches!(e, MvccError::Compacted));
    assert_eq!(
        e.to_status().message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert!(matches!(
        compact(&mut s, 3).unwrap_err(),
        MvccError::Compacted
    ));

    let at = |s: &Store, rev| {
        s.range(&pb::RangeRequest {
            revision: rev,
            ..get_req("\0", "\0")
        })
    };
    assert!(matches!(at(&s, 4).unwrap_err(), MvccError::Compacted));
    assert!(matches!(at(&s, 8).unwrap_err(), MvccError::FutureRev));
    // At the compaction revision the state is intact: a@3 (version 2), c not yet, b deleted.
    let r = at(&s, 5).unwrap();
    assert_eq!(keys(&r.kvs), ["a"]);
    assert_eq!((r.kvs[0].mod_revision, r.kvs[0].version), (3, 2));
    assert_eq!(keys(&at(&s, 7).unwrap().kvs), ["a", "c"]);

    // Physically: a@2 and b@4 are gone; a@3, b's tombstone @5 (exact compact rev), c, a@7 stay.
    let mut revs = Vec::new();
    s.backend()
        .for_each(crate::backend::Bucket::Key, &[], None, |k, _| {
            let r = Revision::from_bytes(k).unwrap();
            revs.push((r.main, is_tombstone(k)));
            true
        })
        .unwrap();
    assert_eq!(revs, [(3, false), (5, true), (6, false), (7, false)]);

    compact(&mut s, 7).unwrap();
    let mut n = 0;
    s.backend()
        .for_each(crate::backend::Bucket::Key, &[], None, |_, _| {
            n += 1;
            true
        })
        .unwrap();
    assert_eq!(n, 2, "only a@7 and c@6 remain");
    let a = get(&s, "a").unwrap();
    assert_eq!((a.create_revision, a.version), (2, 3));
}

#[tokio::test]
async fn hash_kv_tracks_content_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "1");
    put(&mut s, "b", "1");
    let (h1, cur, comp) = s.hash_kv(0).unwrap();
    assert_eq!((cur, comp), (3, -1));
    let (h_at2, _, _) = s.hash_kv(2).unwrap();
    assert_ne!(h1, h_at2);
    put(&mut s, "c", "1");
    assert_eq!(s.hash_kv(3).unwrap().0, h1, "hash at a revision is stable");
    assert!(matches!(s.hash_kv(9).unwrap_err(), MvccError::FutureRev));
    s.compact(&pb::CompactionRequest {
        revision: 3,
        physical: true,
    })
    .unwrap();
    assert!(matches!(s.hash_kv(2).unwrap_err(), MvccError::Compacted));
    assert_eq!(
        s.hash_kv(3).unwrap().0,
        h1,
        "compaction keeps the hash at its revision"
    );
    assert!(s.hash_kv(4).is_ok());
}

#[tokio::test]
async fn events_are_recorded_for_watch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "1");
    s.record_events(true);
    put(&mut s, "a", "2");
    del(&mut s, "a", "");
    let ev = s.take_events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].r#type, consts::event_type::PUT);
    assert_eq!(ev[0].kv.as_ref().unwrap().version, 2);
    assert_eq!(ev[1].r#type, consts::event_type::DELETE);
    let kv = ev[1].kv.as_ref().unwrap();
    assert_eq!(
        (kv.key.as_slice(), kv.mod_revision, kv.create_revision),
        (&b"a"[..], 4, 0)
    );
    assert!(s.take_events().is_empty());
}
