//! The checks every run gets: linearizability of the client history (the checker's etcd
//! model, which checks revisions) together with the watch guarantees
//! (`linearizability::run::check_etcd_run`), serializable reads against the linearization,
//! and the summary that collects them.
//!
//! Owns: turning a run's records into a checker history, running the checker with a deadline,
//! checking each serializable read against the store at its header revision in the found
//! linearization, and filling the [`Summary`]. Must never: pass a run the checker could not
//! decide (`unknown` fails the run).

pub mod lease;

use crate::catalogue::Scenario;
use crate::driver::{Collected, Driver};
use crate::history::{to_checker, Record};
use crate::nemesis::{AppliedFault, FaultSchedule};
use crate::report::{CheckerSummary, OpsSummary, Summary, WatchSummary};
use crate::stats::summarize;
use linearizability::models::etcd::{
    Etcd, EtcdRequest, EtcdResponse, EtcdState, KeyRange, KeyValue, OpResult, RangeRequest,
    RequestOp,
};
use linearizability::run::check_etcd_run;
use linearizability::{CheckOptions, CheckReport, CheckResult, FaultWindow};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The checker's wall-clock safety cap: the step budget (`CheckOptions::step_budget`, the same on
/// every machine) decides when it gives up (verdict unknown, run failed); passing this cap first
/// fails the run as "checker budget exceeded", never as a pass.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Fault windows for the HTML view (µs, as the history).
pub fn fault_windows(applied: &[AppliedFault]) -> Vec<FaultWindow> {
    applied
        .iter()
        .map(|a| FaultWindow {
            start: a.start_ms * 1000,
            end: a.end_ms * 1000,
            label: a.what.clone(),
        })
        .collect()
}

/// What requests with an unknown outcome may have done, which a linearization may place or
/// leave out: the values they write and the keys they delete.
#[derive(Default)]
struct UnknownWrites {
    values: BTreeSet<String>,
    deleted: Vec<KeyRange>,
}

impl UnknownWrites {
    fn of(records: &[Record]) -> UnknownWrites {
        let mut out = UnknownWrites::default();
        for r in records.iter().filter(|r| r.response.is_none()) {
            match &r.request {
                EtcdRequest::Put(p) => {
                    out.values.insert(p.value.clone());
                }
                EtcdRequest::DeleteRange(d) => out.deleted.push(d.range.clone()),
                EtcdRequest::Txn(t) => {
                    out.ops(&t.success);
                    out.ops(&t.failure);
                }
                _ => {}
            }
        }
        out
    }

    fn ops(&mut self, ops: &[RequestOp]) {
        for op in ops {
            match op {
                RequestOp::Put(p) => {
                    self.values.insert(p.value.clone());
                }
                RequestOp::DeleteRange(d) => self.deleted.push(d.range.clone()),
                RequestOp::Txn(t) => {
                    self.ops(&t.success);
                    self.ops(&t.failure);
                }
                RequestOp::Range(_) => {}
            }
        }
    }

    /// Whether a difference in key `k` between a read and the linearization's store can come
    /// from one of these requests: a value one of them wrote, or a delete of `k` (after which
    /// the key is created again with a new create revision and version 1).
    fn explain(&self, k: &str, got: &[&KeyValue], want: &[&KeyValue]) -> bool {
        got.iter()
            .chain(want.iter())
            .any(|kv| kv.key == k && self.values.contains(&kv.value))
            || self.deleted.iter().any(|r| r.contains(k))
    }
}

fn kvs(resp: &EtcdResponse) -> Vec<&KeyValue> {
    match resp {
        EtcdResponse::Ok {
            result: OpResult::Range(r),
            ..
        } => r.kvs.iter().collect(),
        _ => Vec::new(),
    }
}

/// Serializable reads whose result is not the store at their header revision (per the
/// linearization the checker found). Returns (checked, ambiguous, violations): a read is
/// ambiguous when it differs from the linearization only in keys that unknown-outcome requests
/// wrote or deleted.
pub fn stale_reads(
    model: &Etcd,
    records: &[Record],
    report: &CheckReport<EtcdState>,
) -> (usize, usize, Vec<String>) {
    let Some(part) = report.partitions.first() else {
        return (0, 0, Vec::new());
    };
    let unknown = UnknownWrites::of(records);
    let mut ambiguous = 0;
    // The store at each revision: the state after the last step that reached it.
    let mut at: BTreeMap<i64, &EtcdState> = BTreeMap::new();
    at.insert(part.init.revision, &part.init);
    for step in &part.linearization {
        at.insert(step.state.revision, &step.state);
    }
    let max = at.keys().next_back().copied().unwrap_or(0);
    let mut checked = 0;
    let mut bad = Vec::new();
    for r in records.iter().filter(|r| r.serializable) {
        let (EtcdRequest::Range(req), Some(EtcdResponse::Ok { revision, .. })) =
            (&r.request, &r.response)
        else {
            continue;
        };
        checked += 1;
        let Some(state) = at.get(revision) else {
            bad.push(format!(
                "serializable read by client {} from {} at {} µs saw revision {revision}, which no linearization reaches (last {max})",
                r.client, r.member, r.call_us
            ));
            continue;
        };
        let latest = EtcdRequest::Range(RangeRequest {
            revision: 0,
            ..req.clone()
        });
        let (_, expected) = model.apply(state, &latest);
        if Some(&expected) != r.response.as_ref() {
            let got = r.response.as_ref().map(kvs).unwrap_or_default();
            let want = kvs(&expected);
            // Per differing key: explained if either side's value came from an unknown write.
            let mut keys: BTreeSet<&str> = BTreeSet::new();
            for kv in got.iter().filter(|kv| !want.contains(kv)) {
                keys.insert(&kv.key);
            }
            for kv in want.iter().filter(|kv| !got.contains(kv)) {
                keys.insert(&kv.key);
            }
            if !keys.is_empty() && keys.iter().all(|k| unknown.explain(k, &got, &want)) {
                ambiguous += 1;
                continue;
            }
            bad.push(format!(
                "serializable read by client {} from {} at {} µs: got {:?}, the store at revision {revision} answers {:?}",
                r.client, r.member, r.call_us, r.response, expected
            ));
        }
    }
    (checked, ambiguous, bad)
}

/// Runs every check and builds the summary (verdict decided later by `report::judge`);
/// returns it with `history.html` and `history.json`.
pub fn assemble(
    sc: &Scenario,
    seed: u64,
    d: &mut Driver,
    c: &Collected,
    schedule: &FaultSchedule,
    source: &str,
) -> (Summary, String, String) {
    let (ops, _origin) = to_checker(&c.records, sc.stale_reads_as_linearizable);
    let watchers: Vec<_> = c.watches.iter().flat_map(|w| w.to_checker()).collect();
    let run = check_etcd_run(
        &ops,
        &watchers,
        &CheckOptions {
            timeout: Some(CHECK_TIMEOUT),
            ..CheckOptions::default()
        },
    );
    let run_summary = run.summary(&ops);
    let model = &run.model;
    let report = &run.linearizability;
    let windows = fault_windows(&c.applied);
    let title = format!("{} seed {seed}", sc.name);
    let html = linearizability::html::render_html(model, &ops, report, &windows, &title);
    let history_json = serde_json::to_string(&linearizability::parse::JsonHistory::Etcd {
        operations: ops.clone(),
        faults: windows,
        watches: watchers.clone(),
    })
    .unwrap_or_default();
    let (stale_checked, stale_ambiguous, stale_bad) = if sc.stale_reads_as_linearizable {
        (0, 0, Vec::new())
    } else {
        stale_reads(model, &c.records, report)
    };
    let result = match &report.result {
        CheckResult::Linearizable => "linearizable",
        CheckResult::NotLinearizable(_) => "not linearizable",
        CheckResult::Unknown(_) => "unknown",
    };
    let detail = match &report.result {
        CheckResult::NotLinearizable(_) | CheckResult::Unknown(_) => {
            Some(run_summary.explanation.clone())
        }
        CheckResult::Linearizable => None,
    };
    let checker = CheckerSummary {
        result: result.to_string(),
        seconds: run_summary.checker_ms / 1000.0,
        operations: ops.len(),
        detail,
        serializable_reads_checked: stale_checked,
        serializable_reads_ambiguous: stale_ambiguous,
        serializable_read_violations: stale_bad,
        signature: match &report.result {
            CheckResult::NotLinearizable(cx) => Some(crate::signature::linearizability(
                cx.reason.as_deref(),
                ops.get(cx.failed_op)
                    .map_or("request", |op| crate::signature::request_kind(&op.input)),
            )),
            _ => None,
        },
    };
    let watch = WatchSummary {
        watchers: c.watches.len(),
        streams: watchers.len(),
        batches: c.watches.iter().map(|w| w.batches.len()).sum(),
        events: run_summary.watch_events,
        interruptions: c.watches.iter().map(|w| w.interruptions.len()).sum(),
        result: if c.watches.is_empty() {
            "no watchers".into()
        } else if run_summary.watch_ok {
            "ok".into()
        } else {
            format!(
                "{} violations",
                run_summary.watch_violations.len() + run_summary.watch_violations_suppressed
            )
        },
        timeline: format!("{:?}", run_summary.watch_timeline),
        violations: run_summary
            .watch_violations
            .iter()
            .take(10)
            .map(|v| v.to_string())
            .collect(),
        signature: run_summary
            .watch_violations
            .first()
            .map(|v| crate::signature::watch(&v.guarantee.to_string(), &v.expected)),
    };
    let ops_summary = ops_summary(&c.records);
    let trace_matches = sc
        .expect
        .trace_contains
        .iter()
        .map(|m| (m.to_string(), d.c.log_count(m)))
        .collect();
    let names = d.c.member_names();
    let fsyncs = d.c.wal_fsync_histograms();
    let summary = Summary {
        scenario: sc.name.to_string(),
        seed,
        git_commit: crate::report::GIT_COMMIT.to_string(),
        verdict: String::new(),
        failures: c.problems.clone(),
        signatures: Vec::new(),
        replay: crate::report::replay_command(sc.name, seed, source),
        trace_hash: d.c.trace_hash(),
        trace_lines: d.c.log_lines(),
        sim_seconds: d.c.elapsed().as_secs_f64(),
        wall_seconds: 0.0,
        ops: ops_summary,
        leader_changes: d.leader_changes(),
        leaders: crate::driver::leaders(d).into_iter().collect(),
        leader_changes_seen_total: names
            .iter()
            .map(|n| d.c.leader_changes_seen(n))
            .max()
            .unwrap_or(0),
        wal_fsync_p99_ms: fsyncs
            .iter()
            .filter_map(|h| crate::driver::quantile_ms(h, 0.99))
            .reduce(f64::max),
        slow_wal_fsyncs: fsyncs
            .iter()
            .map(|h| crate::driver::slow_fsyncs(h))
            .max()
            .unwrap_or(0),
        fault_schedule_source: source.to_string(),
        traffic: None,
        rate: None,
        defects: Vec::new(),
        real: d.c.real_run(),
        fault_schedule: schedule.clone(),
        faults: c.applied.clone(),
        checker,
        watch,
        liveness: c.liveness.clone(),
        trace_matches,
        healthy_twin: None,
        sweep: None,
        operator: c.operator.clone(),
        leases: lease_summary(sc, d, c, schedule),
        membership: membership(d),
        versions: c.versions.clone(),
        watch_compaction_cancels: c
            .watches
            .iter()
            .flat_map(|w| &w.interruptions)
            .filter(|i| i.contains("compacted"))
            .count(),
    };
    (summary, html, history_json)
}

/// The lease timing check, for runs with lease clients: drift bounds from the schedule's
/// clock entries, leader changes from the driver.
fn lease_summary(
    sc: &Scenario,
    d: &Driver,
    c: &Collected,
    schedule: &FaultSchedule,
) -> Option<lease::LeaseSummary> {
    if sc.workload.leases.clients == 0 {
        return None;
    }
    let drifts = schedule.faults.iter().filter_map(|f| match f.fault {
        crate::nemesis::FaultKind::Clock { drift_ppm, .. } => Some(drift_ppm),
        _ => None,
    });
    let (fast, slow) = drifts.fold((0i64, 0i64), |(f, s), x| (f.max(x), s.max(-x)));
    let changes: Vec<u64> = d
        .leader_change_times()
        .iter()
        .map(|t| t.as_micros() as u64)
        .collect();
    Some(lease::check(&c.leases, fast, slow, &changes))
}

/// Each running member's member list at the end: `m0: m0 m1 m3(learner)`.
fn membership(d: &mut Driver) -> Vec<String> {
    d.c.active_members()
        .iter()
        .filter_map(|m| {
            let listed = d.c.member_list(m)?;
            let mut names: Vec<String> = listed
                .iter()
                .map(|x| {
                    let name = if x.name.is_empty() {
                        x.peer_urls.join(",")
                    } else {
                        x.name.clone()
                    };
                    if x.is_learner {
                        format!("{name}(learner)")
                    } else {
                        name
                    }
                })
                .collect();
            names.sort();
            Some(format!("{m}: {}", names.join(" ")))
        })
        .collect()
}

/// Operation counts and latencies.
pub fn ops_summary(all: &[Record]) -> OpsSummary {
    // Lease expiry events are the server's, not requests.
    let records: Vec<&Record> = all
        .iter()
        .filter(|r| !matches!(r.request, EtcdRequest::LeaseExpire { .. }))
        .collect();
    let mut write_lat: Vec<Duration> = records
        .iter()
        .filter(|r| r.is_write())
        .filter_map(|r| r.latency())
        .collect();
    let mut read_lat: Vec<Duration> = records
        .iter()
        .filter(|r| !r.is_write())
        .filter_map(|r| r.latency())
        .collect();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        *by_kind.entry(r.kind.clone()).or_default() += 1;
    }
    OpsSummary {
        total: records.len(),
        ok: records.iter().filter(|r| r.response.is_some()).count(),
        unknown: records
            .iter()
            .filter(|r| r.response.is_none() && !r.refused)
            .count(),
        refused: records.iter().filter(|r| r.refused).count(),
        writes_ok: write_lat.len(),
        reads_ok: read_lat.len(),
        write_p99_ms: summarize(&mut write_lat).p99_ms,
        read_p99_ms: summarize(&mut read_lat).p99_ms,
        by_kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linearizability::models::etcd::{KeyRange, PutRequest, RangeResult};

    fn rec(client: u64, t: u64, request: EtcdRequest, response: Option<EtcdResponse>) -> Record {
        Record {
            client,
            host: "c".into(),
            member: "m0".into(),
            kind: "k".into(),
            call_us: t,
            ret_us: t + 1,
            serializable: false,
            request,
            response,
            error: None,
            refused: false,
        }
    }

    fn put(v: &str) -> EtcdRequest {
        EtcdRequest::Put(PutRequest {
            key: "a".into(),
            value: v.into(),
            ..Default::default()
        })
    }

    fn read(v: &str, m: i64, rev: i64) -> (EtcdRequest, Option<EtcdResponse>) {
        let kv = KeyValue {
            key: "a".into(),
            value: v.into(),
            create_revision: 2,
            mod_revision: m,
            version: m - 1,
            lease: 0,
        };
        (
            EtcdRequest::Range(RangeRequest {
                range: KeyRange::key("a"),
                ..Default::default()
            }),
            Some(EtcdResponse::Ok {
                revision: rev,
                result: OpResult::Range(RangeResult {
                    kvs: vec![kv],
                    count: 1,
                    more: false,
                }),
            }),
        )
    }

    fn check(stale: (&str, i64, i64), unknown_second: bool) -> (usize, usize, Vec<String>) {
        let ok = |rev| EtcdResponse::Ok {
            revision: rev,
            result: OpResult::Put { prev_kv: None },
        };
        let mut records = vec![
            rec(0, 10, put("v1"), Some(ok(2))),
            rec(0, 20, put("v2"), (!unknown_second).then(|| ok(3))),
        ];
        let (req, resp) = read("v2", 3, 3);
        records.push(rec(1, 30, req, resp));
        let (req, resp) = read(stale.0, stale.1, stale.2);
        let mut r = rec(2, 40, req, resp);
        r.serializable = true;
        records.push(r);
        let (ops, _) = to_checker(&records, false);
        let run = check_etcd_run(&ops, &[], &CheckOptions::default());
        stale_reads(&run.model, &records, &run.linearizability)
    }

    #[test]
    fn an_unknown_delete_explains_a_key_created_again() {
        let kv = |create: i64, version: i64| KeyValue {
            key: "k".into(),
            value: "v9".into(),
            create_revision: create,
            mod_revision: 9,
            version,
            lease: 0,
        };
        let (got, want) = (kv(9, 1), kv(3, 4));
        let none = UnknownWrites::default();
        assert!(!none.explain("k", &[&got], &[&want]));
        let deleted = UnknownWrites {
            deleted: vec![KeyRange::key("k".to_string())],
            ..UnknownWrites::default()
        };
        assert!(deleted.explain("k", &[&got], &[&want]));
        assert!(!deleted.explain("other", &[&got], &[&want]));
    }

    #[test]
    fn serializable_reads_are_held_to_their_revision() {
        // An old value at an old revision is fine (serializable reads may be stale) ...
        assert_eq!(check(("v1", 2, 2), false), (1, 0, Vec::new()));
        // ... an old value claimed at a newer revision is not.
        let (checked, ambiguous, bad) = check(("v1", 2, 3), false);
        assert_eq!((checked, ambiguous, bad.len()), (1, 0, 1), "{bad:?}");
        // Unless the difference involves an unknown-outcome write the linearization may place
        // elsewhere.
        let (_, ambiguous, bad) = check(("v1", 2, 3), true);
        assert_eq!((ambiguous, bad.len()), (1, 0), "{bad:?}");
    }
}
