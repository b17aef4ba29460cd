//! `qualification.json`: what a qualification (one shard, or shards merged) found, and the
//! verdict drawn from it.
//!
//! Owns: the result of every plan item, the conclusions drawn from the results alone (the
//! determinism comparisons, failure signatures with the fastest failing run, fault coverage,
//! speed) and the verdict. A shard and a merge draw them with the same function, so N shards
//! merged conclude what one unsharded run concludes. Must never: run anything, or read the
//! clock.

use super::plan::{Item, ItemKind, PlanInputs, Shard};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file a qualification writes in its report directory.
pub const FILE: &str = "qualification.json";

/// The signature of a run the harness itself could not complete.
pub const HARNESS_ERROR: &str = "harness error";

/// How an item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// As required: a run passed, a defect was caught, a re-run gave the same trace.
    Pass,
    /// Not as required.
    Fail,
    /// A determinism re-run whose original is in another shard: decided when merged.
    Pending,
    /// Not started: the budget ran out, or its shard is missing from a merge.
    NotRun,
}

/// One item's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The plan item.
    #[serde(flatten)]
    pub item: Item,
    /// Its position in the plan (results are kept in plan order).
    pub order: usize,
    /// How it came out.
    pub status: Status,
    /// Why it failed qualification (a run's failures, "not caught", a trace mismatch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
    /// The deciding run's failure signatures (for a defect: the ones that caught it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    /// The deciding run's seed (for a defect: the seed that caught it, or the last tried).
    pub run_seed: u64,
    /// Seeds run (a defect's hunt may take several).
    pub seeds_run: u64,
    /// The deciding run's replay command.
    pub replay: String,
    /// Its report directory, relative to the qualification's directory (failed runs and
    /// caught defects only; passing runs keep only this record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// Its trace hash.
    pub trace_hash: String,
    /// Wall seconds of every run of the item.
    pub wall_seconds: f64,
    /// Simulated seconds of the deciding run.
    pub sim_seconds: f64,
    /// Leader changes in the deciding run.
    pub leader_changes: u64,
    /// The worst member's WAL fsync p99 (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_fsync_p99_ms: Option<f64>,
    /// The linearizability checker's seconds.
    pub checker_seconds: f64,
    /// Fault kinds applied, one entry per application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault_kinds: Vec<String>,
}

impl ItemResult {
    /// The result of an item that never started.
    pub fn not_run(item: &Item, order: usize, why: String) -> ItemResult {
        ItemResult {
            item: item.clone(),
            order,
            status: Status::NotRun,
            why: vec![why],
            signatures: Vec::new(),
            run_seed: item.seed,
            seeds_run: 0,
            replay: String::new(),
            report: None,
            trace_hash: String::new(),
            wall_seconds: 0.0,
            sim_seconds: 0.0,
            leader_changes: 0,
            wal_fsync_p99_ms: None,
            checker_seconds: 0.0,
            fault_kinds: Vec::new(),
        }
    }

    /// Whether the harness itself failed to complete its run.
    pub fn is_harness_error(&self) -> bool {
        self.signatures.first().map(String::as_str) == Some(HARNESS_ERROR)
    }

    /// Whether its runs were meant to pass (a defect's are meant to fail).
    fn expects_pass(&self) -> bool {
        self.item.kind != ItemKind::Defect
    }
}

/// What one shard process did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRun {
    /// Which shard.
    pub shard: Shard,
    /// Worker threads.
    pub threads: usize,
    /// Wall seconds from start to finish.
    pub wall_seconds: f64,
    /// Items it was given.
    pub items: usize,
}

/// Failed runs with one signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureGroup {
    /// The signature.
    pub signature: String,
    /// Failed runs with it.
    pub runs: usize,
    /// The one that failed fastest (least wall time, then the lowest seed).
    pub fastest: String,
    /// Its seed.
    pub seed: u64,
    /// Its wall seconds.
    pub wall_seconds: f64,
    /// Its replay command.
    pub replay: String,
    /// Its report directory (relative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

pub use crate::report::Coverage;

/// `qualification.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qualification {
    /// The commit of the etcd-sim that ran it.
    pub git_commit: String,
    /// What the plan is made of.
    pub plan: PlanInputs,
    /// The whole plan's fingerprint (the same in every shard).
    pub plan_fingerprint: String,
    /// Items in the whole plan.
    pub plan_items: usize,
    /// Shards included (one for a shard's own report).
    pub shards: Vec<ShardRun>,
    /// `pass`, `fail`, or `incomplete` (items not run, or determinism comparisons pending in
    /// a merge).
    pub verdict: String,
    /// Item counts by status.
    pub counts: BTreeMap<String, usize>,
    /// Runs per minute of wall time, over the shards (each shard's own wall).
    pub seeds_per_minute: f64,
    /// Runs per hour per core.
    pub seeds_per_hour_per_core: f64,
    /// Failures grouped by signature (runs that had to pass).
    pub signatures: Vec<SignatureGroup>,
    /// Fault kinds applied over the runs.
    pub fault_coverage: BTreeMap<String, Coverage>,
    /// Every item's result, in plan order.
    pub results: Vec<ItemResult>,
}

/// Decides determinism re-runs whose original is among `results`.
fn decide_determinism(results: &mut [ItemResult]) {
    let originals: BTreeMap<(String, u64), (String, Status)> = results
        .iter()
        .filter(|r| r.item.kind == ItemKind::Run)
        .map(|r| {
            (
                (r.item.scenario.clone(), r.item.seed),
                (r.trace_hash.clone(), r.status),
            )
        })
        .collect();
    for r in results
        .iter_mut()
        .filter(|r| r.item.kind == ItemKind::Determinism && r.status == Status::Pending)
    {
        match originals.get(&(r.item.scenario.clone(), r.item.seed)) {
            None | Some((_, Status::NotRun)) => {}
            Some((hash, _)) if *hash == r.trace_hash => r.status = Status::Pass,
            Some((hash, _)) => {
                r.status = Status::Fail;
                r.why = vec![format!(
                    "not deterministic: trace hash {} differs from run/{}/{}'s {hash}",
                    r.trace_hash, r.item.scenario, r.item.seed
                )];
                r.signatures = vec!["determinism: trace hash differs".to_string()];
            }
        }
    }
}

/// Draws every conclusion from `results` and the shards that produced them.
pub fn conclude(
    git_commit: String,
    plan: PlanInputs,
    plan_fingerprint: String,
    plan_items: usize,
    shards: Vec<ShardRun>,
    mut results: Vec<ItemResult>,
    merged: bool,
) -> Qualification {
    results.sort_by_key(|r| r.order);
    decide_determinism(&mut results);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let key = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *counts.entry(key).or_default() += 1;
    }
    let has = |s: Status| results.iter().any(|r| r.status == s);
    let verdict = if has(Status::Fail) {
        "fail"
    } else if has(Status::NotRun) || (merged && has(Status::Pending)) {
        "incomplete"
    } else {
        "pass"
    };
    let runs: u64 = results.iter().map(|r| r.seeds_run).sum();
    let wall: f64 = shards.iter().map(|s| s.wall_seconds).sum();
    let core_seconds: f64 = shards
        .iter()
        .map(|s| s.wall_seconds * s.threads as f64)
        .sum();
    Qualification {
        git_commit,
        plan,
        plan_fingerprint,
        plan_items,
        shards,
        verdict: verdict.to_string(),
        counts,
        seeds_per_minute: runs as f64 * 60.0 / wall.max(1e-9),
        seeds_per_hour_per_core: runs as f64 * 3600.0 / core_seconds.max(1e-9),
        signatures: signatures(&results),
        fault_coverage: crate::report::fault_coverage(
            results
                .iter()
                .map(|r| r.fault_kinds.iter().map(String::as_str)),
        ),
        results,
    }
}

/// Failures of runs that had to pass, grouped by signature.
fn signatures(results: &[ItemResult]) -> Vec<SignatureGroup> {
    let failed = results
        .iter()
        .filter(|r| r.status == Status::Fail && r.expects_pass());
    let reports: BTreeMap<(&str, u64), Option<&String>> = failed
        .clone()
        .map(|r| ((r.item.scenario.as_str(), r.run_seed), r.report.as_ref()))
        .collect();
    crate::signature::group(failed.map(|r| {
        (
            r.item.scenario.as_str(),
            r.run_seed,
            r.wall_seconds,
            r.replay.as_str(),
            r.signatures.as_slice(),
        )
    }))
    .into_iter()
    .map(|g| {
        let (scenario, seed, wall_seconds, replay) = g.fastest;
        let report = reports
            .get(&(scenario.as_str(), seed))
            .and_then(|r| r.cloned());
        SignatureGroup {
            signature: g.signature,
            runs: g.runs,
            fastest: scenario,
            seed,
            wall_seconds,
            replay,
            report,
        }
    })
    .collect()
}

impl Qualification {
    /// Reads `qualification.json` from a directory (or the file itself).
    pub fn load(path: &std::path::Path) -> anyhow::Result<(Qualification, std::path::PathBuf)> {
        crate::report::read_json_in(path, FILE)
    }

    /// What a comparison of two qualifications over the same plan looks at: every item's
    /// status and signatures (wall times and which run was fastest differ from run to run).
    pub fn verdict_set(&self) -> Vec<(String, Status, Vec<String>)> {
        self.results
            .iter()
            .map(|r| (r.item.id.clone(), r.status, r.signatures.clone()))
            .collect()
    }
}
