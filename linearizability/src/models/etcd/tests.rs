//! Unit tests of the etcd model, one group per request type.

use super::*;
use crate::{check, Model, Operation, Verdict};

fn put(key: &str, value: &str) -> EtcdRequest {
    EtcdRequest::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

fn get(key: &str) -> EtcdRequest {
    EtcdRequest::Range(RangeRequest {
        range: KeyRange::key(key),
        ..RangeRequest::default()
    })
}

fn ok(revision: i64, result: OpResult) -> EtcdResponse {
    EtcdResponse::Ok { revision, result }
}

fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modr,
        version,
        lease: 0,
    }
}

fn run(model: &Etcd, reqs: &[EtcdRequest]) -> (EtcdState, Vec<EtcdResponse>) {
    let mut s = model.init();
    let mut out = Vec::new();
    for r in reqs {
        let (n, resp) = model.apply(&s, r);
        s = n;
        out.push(resp);
    }
    (s, out)
}

#[test]
fn put_bumps_revision_and_versions() {
    let (s, out) = run(
        &Etcd::default(),
        &[
            put("a", "1"),
            put("a", "2"),
            EtcdRequest::Put(PutRequest {
                key: "a".into(),
                value: "3".into(),
                prev_kv: true,
                ..PutRequest::default()
            }),
        ],
    );
    assert_eq!(out[0], ok(2, OpResult::Put { prev_kv: None }));
    assert_eq!(out[1], ok(3, OpResult::Put { prev_kv: None }));
    assert_eq!(
        out[2],
        ok(
            4,
            OpResult::Put {
                prev_kv: Some(kv("a", "2", 2, 3, 2))
            }
        )
    );
    assert_eq!(s.revision, 4);
}

#[test]
fn range_limit_count_keys_only_and_past_revisions() {
    let model = Etcd::default();
    let (s, _) = run(
        &model,
        &[put("a", "1"), put("b", "2"), put("c", "3"), put("a", "4")],
    );
    let r = |range: KeyRange, revision, limit, count_only, keys_only| {
        model
            .apply(
                &s,
                &EtcdRequest::Range(RangeRequest {
                    range,
                    revision,
                    limit,
                    count_only,
                    keys_only,
                }),
            )
            .1
    };
    let all = KeyRange::range("a", "\0");
    assert_eq!(
        r(all.clone(), 0, 2, false, false),
        ok(
            5,
            OpResult::Range(RangeResult {
                kvs: vec![kv("a", "4", 2, 5, 2), kv("b", "2", 3, 3, 1)],
                count: 3,
                more: true
            })
        )
    );
    assert_eq!(
        r(all.clone(), 0, 0, true, false),
        ok(
            5,
            OpResult::Range(RangeResult {
                kvs: vec![],
                count: 3,
                more: false
            })
        )
    );
    assert_eq!(
        r(KeyRange::range("b", "c"), 0, 0, false, true),
        ok(
            5,
            OpResult::Range(RangeResult {
                kvs: vec![kv("b", "", 3, 3, 1)],
                count: 1,
                more: false
            })
        )
    );
    // At revision 2 only a=1 existed.
    assert_eq!(
        r(all.clone(), 2, 0, false, false),
        ok(
            5,
            OpResult::Range(RangeResult {
                kvs: vec![kv("a", "1", 2, 2, 1)],
                count: 1,
                more: false
            })
        )
    );
    assert_eq!(
        r(all, 6, 0, false, false),
        EtcdResponse::Error(EtcdError::FutureRevision)
    );
}

#[test]
fn delete_range_deletes_in_one_revision() {
    let (s, out) = run(
        &Etcd::default(),
        &[
            put("a", "1"),
            put("b", "2"),
            EtcdRequest::DeleteRange(DeleteRangeRequest {
                range: KeyRange::range("a", "c"),
                prev_kv: true,
            }),
            EtcdRequest::DeleteRange(DeleteRangeRequest {
                range: KeyRange::key("zz"),
                prev_kv: false,
            }),
            put("a", "again"),
        ],
    );
    assert_eq!(
        out[2],
        ok(
            4,
            OpResult::DeleteRange {
                deleted: 2,
                prev_kvs: vec![kv("a", "1", 2, 2, 1), kv("b", "2", 3, 3, 1)]
            }
        )
    );
    // Deleting nothing does not bump the revision.
    assert_eq!(
        out[3],
        ok(
            4,
            OpResult::DeleteRange {
                deleted: 0,
                prev_kvs: vec![]
            }
        )
    );
    // A recreated key starts a new life.
    assert_eq!(s.get_at("a", 5), Some(kv("a", "again", 5, 5, 1)));
}

#[test]
fn txn_compares_branches_and_nested_ops() {
    let model = Etcd::default();
    let cas = |expect: &str, new: &str| {
        EtcdRequest::Txn(TxnRequest {
            compare: vec![Compare {
                range: KeyRange::key("a"),
                op: CompareOp::Equal,
                target: CompareTarget::Value(expect.into()),
            }],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: "a".into(),
                    value: new.into(),
                    ..PutRequest::default()
                }),
                RequestOp::Range(RangeRequest {
                    range: KeyRange::key("a"),
                    ..RangeRequest::default()
                }),
                RequestOp::Txn(TxnRequest {
                    compare: vec![Compare {
                        range: KeyRange::key("b"),
                        op: CompareOp::Equal,
                        target: CompareTarget::Version(0),
                    }],
                    success: vec![RequestOp::Put(PutRequest {
                        key: "b".into(),
                        value: "x".into(),
                        ..PutRequest::default()
                    })],
                    failure: vec![],
                }),
            ],
            failure: vec![RequestOp::Range(RangeRequest {
                range: KeyRange::key("a"),
                ..RangeRequest::default()
            })],
        })
    };
    let (s, out) = run(&model, &[put("a", "1"), cas("1", "2"), cas("1", "3")]);
    // Both puts of the successful txn share revision 3; the range sees the txn's own write.
    assert_eq!(
        out[1],
        ok(
            3,
            OpResult::Txn {
                succeeded: true,
                responses: vec![
                    OpResult::Put { prev_kv: None },
                    OpResult::Range(RangeResult {
                        kvs: vec![kv("a", "2", 2, 3, 2)],
                        count: 1,
                        more: false
                    }),
                    OpResult::Txn {
                        succeeded: true,
                        responses: vec![OpResult::Put { prev_kv: None }]
                    },
                ]
            }
        )
    );
    assert_eq!(
        out[2],
        ok(
            3,
            OpResult::Txn {
                succeeded: false,
                responses: vec![OpResult::Range(RangeResult {
                    kvs: vec![kv("a", "2", 2, 3, 2)],
                    count: 1,
                    more: false
                })]
            }
        )
    );
    assert_eq!(s.get_at("b", 3), Some(kv("b", "x", 3, 3, 1)));
    // Compares on a missing key: value compares fail, others compare with zero.
    let missing = |target, op| Compare {
        range: KeyRange::key("nope"),
        op,
        target,
    };
    assert!(!compare_holds(
        &s,
        &missing(CompareTarget::Value(String::new()), CompareOp::NotEqual)
    ));
    assert!(compare_holds(
        &s,
        &missing(CompareTarget::Create(0), CompareOp::Equal)
    ));
    assert!(compare_holds(
        &s,
        &missing(CompareTarget::Mod(1), CompareOp::Less)
    ));
    assert!(compare_holds(
        &s,
        &missing(CompareTarget::Lease(0), CompareOp::Equal)
    ));
}

#[test]
fn leases_grant_attach_revoke() {
    let with_lease = EtcdRequest::Put(PutRequest {
        key: "l".into(),
        value: "v".into(),
        lease: 7,
        prev_kv: false,
    });
    let (s, out) = run(
        &Etcd::default(),
        &[
            with_lease.clone(),
            EtcdRequest::LeaseGrant { id: 7, ttl: 5 },
            EtcdRequest::LeaseGrant { id: 7, ttl: 5 },
            with_lease,
            EtcdRequest::LeaseRevoke { id: 7 },
            EtcdRequest::LeaseRevoke { id: 7 },
        ],
    );
    assert_eq!(out[0], EtcdResponse::Error(EtcdError::LeaseNotFound));
    assert_eq!(out[1], ok(1, OpResult::LeaseGrant { id: 7, ttl: 5 }));
    assert_eq!(out[2], EtcdResponse::Error(EtcdError::LeaseExists));
    assert_eq!(out[3], ok(2, OpResult::Put { prev_kv: None }));
    assert_eq!(out[4], ok(3, OpResult::LeaseRevoke));
    assert_eq!(out[5], EtcdResponse::Error(EtcdError::LeaseNotFound));
    assert_eq!(s.get_at("l", 3), None);
    assert_eq!(s.lease_count(), 0);
}

#[test]
fn compaction_errors() {
    let model = Etcd::default();
    let (s, out) = run(
        &model,
        &[
            put("a", "1"),
            put("a", "2"),
            EtcdRequest::Compact { revision: 3 },
            EtcdRequest::Compact { revision: 3 },
            EtcdRequest::Compact { revision: 9 },
        ],
    );
    assert_eq!(out[2], ok(3, OpResult::Compact));
    assert_eq!(out[3], EtcdResponse::Error(EtcdError::Compacted));
    assert_eq!(out[4], EtcdResponse::Error(EtcdError::FutureRevision));
    let read_at = |revision| {
        EtcdRequest::Range(RangeRequest {
            range: KeyRange::key("a"),
            revision,
            ..RangeRequest::default()
        })
    };
    assert_eq!(
        model.apply(&s, &read_at(2)).1,
        EtcdResponse::Error(EtcdError::Compacted)
    );
    assert_eq!(
        model.apply(&s, &read_at(3)).1,
        ok(
            3,
            OpResult::Range(RangeResult {
                kvs: vec![kv("a", "2", 2, 3, 2)],
                count: 1,
                more: false
            })
        )
    );
}

#[test]
fn header_revisions_order_concurrent_writes() {
    // Two concurrent puts; a read after both sees b's value, so b must have revision 3.
    let h = vec![
        Operation::new(
            0,
            0,
            10,
            put("k", "a"),
            ok(2, OpResult::Put { prev_kv: None }),
        ),
        Operation::new(
            1,
            0,
            10,
            put("k", "b"),
            ok(3, OpResult::Put { prev_kv: None }),
        ),
        Operation::new(
            2,
            11,
            12,
            get("k"),
            ok(
                3,
                OpResult::Range(RangeResult {
                    kvs: vec![kv("k", "b", 2, 3, 2)],
                    count: 1,
                    more: false,
                }),
            ),
        ),
    ];
    assert_eq!(
        check(&Etcd::default(), &h).result.verdict(),
        Verdict::Linearizable
    );
    let mut bad = h.clone();
    bad[1].output = Some(ok(2, OpResult::Put { prev_kv: None }));
    assert_eq!(
        check(&Etcd::default(), &bad).result.verdict(),
        Verdict::NotLinearizable
    );
}

#[test]
fn failed_put_may_or_may_not_have_happened() {
    let read = |value: Option<&str>, rev| {
        let kvs = value.map(|v| kv("k", v, 2, 2, 1)).into_iter().collect();
        ok(
            rev,
            OpResult::Range(RangeResult {
                kvs,
                count: i64::from(value.is_some()),
                more: false,
            }),
        )
    };
    let seen = vec![
        Operation::unknown(0, 0, 5, put("k", "v")),
        Operation::new(1, 6, 7, get("k"), read(Some("v"), 2)),
    ];
    let unseen = vec![
        Operation::unknown(0, 0, 5, put("k", "v")),
        Operation::new(1, 6, 7, get("k"), read(None, 1)),
    ];
    let flip = vec![
        Operation::unknown(0, 0, 5, put("k", "v")),
        Operation::new(1, 6, 7, get("k"), read(Some("v"), 2)),
        Operation::new(1, 8, 9, get("k"), read(None, 1)),
    ];
    assert_eq!(
        check(&Etcd::default(), &seen).result.verdict(),
        Verdict::Linearizable
    );
    assert_eq!(
        check(&Etcd::default(), &unseen).result.verdict(),
        Verdict::Linearizable
    );
    assert_eq!(
        check(&Etcd::default(), &flip).result.verdict(),
        Verdict::NotLinearizable
    );
}

#[test]
fn lease_grant_with_server_chosen_id() {
    let h = vec![
        Operation::new(
            0,
            0,
            1,
            EtcdRequest::LeaseGrant { id: 0, ttl: 5 },
            ok(1, OpResult::LeaseGrant { id: 42, ttl: 5 }),
        ),
        Operation::new(
            0,
            2,
            3,
            EtcdRequest::Put(PutRequest {
                key: "k".into(),
                value: "v".into(),
                lease: 42,
                prev_kv: false,
            }),
            ok(2, OpResult::Put { prev_kv: None }),
        ),
    ];
    assert_eq!(
        check(&Etcd::default(), &h).result.verdict(),
        Verdict::Linearizable
    );
}

#[test]
fn for_history_keeps_versions_only_when_needed() {
    let h = vec![Operation::new(
        0,
        0,
        1,
        put("a", "1"),
        ok(2, OpResult::Put { prev_kv: None }),
    )];
    assert!(!Etcd::for_history(&h).keep_history);
    let past = EtcdRequest::Range(RangeRequest {
        range: KeyRange::key("a"),
        revision: 1,
        ..RangeRequest::default()
    });
    let h2 = vec![Operation::unknown(0, 0, 1, past)];
    assert!(Etcd::for_history(&h2).keep_history);
}

#[test]
fn describe_state_mentions_revision_and_keys() {
    let (s, _) = run(&Etcd::default(), &[put("a", "1")]);
    let d = Etcd::default().describe_state(&s);
    assert!(d.contains("revision 2") && d.contains("\"a\"=\"1\""), "{d}");
}

/// An unknown put pinned at its revision (its value seen there) must still leave the version
/// seen there: `a` seen (create 2, mod 4, version 3) takes two puts after the one at 2, so the
/// pinned put of `y` cannot follow a revision 3 that did not put `a` (the pin alone let the
/// checker place it there, and the watch checks then blamed the watcher's prev_kv).
#[test]
fn a_pinned_put_must_still_fit_the_version_seen() {
    let known = |req, rev| Operation::new(0, 0, 1, req, ok(rev, OpResult::Put { prev_kv: None }));
    let h = vec![
        known(put("a", "1"), 2),
        Operation::unknown(1, 2, 30, put("c", "1")),
        Operation::unknown(2, 3, 30, put("a", "x")),
        Operation::unknown(3, 4, 30, put("a", "y")),
        known(put("b", "1"), 6),
    ];
    let evidence = WatchEvidence {
        observed: vec![kv("a", "y", 2, 4, 3)],
        ..WatchEvidence::default()
    };
    let m = Etcd::for_history_with(&h, &evidence);
    assert_eq!(m.hints.pins["a"]["y"], 4);
    let after = |s: &EtcdState, op: &Operation<EtcdRequest, EtcdResponse>| {
        let mut next = Vec::new();
        m.step(s, &op.input, op.output.as_ref(), &mut next);
        next.into_iter().find(|n| n.revision == s.revision + 1)
    };
    let at2 = after(&m.init(), &h[0]).expect("put a=1 at 2");
    let c_at3 = after(&at2, &h[1]).expect("put c at 3");
    let x_at3 = after(&at2, &h[2]).expect("put a=x at 3");
    assert!(
        after(&c_at3, &h[3]).is_none(),
        "a=y at 4 after c at 3 leaves a at version 2, not the 3 seen"
    );
    let y = after(&x_at3, &h[3]).expect("a=y at 4 after a=x at 3");
    assert_eq!(y.get_at("a", 4).map(|kv| kv.version), Some(3));
}
