//! The standard timeline of a run, in either world: wait for the first leader, start the
//! traffic, apply the fault schedule, heal, prove liveness (a stable leader, then a committed
//! write), read every member's data back and compare the members' key-space hashes.
//!
//! Owns: the order of those phases and their bounds. Must never: let a failure of the server
//! under test abort the run (it is an observation that fails the verdict), or judge the
//! history (that is `checks`).

use crate::catalogue::Scenario;
use crate::cluster::{host, Cluster};
use crate::driver::{Collected, Driver};
use crate::exec::{execute_recorded, Issuer};
use crate::history::Recorder;
use crate::nemesis::{self, Active, AppliedFault, FaultSchedule};
use crate::operator::{OpContext, ACTION_DEADLINE};
use crate::report::{Liveness, VersionStep};
use crate::workload::{self, Stop, OP_TIMEOUT};
use linearizability::models::etcd::{EtcdRequest, KeyRange, PutRequest, RangeRequest};
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// The first leader must be elected within this.
pub const FIRST_LEADER_BOUND: Duration = Duration::from_secs(10);
/// After the faults heal: a stable leader within this, then a write committed within this.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(15);

/// The standard timeline (also used by the sweep for its setup and tail).
pub(crate) fn timeline(
    d: &mut Driver,
    sc: &Scenario,
    schedule: &FaultSchedule,
    rec: &Recorder,
    mut rng: ChaCha8Rng,
) -> anyhow::Result<Collected> {
    let mut problems = Vec::new();
    if d.run_until(FIRST_LEADER_BOUND, |s| s.stable_leader().is_some())?
        .is_none()
    {
        problems.push(format!(
            "no leader within {:?} of the start",
            FIRST_LEADER_BOUND
        ));
    }
    let stop = Stop::default();
    let hosts = workload::start(&mut *d.c, &sc.workload, rec, &stop)?;
    let t0 = d.c.elapsed();
    // Fault events: (time, start?, entry).
    let mut events: Vec<(Duration, bool, usize)> = Vec::new();
    let end = t0 + sc.duration;
    for (i, f) in schedule.faults.iter().enumerate() {
        let at = t0 + Duration::from_millis(f.at_ms);
        let until = (at + Duration::from_millis(f.duration_ms)).min(end);
        events.push((at.min(end), true, i));
        events.push((until, false, i));
    }
    events.sort_by_key(|(t, start, i)| (*t, *start, *i));
    let mut active: BTreeMap<usize, (Active, u64, String, String)> = BTreeMap::new();
    let mut applied = Vec::new();
    let mut versions = Vec::new();
    let mut ops = OpContext {
        rec: rec.clone(),
        changes: d.changes.clone(),
        next_member: d.c.member_names().len(),
        hosts: Vec::new(),
    };
    for (t, start, i) in events {
        d.run_to(t)?;
        let now_ms = d.c.elapsed().as_millis() as u64;
        if start {
            if let Some(step) = release_step(&schedule.faults[i].fault) {
                versions.push(version_step(d, step));
            }
            let (what, a) = nemesis::apply(&mut *d.c, &schedule.faults[i], i, &mut rng, &mut ops)?;
            let kind = schedule.faults[i].fault.kind_name();
            active.insert(i, (a, now_ms, what, kind));
        } else if let Some((a, started, what, kind)) = active.remove(&i) {
            nemesis::undo(&mut *d.c, a)?;
            applied.push(AppliedFault {
                start_ms: started,
                end_ms: now_ms,
                what,
                kind,
            });
        }
    }
    d.run_to(end)?;
    // Anything still active is undone at the end of the workload.
    for (_, (a, started, what, kind)) in std::mem::take(&mut active) {
        nemesis::undo(&mut *d.c, a)?;
        applied.push(AppliedFault {
            start_ms: started,
            end_ms: d.c.elapsed().as_millis() as u64,
            what,
            kind,
        });
    }
    applied.sort_by_key(|a| a.start_ms);
    stop.stop();
    let drain = OP_TIMEOUT * 3;
    if d.run_until(drain, |s| hosts.iter().all(|h| s.host_done(h)))?
        .is_none()
    {
        problems.push(format!("workload clients did not stop within {drain:?}"));
    }
    let bound = ACTION_DEADLINE * 2;
    if d.run_until(bound, |s| ops.hosts.iter().all(|h| s.host_done(h)))?
        .is_none()
    {
        problems.push(format!("operator actions did not finish within {bound:?}"));
    }
    let liveness = liveness(d, rec)?;
    final_reads(d, rec)?;
    problems.extend(member_hashes_disagree(d)?);
    if !versions.is_empty() {
        versions.push(version_step(d, "end".into()));
    }
    let mut c = collect(rec, applied, liveness, problems);
    c.versions = versions;
    Ok(c)
}

/// The version step a schedule entry gets (release changes and downgrade actions).
fn release_step(f: &nemesis::FaultKind) -> Option<String> {
    match f {
        nemesis::FaultKind::RestartAs { node, release } => {
            Some(format!("before restart {node} as {release}"))
        }
        nemesis::FaultKind::Downgrade { action, version } => {
            Some(format!("before downgrade {action} {version}"))
        }
        _ => None,
    }
}

/// Every member's versions now.
fn version_step(d: &mut Driver, step: String) -> VersionStep {
    let mut clusters = BTreeSet::new();
    let members =
        d.c.active_members()
            .into_iter()
            .map(|m| match d.c.versions(&m) {
                Ok(v) => {
                    clusters.insert(v.etcdcluster.clone());
                    let storage = v.storage.unwrap_or_else(|| "-".into());
                    format!(
                        "{m} {} cluster {} storage {storage}",
                        v.etcdserver, v.etcdcluster
                    )
                }
                Err(down) => format!("{m} down: {down}"),
            })
            .collect();
    let cluster = match clusters.len() {
        0 => "none up".to_string(),
        1 => clusters.into_iter().next().unwrap_or_default(),
        _ => format!(
            "mixed {}",
            clusters.into_iter().collect::<Vec<_>>().join("/")
        ),
    };
    VersionStep {
        at_ms: d.c.elapsed().as_millis() as u64,
        step,
        cluster,
        members,
    }
}

fn collect(
    rec: &Recorder,
    applied: Vec<AppliedFault>,
    liveness: Liveness,
    problems: Vec<String>,
) -> Collected {
    Collected {
        records: rec.records.borrow().clone(),
        watches: rec.watches.borrow().clone(),
        applied,
        liveness,
        problems,
        leases: rec.leases.borrow().clone(),
        operator: rec.operator.borrow().clone(),
        versions: Vec::new(),
    }
}

/// After the faults heal: time to a stable leader, then to a committed write (recorded).
fn liveness(d: &mut Driver, rec: &Recorder) -> anyhow::Result<Liveness> {
    let leader = d.run_until(LIVENESS_BOUND, |s| s.stable_leader().is_some())?;
    let done = Rc::new(Cell::new(false));
    let flag = done.clone();
    let members = d.c.active_members();
    let seed = d.c.seed();
    let r = rec.clone();
    let probe = host(move |cx| async move {
        let mut at = 0usize;
        let mut n = 0u64;
        while !flag.get() {
            let member = members[at % members.len()].clone();
            at += 1;
            n += 1;
            let Ok(mut c) = cx.client(&member) else {
                continue;
            };
            let req = EtcdRequest::Put(PutRequest {
                key: "/liveness/probe".into(),
                value: format!("probe-{seed}-{n}"),
                ..Default::default()
            });
            let by = Issuer {
                client: 9_000 + n,
                host: "probe",
                member: &member,
                kind: "liveness-put",
            };
            let record = execute_recorded(&mut c, req, false, Duration::from_secs(1), by).await;
            let ok = record.response.is_some();
            r.records.borrow_mut().push(record);
            if ok {
                flag.set(true);
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    d.c.spawn_host("probe", probe)?;
    let write = d.run_until(LIVENESS_BOUND, |s| s.host_done("probe"))?;
    if write.is_none() {
        done.set(true);
    }
    Ok(Liveness {
        bound_ms: LIVENESS_BOUND.as_millis() as u64,
        leader_after_heal_ms: leader.map(|t| t.as_millis() as u64),
        write_after_heal_ms: write.map(|t| t.as_millis() as u64),
    })
}

/// How long the members get to reach the same revision before their hashes are compared.
const HASH_SETTLE: Duration = Duration::from_secs(5);

/// Every running member holds the same key space: once they reach the same revision (or
/// after [`HASH_SETTLE`]), their hashes at the lowest current revision among them (etcd's
/// HashKV, as its corruption checks compare members) must be equal wherever their compaction
/// revisions are. Returns the disagreements.
fn member_hashes_disagree(d: &mut Driver) -> anyhow::Result<Vec<String>> {
    let revisions = |c: &mut dyn Cluster| -> BTreeSet<i64> {
        c.active_members()
            .iter()
            .filter_map(|m| c.revision(m))
            .collect()
    };
    d.run_until(HASH_SETTLE, |c| revisions(c).len() <= 1)?;
    let Some(rev) = revisions(&mut *d.c).into_iter().next() else {
        return Ok(Vec::new());
    };
    // (compaction revision) -> hash -> members
    let mut groups: BTreeMap<i64, BTreeMap<u32, Vec<String>>> = BTreeMap::new();
    for m in d.c.active_members() {
        if let Some(h) = d.c.hash_kv(&m, rev) {
            groups
                .entry(h.compact_revision)
                .or_default()
                .entry(h.hash)
                .or_default()
                .push(m);
        }
    }
    Ok(groups
        .into_iter()
        .filter(|(_, by_hash)| by_hash.len() > 1)
        .map(|(compacted, by_hash)| {
            let seen: Vec<String> = by_hash
                .iter()
                .map(|(hash, ms)| format!("{} hash {hash}", ms.join(",")))
                .collect();
            format!(
                "members' key spaces differ at revision {rev} (compacted at {compacted}): {}",
                seen.join("; ")
            )
        })
        .collect())
}

/// A linearizable read of every key from every member, recorded: acknowledged writes must be
/// there (the checker sees these reads after everything else).
fn final_reads(d: &mut Driver, rec: &Recorder) -> anyhow::Result<()> {
    let members = d.c.active_members();
    let r = rec.clone();
    let reads = host(move |cx| async move {
        for (i, member) in members.iter().enumerate() {
            for attempt in 0..3u64 {
                let Ok(mut c) = cx.client(member) else {
                    continue;
                };
                let req = EtcdRequest::Range(RangeRequest {
                    range: KeyRange::range("/", "0"),
                    ..Default::default()
                });
                let by = Issuer {
                    client: 9_500 + i as u64 * 10 + attempt,
                    host: "final",
                    member,
                    kind: "final-read",
                };
                let record = execute_recorded(&mut c, req, false, OP_TIMEOUT, by).await;
                let ok = record.response.is_some();
                r.records.borrow_mut().push(record);
                if ok {
                    break;
                }
            }
        }
    });
    d.c.spawn_host("final", reads)?;
    d.run_until(OP_TIMEOUT * 10, |s| s.host_done("final"))?;
    Ok(())
}

/// The standard timeline for the sweep, which drives its own schedule.
pub fn timeline_for_sweep(
    d: &mut Driver,
    sc: &Scenario,
    rec: &Recorder,
    steps: impl FnOnce(&mut Driver) -> anyhow::Result<()>,
) -> anyhow::Result<Collected> {
    let mut problems = Vec::new();
    if d.run_until(FIRST_LEADER_BOUND, |s| s.stable_leader().is_some())?
        .is_none()
    {
        problems.push(format!(
            "no leader within {FIRST_LEADER_BOUND:?} of the start"
        ));
    }
    let stop = Stop::default();
    let hosts = workload::start(&mut *d.c, &sc.workload, rec, &stop)?;
    steps(d)?;
    stop.stop();
    if d.run_until(OP_TIMEOUT * 3, |s| hosts.iter().all(|h| s.host_done(h)))?
        .is_none()
    {
        problems.push("workload clients did not stop".into());
    }
    let liveness = liveness(d, rec)?;
    final_reads(d, rec)?;
    Ok(collect(rec, Vec::new(), liveness, problems))
}
