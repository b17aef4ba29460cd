//! Run reports: the [`Summary`] (`summary.json`), the verdict from a scenario's expectations,
//! the report directory (summary, history, records, watches, JSON-lines trace, `history.html`,
//! the fault schedule, the sweep plot), and the tables the CLI prints.
//!
//! Owns: the report format and the verdict rule: a run passes only if the history is
//! linearizable, serializable reads and watches hold, liveness holds after the faults heal and
//! every scenario expectation holds. Must never: pass a run with an undecided check.

use crate::catalogue::Scenario;
use crate::history::{Record, WatchLog};
use crate::nemesis::{AppliedFault, FaultSchedule};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The commit the binary was built from (`git describe --always --dirty`, or `unknown`).
pub const GIT_COMMIT: &str = env!("ETCD_SIM_GIT_COMMIT");

/// The command that replays a run (`schedule_source` `file PATH`: with that schedule file).
pub fn replay_command(scenario: &str, seed: u64, schedule_source: &str) -> String {
    let faults = schedule_source
        .strip_prefix("file ")
        .map(|path| format!(" --faults {path}"))
        .unwrap_or_default();
    format!(
        "cargo run --release -p scenarios --bin etcd-sim -- run {scenario} --seed {seed}{faults}"
    )
}

/// Request counts and latencies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpsSummary {
    /// Requests issued.
    pub total: usize,
    /// With a response (including definite errors).
    pub ok: usize,
    /// Unknown outcome (failed or timed out).
    pub unknown: usize,
    /// Writes with a response.
    pub writes_ok: usize,
    /// Reads with a response.
    pub reads_ok: usize,
    /// p99 latency of answered writes, ms (simulated).
    pub write_p99_ms: f64,
    /// p99 latency of answered reads, ms (simulated).
    pub read_p99_ms: f64,
    /// Requests per traffic kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Writes the server refused before they took effect (NOSPACE).
    #[serde(default)]
    pub refused: usize,
}

/// The linearizability checker's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckerSummary {
    /// `linearizable`, `not linearizable` or `unknown`.
    pub result: String,
    /// Wall seconds the check took.
    pub seconds: f64,
    /// Operations checked.
    pub operations: usize,
    /// Why not, when not linearizable.
    pub detail: Option<String>,
    /// Serializable reads checked against the linearization.
    pub serializable_reads_checked: usize,
    /// Serializable reads that differ from the linearization only in values of
    /// unknown-outcome writes (the linearization may have placed those elsewhere): not judged.
    #[serde(default)]
    pub serializable_reads_ambiguous: usize,
    /// Serializable reads that match no state of the linearization.
    pub serializable_read_violations: Vec<String>,
    /// The failure signature, when not linearizable (see [`crate::signature`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Watch checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchSummary {
    /// Watchers.
    pub watchers: usize,
    /// Watch streams (a watcher resumes on a new stream after an interruption).
    pub streams: usize,
    /// Responses with events.
    pub batches: usize,
    /// Events.
    pub events: usize,
    /// Streams that ended and were resumed.
    pub interruptions: usize,
    /// `ok`, `no watchers` or `N violations`.
    pub result: String,
    /// What the watchers were held to (`Linearization` or `WatchUnion`).
    pub timeline: String,
    /// The first violations.
    pub violations: Vec<String>,
    /// The first violation's failure signature (see [`crate::signature`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Every member's versions at one step of a run with release changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionStep {
    /// Simulated ms since the start.
    pub at_ms: u64,
    /// Which step (`before restart m1 (follower) as etcd 3.6.0`, `end`).
    pub step: String,
    /// The cluster version every running member reports, or `mixed`/`none up`.
    pub cluster: String,
    /// Each member: `m0 3.6.0 cluster 3.5.0 storage unknown`, or `m0 down: <why>`.
    pub members: Vec<String>,
}

/// Liveness after the faults heal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Liveness {
    /// The bound for each of the two.
    pub bound_ms: u64,
    /// Time to a stable leader (None: not within the bound).
    pub leader_after_heal_ms: Option<u64>,
    /// Then time to a committed write (None: not within the bound).
    pub write_after_heal_ms: Option<u64>,
}

/// The healthy twin of a scenario (same seed, no faults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Twin {
    /// Its leader changes after the first election.
    pub leader_changes: u64,
    /// Its trace hash.
    pub trace_hash: String,
}

/// One step of the disk latency sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Whose disk was slow: `all members` or `leader`.
    pub slow: String,
    /// Configured fsync p99, ms.
    pub fsync_p99_ms: u64,
    /// WAL fsync p99 the members measured in the step, ms (histogram quantile).
    pub measured_wal_fsync_p99_ms: Option<f64>,
    /// Backend commit p99 the members measured in the step, ms (histogram quantile).
    #[serde(default)]
    pub measured_backend_commit_p99_ms: Option<f64>,
    /// Leader changes during the step.
    pub leader_changes: u64,
    /// Leader changes per simulated minute.
    pub leader_changes_per_min: f64,
    /// Writes answered in the step.
    pub writes_ok: usize,
    /// Writes with unknown outcome in the step.
    pub writes_unknown: usize,
    /// p99 latency of answered writes, ms.
    pub write_p99_ms: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Commit of the binary.
    pub git_commit: String,
    /// `pass` or `fail`.
    pub verdict: String,
    /// Why it failed.
    pub failures: Vec<String>,
    /// Each failure's signature (the check and the kind of anomaly, the same from seed to
    /// seed), in the order of `failures`.
    #[serde(default)]
    pub signatures: Vec<String>,
    /// The command that replays it.
    pub replay: String,
    /// SHA-1 of the trace.
    pub trace_hash: String,
    /// Trace lines.
    pub trace_lines: u64,
    /// Simulated seconds.
    pub sim_seconds: f64,
    /// Wall seconds (whole run including checks).
    pub wall_seconds: f64,
    /// Requests.
    pub ops: OpsSummary,
    /// Leader changes after the first election (distinct leader terms seen − 1).
    pub leader_changes: u64,
    /// Members that led at some point.
    pub leaders: Vec<String>,
    /// Highest `etcd_server_leader_changes_seen_total` among members (all incarnations).
    pub leader_changes_seen_total: u64,
    /// Worst member's WAL fsync p99 (current incarnations), ms.
    pub wal_fsync_p99_ms: Option<f64>,
    /// The most WAL fsyncs slower than 512 ms on one member (current incarnations).
    #[serde(default)]
    pub slow_wal_fsyncs: u64,
    /// `seed`, or the file the schedule came from.
    pub fault_schedule_source: String,
    /// The traffic profile the run used instead of the scenario's (`--traffic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
    /// The request rate the run used instead of the scenario's (`--rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Known-bug defects the run switched on besides the scenario's (`--defect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defects: Vec<String>,
    /// Real mode's member binary (`--real --etcd-bin`); absent for a simulated run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealRun>,
    /// The schedule as data.
    pub fault_schedule: FaultSchedule,
    /// Faults as applied.
    pub faults: Vec<AppliedFault>,
    /// Linearizability.
    pub checker: CheckerSummary,
    /// Watch guarantees.
    pub watch: WatchSummary,
    /// Liveness after heal.
    pub liveness: Liveness,
    /// Expected trace messages and how often they occur.
    pub trace_matches: BTreeMap<String, u64>,
    /// The healthy twin, for scenarios that expect one.
    pub healthy_twin: Option<Twin>,
    /// The disk sweep table.
    pub sweep: Option<Vec<SweepRow>>,
    /// What the operator did (schedule entries such as compaction or member changes).
    #[serde(default)]
    pub operator: Vec<crate::history::OperatorEvent>,
    /// The lease timing check, when the run had lease clients.
    #[serde(default)]
    pub leases: Option<crate::checks::lease::LeaseSummary>,
    /// Each running member's view of the membership at the end (`m0: m0 m1 m2 m3(learner)`).
    #[serde(default)]
    pub membership: Vec<String>,
    /// Watch streams canceled because their start revision was compacted.
    #[serde(default)]
    pub watch_compaction_cancels: usize,
    /// Versions before each release change and at the end (runs with `restart-as` entries).
    #[serde(default)]
    pub versions: Vec<VersionStep>,
}

/// The expectations about leases, operator actions, membership and compaction.
fn judge_operations(e: &crate::catalogue::Expect, s: &Summary) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(l) = &s.leases {
        if let Some(v) = l.violations.first() {
            f.push(format!(
                "lease timing: {} violations, first: {v}",
                l.violations.len()
            ));
        }
    }
    for action in &e.operator_ok {
        if !s.operator.iter().any(|o| o.ok && o.action == *action) {
            let tried: Vec<String> = s
                .operator
                .iter()
                .filter(|o| o.action == *action)
                .map(|o| o.detail.clone())
                .collect();
            f.push(format!(
                "operator action {action} never succeeded ({tried:?})"
            ));
        }
    }
    if !e.cluster_versions.is_empty() {
        let seen: Vec<&str> = s.versions.iter().map(|v| v.cluster.as_str()).collect();
        if seen != e.cluster_versions {
            f.push(format!(
                "expected the cluster version {:?} before each release change and at the end, saw {seen:?}",
                e.cluster_versions
            ));
        }
    }
    for (path, code, text) in &e.health {
        let prefix = format!("GET {path} on ");
        let seen = s
            .operator
            .iter()
            .filter(|o| o.action == "health" && o.detail.starts_with(&prefix));
        let matched = seen.clone().any(|o| {
            let rest = o.detail.split_once(": ").map(|x| x.1).unwrap_or("");
            rest.starts_with(&format!("{code} ")) && rest.contains(text)
        });
        if !matched {
            let answers: Vec<&str> = seen.map(|o| o.detail.as_str()).collect();
            f.push(format!(
                "expected GET {path} to answer {code} with {text:?}, saw {answers:?}"
            ));
        }
    }
    for text in &e.version_steps_contain {
        if !s
            .versions
            .iter()
            .flat_map(|v| &v.members)
            .any(|m| m.contains(text))
        {
            f.push(format!("no version step shows {text:?}"));
        }
    }
    if let Some(voters) = e.voters_at_end {
        let want = s
            .membership
            .first()
            .and_then(|l| l.split_once(": "))
            .map(|x| x.1);
        let agree = s
            .membership
            .iter()
            .all(|l| l.split_once(": ").map(|x| x.1) == want);
        let count = want.map_or(0, |w| {
            w.split_whitespace()
                .filter(|m| !m.contains("learner"))
                .count()
        });
        if !agree || count != voters || want.is_some_and(|w| w.contains("learner")) {
            f.push(format!(
                "expected every member to list the same {voters} voters and no learner, saw {:?}",
                s.membership
            ));
        }
    }
    let mut at_least = |min: Option<usize>, saw: usize, what: &str| {
        if min.is_some_and(|m| saw < m) {
            f.push(format!(
                "expected at least {} {what}, saw {saw}",
                min.unwrap_or(0)
            ));
        }
    };
    at_least(
        e.min_compaction_cancels,
        s.watch_compaction_cancels,
        "watch streams canceled by compaction",
    );
    at_least(
        e.min_refused_writes,
        s.ops.refused,
        "writes refused (NOSPACE)",
    );
    at_least(
        e.min_lease_expiries,
        s.leases.as_ref().map_or(0, |l| l.expired),
        "leases seen expiring",
    );
    f
}

/// Decides the verdict from the checks and the scenario's expectations.
pub fn judge(sc: &Scenario, s: &mut Summary) {
    let mut f = std::mem::take(&mut s.failures);
    match s.checker.result.as_str() {
        "linearizable" => {}
        "not linearizable" => f.push(format!(
            "{NOT_LINEARIZABLE}: {}",
            s.checker.detail.clone().unwrap_or_default()
        )),
        other => f.push(format!("linearizability check undecided ({other})")),
    }
    if let Some(v) = s.checker.serializable_read_violations.first() {
        f.push(format!(
            "{} serializable reads inconsistent, first: {v}",
            s.checker.serializable_read_violations.len()
        ));
    }
    if let Some(v) = s.watch.violations.first() {
        f.push(format!("{WATCH_VIOLATED}: {}, first: {v}", s.watch.result));
    }
    if s.liveness.leader_after_heal_ms.is_none() {
        f.push(format!(
            "liveness: no stable leader within {} ms after the faults healed",
            s.liveness.bound_ms
        ));
    } else if s.liveness.write_after_heal_ms.is_none() {
        f.push(format!(
            "liveness: no write committed within {} ms after a leader was elected",
            s.liveness.bound_ms
        ));
    }
    if s.ops.writes_ok == 0 {
        f.push("no write was acknowledged during the workload".into());
    }
    let e = &sc.expect;
    if let Some(max) = e.max_leader_changes {
        if s.leader_changes > max {
            f.push(format!(
                "expected at most {max} leader changes after the first election, saw {}",
                s.leader_changes
            ));
        }
    }
    if let Some(min) = e.min_leader_changes {
        if s.leader_changes < min {
            f.push(format!(
                "expected at least {min} leader changes, saw {}",
                s.leader_changes
            ));
        }
    }
    for (msg, n) in &s.trace_matches {
        if *n == 0 {
            f.push(format!("the trace never says {msg:?}"));
        }
    }
    if let Some(min) = e.min_slow_wal_fsyncs {
        if s.slow_wal_fsyncs < min {
            f.push(format!(
                "expected at least {min} WAL fsyncs slower than {} ms on one member, saw {}",
                crate::driver::SLOW_WAL_FSYNC_S * 1000.0,
                s.slow_wal_fsyncs
            ));
        }
    }
    if let Some(t) = &s.healthy_twin {
        if t.leader_changes > 0 {
            f.push(format!(
                "the same seed with a healthy disk saw {} leader changes (expected none)",
                t.leader_changes
            ));
        }
    }
    if let Some(rows) = &s.sweep {
        f.extend(crate::disk_sweep::judge(rows));
    }
    f.extend(judge_operations(e, s));
    s.verdict = if f.is_empty() { "pass" } else { "fail" }.into();
    s.signatures = f.iter().map(|line| signature_of(s, line)).collect();
    s.failures = f;
}

/// How a failure line about linearizability starts.
const NOT_LINEARIZABLE: &str = "history not linearizable";
/// How a failure line about the watch guarantees starts.
const WATCH_VIOLATED: &str = "watch guarantees";

/// A failure line's signature: the checker's and the watch checks' own, or the line's.
fn signature_of(s: &Summary, line: &str) -> String {
    let specific = if line.starts_with(NOT_LINEARIZABLE) {
        s.checker.signature.clone()
    } else if line.starts_with(WATCH_VIOLATED) {
        s.watch.signature.clone()
    } else {
        None
    };
    specific.unwrap_or_else(|| crate::signature::of_line(line))
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let p = dir.join(name);
    #[allow(clippy::disallowed_methods)] // reports are real files, written after the run
    std::fs::write(&p, bytes).with_context(|| format!("write {}", p.display()))
}

/// What a real-mode run ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealRun {
    /// The member binary's path.
    pub bin: String,
    /// What its `--version` said: `etcd 3.5.1` or `etcd-server 0.1.0`.
    pub version: String,
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

/// Writes the report directory `<root>/<scenario>-seed<N>`; returns it.
pub fn write_dir(root: &Path, o: &Outcome) -> anyhow::Result<PathBuf> {
    let dir = root.join(format!("{}-seed{}", o.summary.scenario, o.summary.seed));
    #[allow(clippy::disallowed_methods)]
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    write(&dir, "summary.json", serde_json::to_vec_pretty(&o.summary)?)?;
    write(&dir, "history.json", &o.history_json)?;
    write(&dir, "records.json", serde_json::to_vec(&o.records)?)?;
    write(&dir, "watches.json", serde_json::to_vec(&o.watches)?)?;
    write(&dir, "trace.jsonl", &o.trace)?;
    write(&dir, "history.html", &o.html)?;
    write(&dir, "faults.json", serde_json::to_vec_pretty(&o.schedule)?)?;
    if let Some(svg) = &o.svg {
        write(&dir, "sweep.svg", svg)?;
    }
    Ok(dir)
}

/// Reads a `summary.json` (or the one in a report directory).
pub fn read_summary(path: &Path) -> anyhow::Result<(Summary, PathBuf)> {
    read_json_in(path, "summary.json")
}

/// Reads a JSON file given as itself or as the directory holding it under `name`; with that
/// directory.
pub fn read_json_in<T: serde::de::DeserializeOwned>(
    path: &Path,
    name: &str,
) -> anyhow::Result<(T, PathBuf)> {
    let file = if path.is_dir() {
        path.join(name)
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    let value = serde_json::from_str(&text).with_context(|| format!("parse {}", file.display()))?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((value, dir))
}

/// The header of the results table.
pub fn table_header() -> String {
    format!(
        "{:<20} {:>5} {:>5} {:>6} {:>5} {:>4} {:>9} {:>8} {:>7} {:>7} {:>8} {:>7}  {}",
        "scenario",
        "seed",
        "ops",
        "unknwn",
        "lchg",
        "flt",
        "fsync99ms",
        "wr99ms",
        "lin",
        "watch",
        "sim-s",
        "wall-s",
        "verdict"
    )
}

/// One row of the results table.
pub fn table_row(s: &Summary) -> String {
    let lin = match s.checker.result.as_str() {
        "linearizable" => "ok",
        "not linearizable" => "FAIL",
        _ => "?",
    };
    let watch = match s.watch.result.as_str() {
        "ok" => "ok",
        "no watchers" => "-",
        _ => "FAIL",
    };
    format!(
        "{:<20} {:>5} {:>5} {:>6} {:>5} {:>4} {:>9} {:>8.1} {:>7} {:>7} {:>8.1} {:>7.2}  {}",
        s.scenario,
        s.seed,
        s.ops.total,
        s.ops.unknown,
        s.leader_changes,
        s.faults.len(),
        s.wal_fsync_p99_ms
            .map_or_else(|| "-".to_string(), |p| format!("{p:.1}")),
        s.ops.write_p99_ms,
        lin,
        watch,
        s.sim_seconds,
        s.wall_seconds,
        s.verdict.to_uppercase()
    )
}

/// How often a fault kind was applied over many runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Applications.
    pub times: usize,
    /// Runs with at least one.
    pub runs: usize,
}

/// The fault kinds applied over many runs, given each run's applied kinds (the mix a sweep or
/// a qualification covered).
pub fn fault_coverage<'a, Run>(runs: impl IntoIterator<Item = Run>) -> BTreeMap<String, Coverage>
where
    Run: IntoIterator<Item = &'a str>,
{
    let mut out: BTreeMap<String, Coverage> = BTreeMap::new();
    for run in runs {
        let mut seen = std::collections::BTreeSet::new();
        for kind in run {
            let c = out.entry(kind.to_string()).or_default();
            c.times += 1;
            if seen.insert(kind) {
                c.runs += 1;
            }
        }
    }
    out
}
