//! Txn semantics: compares, branches, nesting, one revision per txn, reads of own writes.

use super::consts::{compare_result as cr, compare_target as ct};
use super::tests::{get, get_req, keys, open_store, put, put_req};
use super::*;
use etcd_api::etcdserverpb as pb;

fn cmp(key: &str, target: i32, result: i32, u: pb::compare::TargetUnion) -> pb::Compare {
    pb::Compare {
        result,
        target,
        key: key.into(),
        range_end: vec![],
        target_union: Some(u),
    }
}
fn op_put(k: &str, v: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(put_req(k, v))),
    }
}
fn op_get(k: &str, end: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(get_req(k, end))),
    }
}
fn op_del(k: &str, end: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                prev_kv: true,
            },
        )),
    }
}
fn op_txn(t: pb::TxnRequest) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestTxn(t)),
    }
}
fn txn(
    compare: Vec<pb::Compare>,
    success: Vec<pb::RequestOp>,
    failure: Vec<pb::RequestOp>,
) -> pb::TxnRequest {
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}
fn rev(r: &pb::TxnResponse) -> i64 {
    r.header.as_ref().unwrap().revision
}
fn resp(r: &pb::TxnResponse, i: usize) -> &pb::response_op::Response {
    r.responses[i].response.as_ref().unwrap()
}

#[tokio::test]
async fn compares_choose_branch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "k", "v1"); // 2
    put(&mut s, "k", "v2"); // 3, version 2, create 2
    s.put(&pb::PutRequest {
        lease: 5,
        ..put_req("l", "x")
    })
    .unwrap(); // 4

    let check = |s: &mut Store, c: pb::Compare| -> bool {
        s.txn(&txn(vec![c], vec![], vec![])).unwrap().succeeded
    };
    use pb::compare::TargetUnion::*;
    assert!(check(
        &mut s,
        cmp("k", ct::VALUE, cr::EQUAL, Value(b"v2".to_vec()))
    ));
    assert!(!check(
        &mut s,
        cmp("k", ct::VALUE, cr::EQUAL, Value(b"v1".to_vec()))
    ));
    assert!(check(
        &mut s,
        cmp("k", ct::VALUE, cr::GREATER, Value(b"v1".to_vec()))
    ));
    assert!(check(
        &mut s,
        cmp("k", ct::VALUE, cr::NOT_EQUAL, Value(b"v1".to_vec()))
    ));
    assert!(check(&mut s, cmp("k", ct::VERSION, cr::EQUAL, Version(2))));
    assert!(check(
        &mut s,
        cmp("k", ct::CREATE, cr::EQUAL, CreateRevision(2))
    ));
    assert!(check(&mut s, cmp("k", ct::MOD, cr::LESS, ModRevision(4))));
    assert!(!check(
        &mut s,
        cmp("k", ct::MOD, cr::GREATER, ModRevision(3))
    ));
    assert!(check(&mut s, cmp("l", ct::LEASE, cr::EQUAL, Lease(5))));
    // Missing key: version/create/mod compare as 0; value compares always fail.
    assert!(check(
        &mut s,
        cmp("nope", ct::CREATE, cr::EQUAL, CreateRevision(0))
    ));
    assert!(check(
        &mut s,
        cmp("nope", ct::VERSION, cr::EQUAL, Version(0))
    ));
    assert!(!check(
        &mut s,
        cmp("nope", ct::VALUE, cr::EQUAL, Value(vec![]))
    ));
    assert!(!check(
        &mut s,
        cmp("nope", ct::VALUE, cr::NOT_EQUAL, Value(b"x".to_vec()))
    ));
    // Range compare: every key in the range must satisfy it.
    let mut c = cmp("k", ct::VERSION, cr::GREATER, Version(0));
    c.range_end = b"m".to_vec();
    assert!(check(&mut s, c.clone()));
    c.target_union = Some(Version(1));
    assert!(!check(&mut s, c), "l has version 1");
    assert_eq!(
        s.current_revision(),
        4,
        "read-only txns do not bump the revision"
    );

    // All compares must hold.
    let both = txn(
        vec![
            cmp("k", ct::VERSION, cr::EQUAL, Version(2)),
            cmp("l", ct::VERSION, cr::EQUAL, Version(9)),
        ],
        vec![op_put("yes", "1")],
        vec![op_put("no", "1")],
    );
    let r = s.txn(&both).unwrap();
    assert!(!r.succeeded);
    assert_eq!(rev(&r), 5);
    assert!(get(&s, "no").is_some() && get(&s, "yes").is_none());
}

#[tokio::test]
async fn txn_is_one_revision_and_sees_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "0"); // 2
    let t = txn(
        vec![],
        vec![
            op_get("a", ""),
            op_put("a", "1"),
            op_put("b", "1"),
            op_get("a", "c"),
            op_del("a", ""),
            op_get("a", "c"),
        ],
        vec![],
    );
    let r = s.txn(&t).unwrap();
    assert!(r.succeeded);
    assert_eq!(rev(&r), 3);
    assert_eq!(s.current_revision(), 3);
    let pb::response_op::Response::ResponseRange(g0) = resp(&r, 0) else {
        panic!()
    };
    assert_eq!(g0.kvs[0].value, b"0");
    assert_eq!(
        g0.header.as_ref().unwrap().revision,
        2,
        "before any write: begin revision"
    );
    let pb::response_op::Response::ResponsePut(p) = resp(&r, 1) else {
        panic!()
    };
    assert_eq!(p.header.as_ref().unwrap().revision, 3);
    let pb::response_op::Response::ResponseRange(g3) = resp(&r, 3) else {
        panic!()
    };
    assert_eq!(keys(&g3.kvs), ["a", "b"]);
    assert_eq!(g3.header.as_ref().unwrap().revision, 3);
    assert_eq!((g3.kvs[0].version, g3.kvs[0].mod_revision), (2, 3));
    let pb::response_op::Response::ResponseDeleteRange(d) = resp(&r, 4) else {
        panic!()
    };
    assert_eq!(d.deleted, 1);
    assert_eq!(d.prev_kvs[0].value, b"1");
    let pb::response_op::Response::ResponseRange(g5) = resp(&r, 5) else {
        panic!()
    };
    assert_eq!(keys(&g5.kvs), ["b"]);

    // Sub revisions: the key bucket holds 3.0 (a), 3.1 (b), 3.2 (a tombstone).
    let mut revs = Vec::new();
    s.backend()
        .for_each(crate::backend::Bucket::Key, &[], None, |k, _| {
            let r = Revision::from_bytes(k).unwrap();
            revs.push((r.main, r.sub, is_tombstone(k)));
            true
        })
        .unwrap();
    assert_eq!(
        revs,
        [(2, 0, false), (3, 0, false), (3, 1, false), (3, 2, true)]
    );
    assert!(get(&s, "a").is_none());
    // Putting the same key twice in one txn bumps its version twice.
    let r = s
        .txn(&txn(
            vec![],
            vec![op_put("c", "1"), op_put("c", "2")],
            vec![],
        ))
        .unwrap();
    assert_eq!(rev(&r), 4);
    let c = get(&s, "c").unwrap();
    assert_eq!(
        (c.version, c.mod_revision, c.value.as_slice()),
        (2, 4, &b"2"[..])
    );
}

#[tokio::test]
async fn nested_txn_compares_use_pre_txn_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "x", "1"); // 2
                           // The outer txn writes x=2 before the nested one; the nested compare still sees x=1.
    let inner = txn(
        vec![cmp(
            "x",
            ct::VALUE,
            cr::EQUAL,
            pb::compare::TargetUnion::Value(b"1".to_vec()),
        )],
        vec![op_put("inner", "then"), op_get("x", "")],
        vec![op_put("inner", "else")],
    );
    let outer = txn(vec![], vec![op_put("x", "2"), op_txn(inner)], vec![]);
    let r = s.txn(&outer).unwrap();
    assert_eq!(rev(&r), 3);
    let pb::response_op::Response::ResponseTxn(nested) = resp(&r, 1) else {
        panic!()
    };
    assert!(nested.succeeded);
    assert_eq!(
        nested.header.as_ref().unwrap().revision,
        0,
        "etcd leaves nested headers empty"
    );
    let pb::response_op::Response::ResponseRange(g) = resp(nested, 1) else {
        panic!()
    };
    assert_eq!(g.kvs[0].value, b"2", "ops do see earlier writes");
    assert_eq!(get(&s, "inner").unwrap().value, b"then");
    assert_eq!(get(&s, "inner").unwrap().mod_revision, 3);

    // Failure branch with a nested txn that itself fails.
    let inner = txn(
        vec![cmp(
            "x",
            ct::VERSION,
            cr::EQUAL,
            pb::compare::TargetUnion::Version(7),
        )],
        vec![op_put("n", "then")],
        vec![
            op_put("n", "else"),
            op_txn(txn(vec![], vec![op_get("n", "")], vec![])),
        ],
    );
    let outer = txn(
        vec![cmp(
            "x",
            ct::VALUE,
            cr::EQUAL,
            pb::compare::TargetUnion::Value(b"nope".to_vec()),
        )],
        vec![op_put("never", "1")],
        vec![op_txn(inner)],
    );
    let r = s.txn(&outer).unwrap();
    assert!(!r.succeeded);
    let pb::response_op::Response::ResponseTxn(nested) = resp(&r, 0) else {
        panic!()
    };
    assert!(!nested.succeeded);
    let pb::response_op::Response::ResponseTxn(deep) = resp(nested, 1) else {
        panic!()
    };
    assert!(deep.succeeded);
    let pb::response_op::Response::ResponseRange(g) = resp(deep, 0) else {
        panic!()
    };
    assert_eq!(g.kvs[0].value, b"else");
    assert!(get(&s, "never").is_none());
}

#[tokio::test]
async fn failing_txn_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    s.compact(&pb::CompactionRequest {
        revision: 3,
        physical: true,
    })
    .unwrap();
    // ignore_value on a key that does not exist before the txn (even if the txn creates it).
    let t = txn(
        vec![],
        vec![
            op_put("new", "x"),
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    ignore_value: true,
                    ..put_req("new", "")
                })),
            },
        ],
        vec![],
    );
    assert!(matches!(s.txn(&t).unwrap_err(), MvccError::KeyNotFound));
    // A range at a compacted or future revision fails the whole txn up front.
    let at = |rev| pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            revision: rev,
            ..get_req("a", "")
        })),
    };
    let t = txn(vec![], vec![op_put("b", "1"), at(2)], vec![]);
    assert!(matches!(s.txn(&t).unwrap_err(), MvccError::Compacted));
    let t = txn(vec![], vec![op_put("b", "1"), at(4)], vec![]);
    assert!(matches!(s.txn(&t).unwrap_err(), MvccError::FutureRev));
    // Deleting a key earlier in the txn, then ignore_value on it: etcd would panic; we refuse.
    let t = txn(
        vec![],
        vec![
            op_del("a", ""),
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    ignore_value: true,
                    ..put_req("a", "")
                })),
            },
        ],
        vec![],
    );
    assert!(matches!(s.txn(&t).unwrap_err(), MvccError::KeyNotFound));
    // Lease checks inside txns.
    s.set_lease_checker(Box::new(|_| false));
    let t = txn(
        vec![],
        vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                lease: 1,
                ..put_req("b", "1")
            })),
        }],
        vec![],
    );
    assert!(matches!(s.txn(&t).unwrap_err(), MvccError::LeaseNotFound));

    assert_eq!(s.current_revision(), 3);
    assert!(get(&s, "new").is_none() && get(&s, "b").is_none());
    assert_eq!(get(&s, "a").unwrap().value, b"2");
}

#[tokio::test]
async fn read_only_txn_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(dir.path()).await;
    put(&mut s, "a", "1");
    let ro = txn(vec![], vec![op_get("a", "")], vec![op_get("b", "")]);
    assert!(is_txn_readonly(&ro));
    let r = s.read_txn(&ro).unwrap().unwrap();
    assert_eq!(rev(&r), 2);
    let rw = txn(vec![], vec![op_get("a", "")], vec![op_put("b", "1")]);
    assert!(!is_txn_readonly(&rw));
    assert!(s.read_txn(&rw).unwrap().is_none());
    let nested = txn(vec![], vec![op_txn(txn(vec![], vec![], vec![]))], vec![]);
    assert!(!is_txn_readonly(&nested));
    let r = s.txn(&nested).unwrap();
    assert_eq!(
        rev(&r),
        2,
        "a txn without writes does not bump the revision"
    );
    // Empty txn.
    let r = s.txn(&pb::TxnRequest::default()).unwrap();
    assert!(r.succeeded && r.responses.is_empty());
}
