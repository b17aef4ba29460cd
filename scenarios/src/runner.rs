//! Running one scenario on one seed: build the simulated cluster, wait for the first leader,
//! start the traffic, apply the fault schedule, heal everything, prove liveness (a leader
//! within a bound and a committed write), read every member's data back, then check.
//!
//! Owns: the [`Driver`] (the simulation plus what the harness observes at every step: leader
//! terms), the run's timeline, and assembling the [`Outcome`]. Must never: let a failure of the
//! server under test abort the run (it is an observation that fails the verdict), or use the
//! wall clock for anything but `wall_seconds`.

use crate::catalogue::{Kind, Scenario};
use crate::checks;
use crate::exec::{execute_recorded, Issuer};
use crate::history::{LeaseLog, OperatorEvent};
use crate::history::{Record, Recorder, WatchLog};
use crate::nemesis::{self, Active, AppliedFault, FaultSchedule};
use crate::operator::{OpContext, WorldChange, WorldChanges, ACTION_DEADLINE};
use crate::report::{self, Liveness, Summary, VersionStep};
use crate::workload::{self, Stop, OP_TIMEOUT};
use anyhow::Context;
use etcd_server::etcdserver::FSYNC_BUCKETS;
use linearizability::models::etcd::{EtcdRequest, KeyRange, PutRequest, RangeRequest};
use rand_chacha::ChaCha8Rng;
use sim::{SimConfig, Simulation};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// The first leader must be elected within this.
pub const FIRST_LEADER_BOUND: Duration = Duration::from_secs(10);
/// After the faults heal: a stable leader within this, then a write committed within this.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(15);

/// How a run is configured beyond the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Use this schedule instead of the one drawn from the seed.
    pub schedule: Option<FaultSchedule>,
    /// Where the schedule came from, for the summary (`seed` when drawn).
    pub schedule_source: Option<String>,
    /// Skip the healthy-twin run of `healthy_twin_stable` scenarios.
    pub skip_twin: bool,
    /// Run with one of `workload::TRAFFIC_PROFILES` instead of the scenario's traffic.
    pub traffic: Option<String>,
    /// Requests per simulated second instead of the scenario's (or the profile's).
    pub rate: Option<u32>,
    /// Known-bug defects switched on in every member besides the scenario's (`--defect`).
    pub defects: Vec<String>,
}

impl RunOptions {
    /// The arguments of `etcd-sim run` that reproduce the overrides.
    fn override_args(&self) -> String {
        let mut out = String::new();
        if let Some(t) = &self.traffic {
            out.push_str(&format!(" --traffic {t}"));
        }
        if let Some(r) = self.rate {
            out.push_str(&format!(" --rate {r}"));
        }
        for d in &self.defects {
            out.push_str(&format!(" --defect {d}"));
        }
        out
    }
}

/// `sc` with the overrides of `opts` applied.
fn with_overrides(sc: &Scenario, opts: &RunOptions) -> anyhow::Result<Scenario> {
    let mut sc = sc.clone();
    if !opts.defects.is_empty() {
        sc.flags
            .extend(crate::catalogue::defect_flags(&opts.defects.join(",")));
    }
    if let Some(t) = &opts.traffic {
        sc.workload = sc.workload.with_traffic(t).map_err(anyhow::Error::msg)?;
    }
    if let Some(r) = opts.rate {
        sc.workload.rate = r.max(1);
    }
    Ok(sc)
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The summary (also `summary.json`).
    pub summary: Summary,
    /// Every request.
    pub records: Vec<Record>,
    /// Every watcher.
    pub watches: Vec<WatchLog>,
    /// The trace, JSON lines.
    pub trace: String,
    /// `history.html`.
    pub html: String,
    /// `history.json` (the checker's format: `etcd-sim check history.json`).
    pub history_json: String,
    /// The schedule used.
    pub schedule: FaultSchedule,
    /// The sweep's plot, for `disk-latency-sweep`.
    pub svg: Option<String>,
}

/// The simulation plus what the harness observes after every step.
pub struct Driver {
    /// The world.
    pub s: Simulation,
    /// Terms in which some member led, with when and who first.
    pub terms: BTreeMap<u64, (Duration, String)>,
    /// World changes operator hosts asked for, applied after each step.
    pub changes: WorldChanges,
}

impl Driver {
    /// Wraps a simulation.
    pub fn new(s: Simulation) -> Self {
        Driver {
            s,
            terms: BTreeMap::new(),
            changes: WorldChanges::default(),
        }
    }

    fn apply_changes(&mut self) -> anyhow::Result<()> {
        for c in self.changes.drain() {
            match c {
                WorldChange::Start { name, flags } => self
                    .s
                    .add_member(&name, &flags)
                    .with_context(|| format!("start new member {name}"))?,
                WorldChange::Retire(name) => self
                    .s
                    .retire_member(&name)
                    .with_context(|| format!("retire member {name}"))?,
            }
        }
        Ok(())
    }

    fn observe(&mut self) {
        if let Some(l) = self.s.leader() {
            if let Some(st) = self.s.status(&l) {
                let now = self.s.elapsed();
                self.terms.entry(st.term).or_insert((now, l));
            }
        }
    }

    /// One step.
    pub fn step(&mut self) -> anyhow::Result<()> {
        self.s.step().context("simulation step")?;
        self.observe();
        self.apply_changes()
    }

    /// Runs until simulated time `t`.
    pub fn run_to(&mut self, t: Duration) -> anyhow::Result<()> {
        while self.s.elapsed() < t {
            self.step()?;
        }
        Ok(())
    }

    /// Runs until `cond` or `timeout`; how long it took, `None` on timeout.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut cond: impl FnMut(&Simulation) -> bool,
    ) -> anyhow::Result<Option<Duration>> {
        let start = self.s.elapsed();
        loop {
            if cond(&self.s) {
                return Ok(Some(self.s.elapsed() - start));
            }
            if self.s.elapsed() - start >= timeout {
                return Ok(None);
            }
            self.step()?;
        }
    }

    /// Leader changes after the first election (distinct leader terms − 1).
    pub fn leader_changes(&self) -> u64 {
        (self.terms.len() as u64).saturating_sub(1)
    }

    /// When each leader change after the first election happened (a new term first led).
    pub fn leader_change_times(&self) -> Vec<Duration> {
        let first = self.terms.values().map(|(t, _)| *t).min();
        self.terms
            .values()
            .map(|(t, _)| *t)
            .filter(|t| Some(*t) != first)
            .collect()
    }

    /// Leader changes whose term first led in `[from, to)`.
    pub fn leader_changes_between(&self, from: Duration, to: Duration) -> u64 {
        self.leader_change_times()
            .into_iter()
            .filter(|t| *t >= from && *t < to)
            .count() as u64
    }
}

/// WAL fsync histogram of every running member, summed: (counts per bucket, last = +Inf).
pub fn fsync_histogram(s: &Simulation) -> Vec<u64> {
    members_histogram(s, |m| m.wal_fsync().0)
}

/// The backend commit histogram bucket counts summed over the members that are up.
pub fn backend_commit_histogram(s: &Simulation) -> Vec<u64> {
    members_histogram(s, |m| m.backend_commit().0)
}

fn members_histogram(
    s: &Simulation,
    counts: impl Fn(&etcd_server::etcdserver::ServerMetrics) -> Vec<u64>,
) -> Vec<u64> {
    let mut sum = vec![0u64; FSYNC_BUCKETS.len() + 1];
    for m in s.member_names() {
        if let Some(srv) = s.server(&m) {
            for (i, c) in counts(srv.metrics()).iter().enumerate() {
                if let Some(x) = sum.get_mut(i) {
                    *x += c;
                }
            }
        }
    }
    sum
}

/// Prometheus' `histogram_quantile` over the WAL fsync buckets, in ms.
pub fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut cum = 0u64;
    for (i, c) in counts.iter().enumerate() {
        let before = cum;
        cum += c;
        if cum as f64 >= rank && *c > 0 {
            let Some(&hi) = FSYNC_BUCKETS.get(i) else {
                return FSYNC_BUCKETS.last().map(|b| b * 1000.0);
            };
            let lo = if i == 0 { 0.0 } else { FSYNC_BUCKETS[i - 1] };
            let frac = (rank - before as f64) / *c as f64;
            return Some((lo + (hi - lo) * frac) * 1000.0);
        }
    }
    FSYNC_BUCKETS.last().map(|b| b * 1000.0)
}

/// The worst member's WAL fsync p99, ms.
pub fn worst_fsync_p99_ms(s: &Simulation) -> Option<f64> {
    s.member_names()
        .iter()
        .filter_map(|m| s.server(m))
        .filter_map(|srv| quantile_ms(&srv.metrics().wal_fsync().0, 0.99))
        .fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| a.max(x)))
        })
}

/// Builds the simulation of `sc` for `seed`.
pub fn build(sc: &Scenario, seed: u64) -> anyhow::Result<Simulation> {
    let mut cfg = SimConfig::new(seed, sc.members);
    for f in &sc.flags {
        cfg = cfg.flag(f.clone());
    }
    Simulation::new(cfg).context("build the simulated cluster")
}

/// Runs `sc` on `seed`.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> anyhow::Result<Outcome> {
    #[allow(clippy::disallowed_methods)] // wall time is reported, never simulated
    let wall = std::time::Instant::now();
    let sc = &with_overrides(sc, opts)?;
    let mut out = match sc.kind {
        Kind::Standard => run_standard(sc, seed, opts)?,
        Kind::DiskSweep => crate::disk_sweep::run(sc, seed)?,
    };
    if sc.expect.healthy_twin_stable && !opts.skip_twin && opts.schedule.is_none() {
        let twin = run_standard(
            sc,
            seed,
            &RunOptions {
                schedule: Some(FaultSchedule::default()),
                schedule_source: Some("none (healthy twin)".into()),
                skip_twin: true,
                ..Default::default()
            },
        )?;
        out.summary.healthy_twin = Some(report::Twin {
            leader_changes: twin.summary.leader_changes,
            trace_hash: twin.summary.trace_hash.clone(),
        });
    }
    out.summary.wall_seconds = wall.elapsed().as_secs_f64();
    out.summary.traffic = opts.traffic.clone();
    out.summary.rate = opts.rate;
    out.summary.defects = opts.defects.clone();
    out.summary.replay.push_str(&opts.override_args());
    report::judge(sc, &mut out.summary);
    Ok(out)
}

/// Everything the timeline collected, for the checks.
pub struct Collected {
    /// Requests.
    pub records: Vec<Record>,
    /// Watchers.
    pub watches: Vec<WatchLog>,
    /// Applied faults.
    pub applied: Vec<AppliedFault>,
    /// Liveness after heal.
    pub liveness: Liveness,
    /// Problems met while running (no first leader, clients stuck).
    pub problems: Vec<String>,
    /// The lease clients' leases.
    pub leases: Vec<LeaseLog>,
    /// What the operator did.
    pub operator: Vec<OperatorEvent>,
    /// Versions before each release change and at the end.
    pub versions: Vec<VersionStep>,
}

fn run_standard(sc: &Scenario, seed: u64, opts: &RunOptions) -> anyhow::Result<Outcome> {
    let sim = build(sc, seed)?;
    let mut faults_rng = sim.rng("faults");
    let schedule = match &opts.schedule {
        Some(s) => s.clone(),
        None => (sc.faults)(&mut faults_rng),
    };
    let mut d = Driver::new(sim);
    let rec = Recorder::default();
    let collected = timeline(&mut d, sc, &schedule, &rec, faults_rng)?;
    let source = opts
        .schedule_source
        .clone()
        .unwrap_or_else(|| "seed".into());
    let (summary, html, history_json) =
        checks::assemble(sc, seed, &d, &collected, &schedule, &source);
    Ok(Outcome {
        summary,
        records: collected.records,
        watches: collected.watches,
        trace: d.s.trace().to_jsonl(),
        html,
        history_json,
        schedule,
        svg: None,
    })
}

/// The standard timeline (also used by the sweep for its setup and tail).
fn timeline(
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
    let hosts = workload::start(&mut d.s, &sc.workload, rec, &stop)?;
    let t0 = d.s.elapsed();
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
        next_member: d.s.member_names().len(),
        hosts: Vec::new(),
    };
    for (t, start, i) in events {
        d.run_to(t)?;
        let now_ms = d.s.elapsed().as_millis() as u64;
        if start {
            if let Some(step) = release_step(&schedule.faults[i].fault) {
                versions.push(version_step(d, step));
            }
            let (what, a) = nemesis::apply(&mut d.s, &schedule.faults[i], i, &mut rng, &mut ops)?;
            let kind = schedule.faults[i].fault.kind_name();
            active.insert(i, (a, now_ms, what, kind));
        } else if let Some((a, started, what, kind)) = active.remove(&i) {
            nemesis::undo(&mut d.s, a)?;
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
        nemesis::undo(&mut d.s, a)?;
        applied.push(AppliedFault {
            start_ms: started,
            end_ms: d.s.elapsed().as_millis() as u64,
            what,
            kind,
        });
    }
    applied.sort_by_key(|a| a.start_ms);
    stop.stop();
    let drain = OP_TIMEOUT * 3;
    if d.run_until(drain, |s| hosts.iter().all(|h| s.client_done(h)))?
        .is_none()
    {
        problems.push(format!("workload clients did not stop within {drain:?}"));
    }
    let bound = ACTION_DEADLINE * 2;
    if d.run_until(bound, |s| ops.hosts.iter().all(|h| s.client_done(h)))?
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
fn version_step(d: &Driver, step: String) -> VersionStep {
    let mut clusters = BTreeSet::new();
    let members =
        d.s.active_members()
            .into_iter()
            .map(|m| match d.s.server(&m) {
                Some(srv) => {
                    let v = srv.versions();
                    clusters.insert(v.etcdcluster.clone());
                    let storage = v.storage.unwrap_or_else(|| "-".into());
                    format!(
                        "{m} {} cluster {} storage {storage}",
                        v.etcdserver, v.etcdcluster
                    )
                }
                None => format!(
                    "{m} down: {}",
                    d.s.exit_reason(&m).unwrap_or_else(|| "starting".into())
                ),
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
        at_ms: d.s.elapsed().as_millis() as u64,
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
    let members = d.s.active_members();
    let seed = d.s.seed();
    let r = rec.clone();
    d.s.client("probe", move |cx| async move {
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
    })?;
    let write = d.run_until(LIVENESS_BOUND, |s| s.client_done("probe"))?;
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
    let revisions = |s: &sim::Simulation| -> BTreeSet<i64> {
        s.active_members()
            .iter()
            .filter_map(|m| s.server(m))
            .map(|srv| srv.store().current_revision())
            .collect()
    };
    d.run_until(HASH_SETTLE, |s| revisions(s).len() <= 1)?;
    let Some(rev) = revisions(&d.s).into_iter().next() else {
        return Ok(Vec::new());
    };
    // (compaction revision) -> hash -> members
    let mut groups: BTreeMap<i64, BTreeMap<u32, Vec<String>>> = BTreeMap::new();
    for m in d.s.active_members() {
        let Some(srv) = d.s.server(&m) else { continue };
        let found = srv.store().hash_by_rev(rev);
        if let Ok((h, _)) = found {
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
    let members = d.s.active_members();
    let r = rec.clone();
    d.s.client("final", move |cx| async move {
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
    })?;
    d.run_until(OP_TIMEOUT * 10, |s| s.client_done("final"))?;
    Ok(())
}

/// Distinct members that led, for the summary.
pub fn leaders(d: &Driver) -> BTreeSet<String> {
    d.terms.values().map(|(_, l)| l.clone()).collect()
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
    let hosts = workload::start(&mut d.s, &sc.workload, rec, &stop)?;
    steps(d)?;
    stop.stop();
    if d.run_until(OP_TIMEOUT * 3, |s| hosts.iter().all(|h| s.client_done(h)))?
        .is_none()
    {
        problems.push("workload clients did not stop".into());
    }
    let liveness = liveness(d, rec)?;
    final_reads(d, rec)?;
    Ok(collect(rec, Vec::new(), liveness, problems))
}
