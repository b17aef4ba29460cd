//! Tests of the combined etcd-run check.

use super::*;
use crate::models::etcd::KeyRange;
use crate::models::etcd::{KeyValue, OpResult, PutRequest, RangeRequest, RangeResult};
use crate::watch::{Guarantee, WatchEvent, WatchResponse};

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

fn put_ok(revision: i64) -> EtcdResponse {
    ok(revision, OpResult::Put { prev_kv: None })
}

/// put a=1 (rev 2), an unknown put a=2 (rev 3, shown only by the watch), put b=1 (rev 4), and
/// a read of a (`read` = what it returned).
fn history(read: KeyValue) -> Vec<Operation<EtcdRequest, EtcdResponse>> {
    vec![
        Operation::new(0, 0, 1, put("a", "1"), put_ok(2)),
        Operation::unknown(1, 2, 3, put("a", "2")),
        Operation::new(0, 4, 5, put("b", "1"), put_ok(4)),
        Operation::new(
            0,
            6,
            7,
            get("a"),
            ok(
                4,
                OpResult::Range(RangeResult {
                    kvs: vec![read],
                    count: 1,
                    more: false,
                }),
            ),
        ),
    ]
}

/// A response with `events` at `revision`.
fn events_at(revision: i64, events: Vec<WatchEvent>) -> WatchResponse {
    WatchResponse {
        revision,
        events,
        ..WatchResponse::default()
    }
}

/// A progress notification at `revision`.
fn progress_at(revision: i64) -> WatchResponse {
    WatchResponse {
        revision,
        progress_notify: true,
        ..WatchResponse::default()
    }
}

/// A watcher of every key from revision 1, without filters, that got `responses`.
fn watching_everything(id: u64, responses: Vec<WatchResponse>) -> WatcherHistory {
    WatcherHistory {
        id,
        range: KeyRange::range("", "\0"),
        start_revision: 1,
        filters: vec![],
        prev_kv: false,
        responses,
    }
}

fn watcher(prev_kv: bool) -> WatcherHistory {
    let prev = |p: KeyValue| if prev_kv { Some(p) } else { None };
    WatcherHistory {
        id: 7,
        range: KeyRange::range("", "\0"),
        start_revision: 1,
        filters: vec![],
        prev_kv,
        responses: vec![
            events_at(2, vec![WatchEvent::put(kv("a", "1", 2, 2, 1), None)]),
            events_at(
                3,
                vec![WatchEvent::put(
                    kv("a", "2", 2, 3, 2),
                    prev(kv("a", "1", 2, 2, 1)),
                )],
            ),
            events_at(4, vec![WatchEvent::put(kv("b", "1", 4, 4, 1), None)]),
        ],
    }
}

#[test]
fn linearizable_run_with_correct_watch() {
    let h = history(kv("a", "2", 2, 3, 2));
    let w = vec![watcher(true)];
    let run = check_etcd_run(&h, &w, &CheckOptions::default());
    assert!(run.ok(), "{}", run.explain(&h));
    assert_eq!(run.timeline, TimelineSource::Linearization);
    // The unknown put was resolved at revision 3 (the watch pinned it).
    assert_eq!(run.model.hints.pins["a"]["2"], 3);
    let s = run.summary(&h);
    assert_eq!(s.linearizability, "linearizable");
    assert!(s.watch_ok);
    assert_eq!((s.watchers, s.watch_events), (1, 3));
    let back: RunSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.watch_violations, s.watch_violations);
    assert_eq!(back.watch_timeline, TimelineSource::Linearization);
}

#[test]
fn watch_violations_are_reported_with_a_linearizable_history() {
    let h = history(kv("a", "2", 2, 3, 2));
    let mut w = vec![watcher(true)];
    w[0].responses[1].events[0].prev_kv = None; // wrong prev_kv
    w[0].responses.remove(0); // revision 2 missing: not resumable
    let run = check_etcd_run(&h, &w, &CheckOptions::default());
    assert_eq!(run.verdict(), Verdict::Linearizable);
    assert!(!run.ok());
    assert!(run.watch.has(Guarantee::PrevKv));
    assert!(run.watch.has(Guarantee::Resumable));
    let text = run.explain(&h);
    assert!(text.contains("[prev_kv] watcher #0 (id 7)"), "{text}");
}

#[test]
fn a_non_linearizable_run_checks_watches_against_their_union() {
    // The read claims a=1 at revision 4, but the watch shows a=2 written at 3.
    let h = history(kv("a", "1", 2, 2, 1));
    let mut w = vec![watcher(false), watcher(false)];
    w[1].id = 8;
    w[1].responses[2].events[0].kv.value = "9".into(); // the watchers disagree about b
    let run = check_etcd_run(&h, &w, &CheckOptions::default());
    assert_eq!(run.verdict(), Verdict::NotLinearizable);
    assert_eq!(run.timeline, TimelineSource::WatchUnion);
    assert!(run.watch.has(Guarantee::Consistent));
    let s = run.summary(&h);
    assert_eq!(s.linearizability, "not linearizable");
    assert_eq!(s.failed_op, Some(3));
    insta::assert_snapshot!("non_linearizable_run", run.explain(&h));
}

/// Two leases (keys a and b) expire on their own: unknown `LeaseExpire` events. A watcher saw
/// a deleted at revision 4 and b at 5. The DELETE events pin each expiry to its revision, so the
/// linearization the watchers are held to deletes them in that order; without the pins the
/// search places b's expiry first and the watcher is reported inconsistent.
#[test]
fn watch_deletes_pin_lease_expiries() {
    let with_lease = |key: &str, lease: i64| {
        EtcdRequest::Put(PutRequest {
            key: key.into(),
            value: format!("{key}1"),
            lease,
            ..PutRequest::default()
        })
    };
    let grant = |id| EtcdRequest::LeaseGrant { id, ttl: 5 };
    let granted = |id| ok(1, OpResult::LeaseGrant { id, ttl: 5 });
    let h = vec![
        Operation::new(0, 0, 1, grant(10), granted(10)),
        Operation::new(0, 2, 3, grant(20), granted(20)),
        Operation::new(0, 4, 5, with_lease("a", 10), put_ok(2)),
        Operation::new(0, 6, 7, with_lease("b", 20), put_ok(3)),
        Operation::unknown(1, 8, 9, EtcdRequest::LeaseExpire { id: 10 }),
        Operation::unknown(2, 8, 9, EtcdRequest::LeaseExpire { id: 20 }),
        Operation::new(0, 20, 21, put("c", "1"), put_ok(6)),
    ];
    let leased = |key: &str, modr, lease| KeyValue {
        lease,
        ..kv(key, &format!("{key}1"), modr, modr, 1)
    };
    let w = vec![watching_everything(
        1,
        vec![
            events_at(2, vec![WatchEvent::put(leased("a", 2, 10), None)]),
            events_at(3, vec![WatchEvent::put(leased("b", 3, 20), None)]),
            events_at(4, vec![WatchEvent::delete("a".to_string(), 4, None)]),
            events_at(5, vec![WatchEvent::delete("b".to_string(), 5, None)]),
            events_at(6, vec![WatchEvent::put(kv("c", "1", 6, 6, 1), None)]),
        ],
    )];
    let run = check_etcd_run(&h, &w, &CheckOptions::default());
    assert_eq!(run.model.hints.expiry_pins.get(&10), Some(&4));
    assert_eq!(run.model.hints.expiry_pins.get(&20), Some(&5));
    assert!(run.ok(), "{}", run.explain(&h));
}

/// `n` leases granted one after another, each with an unknown-outcome expiry from its grant on
/// and no key attached, between puts of `a`; then a read of `a` that returns the first value
/// (`stale`) or the last.
fn lease_heavy(n: i64, stale: bool) -> Vec<Operation<EtcdRequest, EtcdResponse>> {
    let mut h = Vec::new();
    for i in 0..n {
        let t = 10 * i as u64;
        let grant = EtcdRequest::LeaseGrant { id: i + 1, ttl: 2 };
        let granted = ok(1 + i, OpResult::LeaseGrant { id: i + 1, ttl: 2 });
        h.push(Operation::new(0, t, t + 1, grant, granted));
        h.push(Operation::unknown(
            1_000 + i as u64,
            t,
            10 * n as u64 + 100,
            EtcdRequest::LeaseExpire { id: i + 1 },
        ));
        h.push(Operation::new(
            1,
            t + 2,
            t + 3,
            put("a", &format!("v{i}")),
            put_ok(2 + i),
        ));
    }
    let last = if stale { 0 } else { n - 1 };
    let read = kv("a", &format!("v{last}"), 2, 2 + last, last + 1);
    let t = 10 * n as u64 + 200;
    h.push(Operation::new(
        2,
        t,
        t + 1,
        get("a"),
        ok(
            1 + n,
            OpResult::Range(RangeResult {
                kvs: vec![read],
                count: 1,
                more: false,
            }),
        ),
    ));
    h
}

/// A step budget, sequential, and no certain-violation fast path (these tests are about the
/// reductions and the search).
fn budget(steps: u64) -> CheckOptions {
    CheckOptions {
        step_budget: Some(steps),
        parallel: false,
        fast_paths: false,
        ..CheckOptions::default()
    }
}

#[test]
fn unobservable_lease_expiries_are_dropped_and_decide_lease_heavy_histories() {
    let h = lease_heavy(200, true);
    // The plain search explores orders of the expiries and runs out of budget...
    let plain = check_with(&Etcd::for_history(&h), &h, &budget(20_000));
    assert_eq!(plain.result.verdict(), Verdict::Unknown);
    // ... the reduced one proves the stale read at once, naming the read in the full history.
    let run = check_etcd_run(&h, &[], &budget(20_000));
    assert_eq!(run.unobservable_dropped, 200);
    let CheckResult::NotLinearizable(cx) = &run.linearizability.result else {
        panic!("{:?}", run.linearizability.result);
    };
    assert_eq!(cx.failed_op, h.len() - 1);
    // With the fast paths, the stale read is a missed write found without search.
    let fast = check_etcd_run(
        &h,
        &[],
        &CheckOptions {
            fast_paths: true,
            ..budget(0)
        },
    );
    let CheckResult::NotLinearizable(cx) = &fast.linearizability.result else {
        panic!("{:?}", fast.linearizability.result);
    };
    assert_eq!(cx.failed_op, h.len() - 1);
    assert!(
        cx.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("missed write")),
        "{:?}",
        cx.reason
    );
    let fresh = lease_heavy(300, false);
    assert_eq!(
        check_etcd_run(&fresh, &[], &budget(200_000)).verdict(),
        Verdict::Linearizable
    );
}

#[test]
fn dropping_unobservable_expiries_changes_no_verdict() {
    for n in 1..=6 {
        for stale in [false, true] {
            let h = lease_heavy(n, stale);
            let opts = CheckOptions {
                step_budget: None,
                ..budget(0)
            };
            let plain = check_with(&Etcd::for_history(&h), &h, &opts);
            let reduced = check_etcd_run(&h, &[], &opts);
            assert_eq!(
                plain.result.verdict(),
                reduced.verdict(),
                "n={n} stale={stale}"
            );
            assert_ne!(plain.result.verdict(), Verdict::Unknown);
        }
    }
}

/// An unknown txn (put a, delete b) and an unknown delete of b both could have created
/// revision 4, where a watcher of everything saw only b deleted. The txn would also have put
/// a there, which the watcher did not see: only the delete fits, and the linearization the
/// watchers are held to must use it (a swarm run once failed its watch checks here because
/// the search tried the txn first).
#[test]
fn a_revisions_watch_events_are_all_it_changed_in_the_watched_range() {
    use crate::models::etcd::{DeleteRangeRequest, RequestOp, TxnRequest};
    let delete_b = DeleteRangeRequest {
        range: KeyRange::key("b"),
        ..DeleteRangeRequest::default()
    };
    let txn = EtcdRequest::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "a".into(),
                value: "t".into(),
                ..PutRequest::default()
            }),
            RequestOp::DeleteRange(delete_b.clone()),
        ],
        failure: vec![],
    });
    let h = vec![
        Operation::new(0, 0, 1, put("a", "1"), put_ok(2)),
        Operation::new(0, 2, 3, put("b", "1"), put_ok(3)),
        Operation::unknown(2, 4, 5, EtcdRequest::DeleteRange(delete_b)),
        Operation::unknown(1, 6, 7, txn),
        Operation::new(0, 20, 21, put("c", "1"), put_ok(5)),
    ];
    let w = vec![watching_everything(
        1,
        vec![
            events_at(2, vec![WatchEvent::put(kv("a", "1", 2, 2, 1), None)]),
            events_at(3, vec![WatchEvent::put(kv("b", "1", 3, 3, 1), None)]),
            events_at(4, vec![WatchEvent::delete("b".to_string(), 4, None)]),
            events_at(5, vec![WatchEvent::put(kv("c", "1", 5, 5, 1), None)]),
        ],
    )];
    let run = check_etcd_run(&h, &w, &CheckOptions::default());
    assert!(run.ok(), "{}", run.explain(&h));
    assert_eq!(run.model.hints.changed_exactly[&4].len(), 1);
}

/// A watcher that keeps only DELETE events heard, by a progress notification at 4, that
/// nothing in its range was deleted at 2..=4: an unknown delete of `a` did not create revision
/// 3, an unknown put of `c` did (the simulator's power-loss-all scenario found the checker
/// choosing the delete and then blaming the watcher for missing it).
#[test]
fn a_watchers_silence_up_to_its_progress_rules_out_unknown_writes_there() {
    use crate::models::etcd::DeleteRangeRequest;
    use crate::watch::WatchFilter;
    let h = vec![
        Operation::new(0, 0, 1, put("a", "1"), put_ok(2)),
        Operation::unknown(2, 2, 30, put("c", "1")),
        Operation::unknown(
            1,
            3,
            30,
            EtcdRequest::DeleteRange(DeleteRangeRequest {
                range: KeyRange::key("a"),
                prev_kv: false,
            }),
        ),
        Operation::new(0, 10, 11, put("b", "1"), put_ok(4)),
    ];
    let deletes_only = WatcherHistory {
        id: 9,
        range: KeyRange::range("", "\0"),
        start_revision: 2,
        filters: vec![WatchFilter::NoPut],
        prev_kv: false,
        responses: vec![progress_at(4)],
    };
    let run = check_etcd_run(&h, &[deletes_only], &CheckOptions::default());
    assert!(run.ok(), "{}", run.explain(&h));
}

/// A watcher that heard of revision 3 without the event that created it (a server dropping
/// events): its silence contradicts the read that saw that write, but the history itself is
/// linearizable, so the check says so and the watch checks blame the watcher.
#[test]
fn a_watcher_missing_an_event_fails_the_watch_checks_not_linearizability() {
    let h = vec![
        Operation::new(0, 0, 1, put("a", "1"), put_ok(2)),
        Operation::unknown(1, 2, 30, put("b", "1")),
        Operation::new(
            0,
            10,
            11,
            get("b"),
            ok(
                3,
                OpResult::Range(RangeResult {
                    kvs: vec![kv("b", "1", 3, 3, 1)],
                    count: 1,
                    more: false,
                }),
            ),
        ),
    ];
    let w = watching_everything(
        4,
        vec![
            events_at(2, vec![WatchEvent::put(kv("a", "1", 2, 2, 1), None)]),
            progress_at(3),
        ],
    );
    let run = check_etcd_run(&h, &[w], &CheckOptions::default());
    assert_eq!(run.verdict(), Verdict::Linearizable, "{}", run.explain(&h));
    assert!(!run.watch.ok(), "{}", run.explain(&h));
}
