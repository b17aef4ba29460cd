//! insta snapshots of the explanation text: verdict lines for each model, etcd state
//! descriptions, and watch violation reports. A change in wording shows up as a snapshot diff
//! (`cargo insta review`, or `INSTA_UPDATE=always cargo test` then inspect `git diff`).

use linearizability::cli::verdict_line;
use linearizability::models::etcd::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, Etcd, EtcdRequest, EtcdResponse,
    KeyRange, KeyValue, OpResult, PutRequest, RangeRequest, RangeResult, RequestOp, TxnRequest,
};
use linearizability::models::kv::{Kv, KvInput, KvOutput};
use linearizability::models::register::{Register, RegisterInput, RegisterOutput};
use linearizability::run::check_etcd_run;
use linearizability::watch::{
    check_watches, Timeline, WatchEvent, WatchFilter, WatchResponse, WatcherHistory,
};
use linearizability::{check_with, CheckOptions, Model, Operation};

fn sequential() -> CheckOptions {
    CheckOptions {
        parallel: false,
        ..CheckOptions::default()
    }
}

fn explain<M: Model>(model: &M, h: &[Operation<M::Input, M::Output>]) -> String {
    verdict_line(model, h, &check_with(model, h, &sequential()))
}

#[test]
fn register_stale_read() {
    let h = vec![
        Operation::new(0, 0, 1, RegisterInput::Write(1), RegisterOutput::Write),
        Operation::new(
            1,
            2,
            5,
            RegisterInput::Cas { from: 1, to: 2 },
            RegisterOutput::Cas(true),
        ),
        Operation::unknown(2, 3, 4, RegisterInput::Write(3)),
        Operation::new(1, 6, 7, RegisterInput::Read, RegisterOutput::Read(Some(1))),
    ];
    insta::assert_snapshot!(explain(&Register, &h));
}

#[test]
fn kv_lost_append() {
    let get = |key: &str| KvInput::Get { key: key.into() };
    let append = |key: &str, v: &str| KvInput::Append {
        key: key.into(),
        value: v.into(),
    };
    let value = |v: &str| KvOutput::Get { value: v.into() };
    let h = vec![
        Operation::new(0, 0, 1, append("x", "a"), KvOutput::Append),
        Operation::new(1, 0, 1, append("y", "1"), KvOutput::Append),
        Operation::new(0, 2, 3, append("x", "b"), KvOutput::Append),
        Operation::new(1, 4, 5, get("x"), value("a")),
        Operation::new(1, 6, 7, get("y"), value("1")),
    ];
    insta::assert_snapshot!(explain(&Kv, &h));
}

fn put(key: &str, value: &str, lease: i64) -> EtcdRequest {
    EtcdRequest::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        prev_kv: false,
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

#[test]
fn etcd_txn_and_lease() {
    let h = vec![
        Operation::new(
            0,
            0,
            1,
            EtcdRequest::LeaseGrant { id: 5, ttl: 10 },
            ok(1, OpResult::LeaseGrant { id: 5, ttl: 10 }),
        ),
        Operation::new(
            0,
            2,
            3,
            put("a", "1", 5),
            ok(2, OpResult::Put { prev_kv: None }),
        ),
        Operation::new(
            1,
            4,
            5,
            EtcdRequest::Txn(TxnRequest {
                compare: vec![Compare {
                    range: KeyRange::key("a"),
                    op: CompareOp::Equal,
                    target: CompareTarget::Version(1),
                }],
                success: vec![
                    RequestOp::Put(PutRequest {
                        key: "b".into(),
                        value: "2".into(),
                        ..PutRequest::default()
                    }),
                    RequestOp::DeleteRange(DeleteRangeRequest {
                        range: KeyRange::key("a"),
                        prev_kv: true,
                    }),
                ],
                failure: vec![],
            }),
            ok(
                3,
                OpResult::Txn {
                    succeeded: true,
                    responses: vec![
                        OpResult::Put { prev_kv: None },
                        OpResult::DeleteRange {
                            deleted: 1,
                            prev_kvs: vec![KeyValue {
                                lease: 5,
                                ..kv("a", "1", 2, 2, 1)
                            }],
                        },
                    ],
                },
            ),
        ),
        // Claims a is still there at revision 3.
        Operation::new(
            1,
            6,
            7,
            EtcdRequest::Range(RangeRequest {
                range: KeyRange::range("a", "c"),
                ..RangeRequest::default()
            }),
            ok(
                3,
                OpResult::Range(RangeResult {
                    kvs: vec![kv("a", "1", 2, 2, 1), kv("b", "2", 3, 3, 1)],
                    count: 2,
                    more: false,
                }),
            ),
        ),
    ];
    insta::assert_snapshot!(explain(&Etcd::for_history(&h), &h));
}

#[test]
fn etcd_state_description() {
    let model = Etcd::default();
    let mut s = model.init();
    for r in [
        EtcdRequest::LeaseGrant { id: 7, ttl: 30 },
        put("a", "1", 0),
        put("b", "x", 7),
        put("a", "2", 0),
        EtcdRequest::Compact { revision: 3 },
    ] {
        s = model.apply(&s, &r).0;
    }
    insta::assert_snapshot!(model.describe_state(&s));
}

/// One watcher breaking most guarantees, against a six-revision timeline.
#[test]
fn watch_violation_reports() {
    let events = vec![
        WatchEvent::put(kv("a", "1", 2, 2, 1), None),
        WatchEvent::put(kv("a", "2", 2, 3, 2), None),
        WatchEvent::put(kv("b", "1", 4, 4, 1), None),
        WatchEvent::delete("a", 5, None),
        WatchEvent::put(kv("a", "3", 6, 6, 1), None),
        WatchEvent::put(kv("c", "1", 7, 7, 1), None),
    ];
    let (timeline, _) = Timeline::from_events(events.clone(), true);
    let resp = |revision, events: Vec<WatchEvent>| WatchResponse {
        revision,
        events,
        ..WatchResponse::default()
    };
    let with_prev = |mut e: WatchEvent, p: Option<KeyValue>| {
        e.prev_kv = p;
        e
    };
    let w = WatcherHistory {
        id: 42,
        range: KeyRange::range("a", "c"),
        start_revision: 2,
        filters: vec![WatchFilter::NoDelete],
        prev_kv: true,
        responses: vec![
            // Revision 2 missing (resumable); wrong prev_kv.
            resp(3, vec![with_prev(events[1].clone(), None)]),
            resp(
                3,
                vec![with_prev(events[1].clone(), Some(kv("a", "1", 2, 2, 1)))],
            ),
            WatchResponse {
                revision: 5,
                progress_notify: true,
                ..WatchResponse::default()
            },
            // Filtered delete, after the progress notification, header below it.
            resp(4, vec![events[3].clone()]),
            // A create presented as an update; a key out of range.
            resp(
                7,
                vec![
                    WatchEvent::put(kv("a", "3", 2, 6, 3), None),
                    events[5].clone(),
                ],
            ),
        ],
    };
    let report = check_watches(&[w], &timeline);
    let text: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn empty_run_explanation() {
    let run = check_etcd_run(&[], &[WatcherHistory::default()], &sequential());
    insta::assert_snapshot!(run.explain(&[]));
}
