//! Watch check tests: a correct history passes, and each kind of violation is detected.

use super::*;
use crate::models::etcd::{
    DeleteRangeRequest, Etcd, EtcdRequest, EtcdResponse, PutRequest, RequestOp, TxnRequest,
};
use crate::{check, Model, Operation, Verdict};

fn put(key: &str, value: &str) -> EtcdRequest {
    EtcdRequest::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

fn requests() -> Vec<EtcdRequest> {
    vec![
        put("a", "1"),
        put("b", "1"),
        put("a", "2"),
        EtcdRequest::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: "a".into(),
                    value: "3".into(),
                    ..PutRequest::default()
                }),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    range: KeyRange::key("b"),
                    prev_kv: false,
                }),
            ],
            failure: vec![],
        }),
        EtcdRequest::DeleteRange(DeleteRangeRequest {
            range: KeyRange::key("a"),
            prev_kv: false,
        }),
        put("a", "4"),
    ]
}

/// The history of `requests()` run one after another, and its committed events.
fn history() -> Vec<Operation<EtcdRequest, EtcdResponse>> {
    let model = Etcd::default();
    let mut state = model.init();
    let mut ops = Vec::new();
    for (i, r) in requests().into_iter().enumerate() {
        let (next, resp) = model.apply(&state, &r);
        state = next;
        let t = i as u64 * 10;
        ops.push(Operation::new(i as u64 % 2, t, t + 5, r, resp));
    }
    ops
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

/// Committed events with their previous values.
fn committed() -> Vec<(WatchEvent, Option<KeyValue>)> {
    vec![
        (WatchEvent::put(kv("a", "1", 2, 2, 1), None), None),
        (WatchEvent::put(kv("b", "1", 3, 3, 1), None), None),
        (
            WatchEvent::put(kv("a", "2", 2, 4, 2), None),
            Some(kv("a", "1", 2, 2, 1)),
        ),
        (
            WatchEvent::put(kv("a", "3", 2, 5, 3), None),
            Some(kv("a", "2", 2, 4, 2)),
        ),
        (
            WatchEvent::delete("b", 5, None),
            Some(kv("b", "1", 3, 3, 1)),
        ),
        (
            WatchEvent::delete("a", 6, None),
            Some(kv("a", "3", 2, 5, 3)),
        ),
        (WatchEvent::put(kv("a", "4", 7, 7, 1), None), None),
    ]
}

fn timeline() -> Timeline {
    let (t, v) = Timeline::from_events(committed().into_iter().map(|(e, _)| e), true);
    assert!(v.is_empty());
    t
}

/// A correct watcher: one response per revision, each with header = its revision.
fn watcher(
    id: u64,
    range: KeyRange,
    start: i64,
    filters: Vec<WatchFilter>,
    prev_kv: bool,
) -> WatcherHistory {
    let mut w = WatcherHistory {
        id,
        range,
        start_revision: start,
        filters,
        prev_kv,
        responses: vec![WatchResponse {
            revision: 1,
            created: true,
            ..WatchResponse::default()
        }],
    };
    for (mut e, prev) in committed() {
        if e.revision() < start || !w.range.contains(&e.kv.key) || !w.wants(e.kind) {
            continue;
        }
        if prev_kv {
            e.prev_kv = prev;
        }
        match w.responses.last_mut() {
            Some(r) if r.revision == e.revision() => r.events.push(e),
            _ => w.responses.push(WatchResponse {
                revision: e.revision(),
                events: vec![e],
                ..WatchResponse::default()
            }),
        }
    }
    w
}

fn all_keys() -> KeyRange {
    KeyRange::range("", "\0")
}

fn watchers() -> Vec<WatcherHistory> {
    vec![
        watcher(10, all_keys(), 1, vec![], true),
        watcher(
            11,
            KeyRange::key("a"),
            4,
            vec![WatchFilter::NoDelete],
            false,
        ),
        watcher(
            12,
            KeyRange::range("b", "c"),
            3,
            vec![WatchFilter::NoPut],
            true,
        ),
    ]
}

/// Checks `ws` against the committed timeline and asserts exactly `expected` guarantees broke.
fn assert_only(ws: &[WatcherHistory], expected: &[Guarantee]) -> WatchReport {
    let report = check_watches(ws, &timeline());
    let mut got: Vec<Guarantee> = report.violations.iter().map(|v| v.guarantee).collect();
    got.sort();
    got.dedup();
    assert_eq!(got, expected, "{:#?}", report.violations);
    report
}

#[test]
fn correct_history_passes_with_every_timeline() {
    let ws = watchers();
    let report = assert_only(&ws, &[]);
    assert_eq!(report.watchers, 3);
    assert_eq!(report.events, 7 + 3 + 1);

    // The timeline read off the etcd model's linearization is the same.
    let h = history();
    let model = Etcd::for_history(&h);
    let lin = check(&model, &h);
    assert_eq!(lin.result.verdict(), Verdict::Linearizable);
    let p = &lin.partitions[0];
    let from_lin = Timeline::from_linearization(&h, &p.init, &p.linearization);
    assert_eq!(from_lin, timeline());
    assert!(check_watches(&ws, &from_lin).ok());

    // So is the union of the watchers' events (watcher 10 covers everything from 1).
    let (union, conflicts) = Timeline::from_watches(&ws);
    assert!(conflicts.is_empty());
    assert_eq!(union, timeline());
}

#[test]
fn start_revision_zero_uses_the_creation_header() {
    let mut w = watcher(1, all_keys(), 5, vec![], false);
    w.start_revision = 0;
    w.responses[0].revision = 4;
    assert_eq!(w.effective_start(), Some(5));
    assert_only(&[w.clone()], &[]);
    w.responses[0].revision = 3; // then revision 4 is missing at the start
    assert_only(&[w], &[Guarantee::Resumable]);
}

#[test]
fn detects_unordered_events() {
    let mut ws = watchers();
    ws[0].responses.swap(2, 3);
    let r = assert_only(&ws, &[Guarantee::Ordered]);
    assert_eq!(r.violations[0].revision, 3);
    // A header below its events is also out of order.
    let mut ws = watchers();
    ws[0].responses[3].revision = 2;
    assert_only(&ws, &[Guarantee::Ordered]);
}

#[test]
fn detects_duplicate_events() {
    let mut ws = watchers();
    let dup = ws[0].responses[2].clone();
    ws[0].responses.insert(3, dup);
    let r = assert_only(&ws, &[Guarantee::Unique]);
    assert_eq!(r.violations[0].key.as_deref(), Some("b"));
}

#[test]
fn detects_a_revision_split_across_responses() {
    let mut ws = watchers();
    // Response #4 holds revision 5's two events; move the second into its own response.
    let second = ws[0].responses[4].events.remove(1);
    ws[0].responses.insert(
        5,
        WatchResponse {
            revision: 5,
            events: vec![second],
            ..WatchResponse::default()
        },
    );
    let r = assert_only(&ws, &[Guarantee::Atomic]);
    assert_eq!(r.violations[0].revision, 5);
}

#[test]
fn detects_events_at_or_before_a_progress_notification() {
    let progress = |revision| WatchResponse {
        revision,
        progress_notify: true,
        ..WatchResponse::default()
    };
    let mut ws = watchers();
    ws[0].responses.insert(5, progress(5)); // after revision 5: fine
    assert_only(&ws, &[]);
    ws[0].responses.insert(5, progress(6)); // claims 6 was sent, then 6 arrives
    assert_only(&ws, &[Guarantee::Bookmarkable]);

    let mut ws = watchers();
    ws[0].responses.insert(5, progress(4)); // behind the last event (5)
    assert_only(&ws, &[Guarantee::Bookmarkable]);

    // A progress notification promises everything up to it: a gap before it is a violation.
    let mut ws = watchers();
    ws[0].responses.truncate(5); // events up to 5
    ws[0].responses.push(progress(7)); // 6 and 7 never sent
    let r = assert_only(&ws, &[Guarantee::Bookmarkable]);
    assert_eq!(r.violations.len(), 2);
}

#[test]
fn detects_a_gap() {
    let mut ws = watchers();
    ws[0].responses.remove(3); // revision 4
    let r = assert_only(&ws, &[Guarantee::Reliable]);
    assert_eq!(
        (r.violations[0].revision, r.violations[0].key.as_deref()),
        (4, Some("a"))
    );
    // A gap in a filtered watcher (a only, no deletes).
    let mut ws = watchers();
    ws[1].responses.remove(2); // watcher 11's revision 5 (a=3)
    assert_only(&ws, &[Guarantee::Reliable]);
}

#[test]
fn detects_a_watch_that_does_not_resume_at_its_start() {
    let mut ws = watchers();
    ws[1].responses.remove(1); // watcher 11 (from 4) starts at 5
    let r = assert_only(&ws, &[Guarantee::Resumable]);
    assert_eq!(r.violations[0].revision, 4);

    let mut ws = watchers();
    let early = watchers()[0].responses[1].clone(); // revision 2, before 11's start
    ws[1].responses.insert(1, early);
    assert_only(&ws, &[Guarantee::Resumable]);

    // Canceled as compacted although nothing it needed was compacted.
    let mut ws = watchers();
    ws[2].responses.push(WatchResponse {
        revision: 7,
        canceled: true,
        compact_revision: 4,
        ..WatchResponse::default()
    });
    assert_only(&ws, &[Guarantee::Resumable]);
    // Legitimately canceled: its start (3) is below the compact revision (4).
    let mut ws = watchers();
    ws[2].responses.truncate(1);
    ws[2].responses.push(WatchResponse {
        revision: 7,
        canceled: true,
        compact_revision: 4,
        ..WatchResponse::default()
    });
    assert_only(&ws, &[]);
}

#[test]
fn detects_wrong_prev_kv() {
    let mut ws = watchers();
    ws[0].responses[3].events[0].prev_kv = Some(kv("a", "0", 2, 2, 1));
    let r = assert_only(&ws, &[Guarantee::PrevKv]);
    assert_eq!(r.violations[0].revision, 4);

    let mut ws = watchers();
    ws[0].responses[1].events[0].prev_kv = Some(kv("a", "0", 1, 1, 1)); // a did not exist
    assert_only(&ws, &[Guarantee::PrevKv]);

    let mut ws = watchers();
    ws[0].responses[3].events[0].prev_kv = None; // missing
    assert_only(&ws, &[Guarantee::PrevKv]);

    let mut ws = watchers();
    ws[1].responses[1].events[0].prev_kv = Some(kv("a", "1", 2, 2, 1)); // not requested
    assert_only(&ws, &[Guarantee::PrevKv]);
}

/// etcd reads an event's previous key-value at the revision before it and leaves it out when
/// that revision is compacted: a missing prev_kv at or below the compaction is no violation,
/// above it still is.
#[test]
fn prev_kv_may_be_missing_where_the_history_was_compacted() {
    let mut ws = watchers();
    ws[0].responses[3].events[0].prev_kv = None; // the event at revision 4
    let mut t = timeline();
    t.compacted_to = 4;
    let report = check_watches(&ws, &t);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    t.compacted_to = 3;
    let report = check_watches(&ws, &t);
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    assert_eq!(report.violations[0].guarantee, Guarantee::PrevKv);
}

/// A compaction whose answer was lost may have happened (its member applied it and died):
/// the linearization may leave it out, but a watch may still miss the previous key-values
/// it compacted away.
#[test]
fn an_unanswered_compaction_bounds_missing_prev_kvs_too() {
    let mut h = history();
    let end = h.last().map_or(0, |op| op.ret);
    h.push(Operation {
        client: 7,
        call: end + 10,
        ret: end + 20,
        input: EtcdRequest::Compact { revision: 4 },
        output: None,
    });
    let model = Etcd::for_history(&h);
    let lin = check(&model, &h);
    assert_eq!(lin.result.verdict(), Verdict::Linearizable);
    let p = &lin.partitions[0];
    let t = Timeline::from_linearization(&h, &p.init, &p.linearization);
    assert_eq!(t.compacted_to, 4);
    let mut ws = watchers();
    ws[0].responses[3].events[0].prev_kv = None; // the event at revision 4
    let report = check_watches(&ws, &t);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[test]
fn detects_wrong_is_create() {
    // An update presented as a create (and so not the committed event either).
    let mut ws = watchers();
    ws[0].responses[3].events[0].kv.create_revision = 4;
    ws[0].responses[3].events[0].kv.version = 1;
    assert_only(&ws, &[Guarantee::IsCreate, Guarantee::Consistent]);
    // A create presented as an update.
    let mut ws = watchers();
    ws[0].responses[6].events[0].kv.create_revision = 2;
    assert_only(&ws, &[Guarantee::IsCreate, Guarantee::Consistent]);
    // Beyond the committed history, self-consistency still applies.
    let mut ws = watchers();
    ws[0].responses.push(WatchResponse {
        revision: 8,
        events: vec![WatchEvent::put(kv("c", "1", 8, 8, 2), None)],
        ..WatchResponse::default()
    });
    assert_only(&ws, &[Guarantee::IsCreate]);
}

#[test]
fn detects_filtered_and_out_of_range_events() {
    let mut ws = watchers();
    let mut delete = ws[0].responses[5].clone(); // revision 6: DELETE a
    delete.events[0].prev_kv = None;
    ws[1].responses.insert(3, delete);
    let r = assert_only(&ws, &[Guarantee::Filter]);
    assert!(r.violations[0].expected.contains("no DELETE"), "{r:?}");

    let mut ws = watchers();
    let put_b = ws[0].responses[2].clone(); // revision 3: PUT b, watcher 11 starts at 4
    ws[2].responses.insert(1, put_b); // watcher 12 filters PUTs
    assert_only(&ws, &[Guarantee::Filter]);

    let mut ws = watchers();
    let b = ws[0].responses[2].events[0].clone();
    ws[1].responses[1].events.push(b); // b in a's watch
    let r = check_watches(&ws, &timeline());
    assert!(r.has(Guarantee::Filter));
}

#[test]
fn detects_invented_and_conflicting_events() {
    let mut ws = watchers();
    ws[0].responses[2].events[0].kv.value = "x".into();
    assert_only(&ws, &[Guarantee::Consistent]);

    let mut ws = watchers();
    ws[0].responses[2]
        .events
        .push(WatchEvent::put(kv("z", "1", 3, 3, 1), None));
    let r = assert_only(&ws, &[Guarantee::Consistent]);
    assert!(r.violations[0].expected.contains("never committed"));

    // Two watchers disagree: the union reports it.
    let mut ws = watchers();
    ws[1].responses[1].events[0].kv.value = "other".into();
    let (_, conflicts) = Timeline::from_watches(&ws);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].guarantee, Guarantee::Consistent);
}

#[test]
fn many_violations_are_capped_per_guarantee() {
    let mut w = WatcherHistory {
        id: 1,
        range: all_keys(),
        start_revision: 2,
        ..WatcherHistory::default()
    };
    let events: Vec<WatchEvent> = (2..40)
        .map(|r| WatchEvent::put(kv(&format!("k{r}"), "v", r, r, 1), None))
        .collect();
    let (t, _) = Timeline::from_events(events.clone(), true);
    w.responses.push(WatchResponse {
        revision: 40,
        events: vec![events[0].clone(), events[37].clone()],
        ..WatchResponse::default()
    });
    let r = check_watches(&[w], &t);
    assert_eq!(r.violations.len(), MAX_PER_GUARANTEE);
    assert_eq!(r.suppressed, 36 - MAX_PER_GUARANTEE);
    assert!(!r.ok());
}

#[test]
fn watch_history_json_round_trips() {
    let text = r#"{"id":3,"key":"a","range_end":"b","start_revision":4,"filters":["no_delete"],
        "prev_kv":true,"responses":[{"revision":4,"created":true},
        {"revision":5,"events":[{"type":"put","kv":{"key":"a","value":"1","create_revision":5,
        "mod_revision":5,"version":1}}]},{"revision":5,"progress_notify":true},
        {"revision":9,"canceled":true,"compact_revision":7}]}"#;
    let w: WatcherHistory = serde_json::from_str(text).unwrap();
    assert_eq!(w.range, KeyRange::range("a", "b"));
    assert_eq!(w.filters, vec![WatchFilter::NoDelete]);
    assert_eq!(w.responses[1].events[0].kind, EventType::Put);
    assert!(w.responses[2].is_progress());
    let back: WatcherHistory = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(w, back);
}
