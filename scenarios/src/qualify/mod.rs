//! `etcd-sim qualify`: release qualification as independent shards that existing engines run
//! (a CI matrix, a Kubernetes Indexed Job), and `qualify merge`, which joins their reports into
//! one verdict and one HTML index.
//!
//! Owns: the command's arguments, running a shard (plan → slice → execute → conclude → write),
//! and merging (refusing shards of another commit or plan, naming the mismatch). Must never:
//! schedule work across machines (the engines do), or conclude anything a shard would conclude
//! differently (`record::conclude` is the one place conclusions are drawn).

pub mod execute;
pub mod index;
pub mod plan;
pub mod record;

use crate::cli::{RealArgs, Usage};
use crate::report::GIT_COMMIT;
use anyhow::{bail, Context};
use plan::{PlanInputs, Shard};
use record::{ItemResult, Qualification, ShardRun};
use std::path::{Path, PathBuf};

/// `etcd-sim qualify`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QualifyArgs {
    /// `merge DIR... --out DIR`.
    #[command(subcommand)]
    pub merge: Option<MergeCommand>,
    /// Seeds per scenario: seeds 0..N.
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// This process's slice of the plan: I/N, 0 <= I < N (JOB_COMPLETION_INDEX/N).
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Where qualification.json, index.html and the kept reports go.
    #[arg(long, default_value = "target/etcd-sim/qualify")]
    pub report: PathBuf,
    /// Stop starting items after this much wall time (90s, 50m); the rest count as not run.
    #[arg(long)]
    pub budget: Option<String>,
    /// Only these scenarios (repeatable); default: the whole catalogue.
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// Leave the known-bug defect hunts out of the plan.
    #[arg(long)]
    pub no_defects: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Add real-mode runs against our server (or `--etcd-bin`).
    #[command(flatten)]
    pub world: RealArgs,
}

/// `etcd-sim qualify merge`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MergeCommand {
    /// Join shard reports into one verdict and one index.html.
    Merge {
        /// Shard report directories (each with qualification.json).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Where the merged report goes.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `etcd-sim qualify` (a shard) or `qualify merge`; `Ok(true)` when the verdict is pass.
pub fn main(args: &QualifyArgs) -> anyhow::Result<bool> {
    let q = match &args.merge {
        Some(MergeCommand::Merge { shards, out }) => merge(shards, out)?,
        None => shard(args)?,
    };
    Ok(q.verdict == "pass")
}

/// Runs one shard and writes its report.
#[allow(clippy::disallowed_methods)] // the shard's wall time, reported
fn shard(args: &QualifyArgs) -> anyhow::Result<Qualification> {
    let shard = Shard::parse(&args.shard)?;
    let budget = args
        .budget
        .as_deref()
        .map(crate::bugs::parse_budget)
        .transpose()?;
    let real = args.world.options()?;
    let inputs = PlanInputs {
        seeds: args.seeds,
        real: real.is_some(),
        scenarios: args.scenarios.clone(),
        defects: !args.no_defects,
    };
    let items = inputs.items()?;
    let fingerprint = plan::fingerprint(&inputs, &items);
    let mine = plan::slice(&items, shard);
    let threads = args.jobs.unwrap_or_else(crate::cli::threads).max(1);
    eprintln!(
        "qualify shard {shard}: {} of the plan's {} items ({} seeds per scenario, plan {fingerprint}) on {threads} thread(s)",
        mine.len(),
        items.len(),
        args.seeds
    );
    std::fs::create_dir_all(&args.report)
        .with_context(|| format!("create {}", args.report.display()))?;
    let start = std::time::Instant::now();
    let results = execute::Execution {
        dir: &args.report,
        threads,
        budget,
        real,
    }
    .run(&mine);
    let run = ShardRun {
        shard,
        threads,
        wall_seconds: start.elapsed().as_secs_f64(),
        items: mine.len(),
    };
    let q = record::conclude(
        GIT_COMMIT.to_string(),
        inputs,
        fingerprint,
        items.len(),
        vec![run],
        results,
        false,
    );
    write(&args.report, &q)?;
    print(&q, &args.report);
    Ok(q)
}

/// Writes `qualification.json` and `index.html` into `dir`.
fn write(dir: &Path, q: &Qualification) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(q)?;
    let file = dir.join(record::FILE);
    std::fs::write(&file, json).with_context(|| format!("write {}", file.display()))?;
    let html = dir.join("index.html");
    std::fs::write(&html, index::page(q)).with_context(|| format!("write {}", html.display()))?;
    Ok(())
}

/// Joins shard reports: refuses shards of different commits or plans and duplicated shards;
/// a missing shard's items count as not run. Copies the kept reports next to the merged one.
fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<Qualification> {
    let mut shards: Vec<(Qualification, PathBuf)> = Vec::new();
    for d in dirs {
        shards.push(Qualification::load(d).map_err(|e| Usage(format!("{e:#}")))?);
    }
    let Some((first, first_dir)) = shards.first() else {
        bail!(Usage("qualify merge: no shard directories given".into()));
    };
    let count = first.shards.first().map_or(1, |s| s.shard.count);
    let mut seen = std::collections::BTreeMap::new();
    for (q, dir) in &shards {
        if q.git_commit != first.git_commit {
            bail!(Usage(format!(
                "{} was run by commit {}, {} by commit {}: shards of different commits do not merge",
                dir.display(),
                q.git_commit,
                first_dir.display(),
                first.git_commit
            )));
        }
        if q.plan != first.plan || q.plan_fingerprint != first.plan_fingerprint {
            bail!(Usage(format!(
                "{} ran plan {} ({}), {} ran plan {} ({}): shards of different seed plans do not merge",
                dir.display(),
                q.plan_fingerprint,
                describe(&q.plan),
                first_dir.display(),
                first.plan_fingerprint,
                describe(&first.plan)
            )));
        }
        for s in &q.shards {
            if s.shard.count != count {
                bail!(Usage(format!(
                    "{} is shard {} but {} is of {count} shards",
                    dir.display(),
                    s.shard,
                    first_dir.display()
                )));
            }
            if let Some(other) = seen.insert(s.shard.index, dir.clone()) {
                bail!(Usage(format!(
                    "shard {} twice: {} and {}",
                    s.shard,
                    other.display(),
                    dir.display()
                )));
            }
        }
    }
    let mut results: Vec<ItemResult> = Vec::new();
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    for (q, dir) in &shards {
        for r in &q.results {
            if let Some(rel) = &r.report {
                copy_dir(&dir.join(rel), &out.join(rel))?;
            }
        }
        results.extend(q.results.iter().cloned());
    }
    let missing: Vec<u32> = (0..count).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        results.extend(missing_items(first, count, &missing)?);
    }
    let runs = shards.iter().flat_map(|(q, _)| q.shards.clone()).collect();
    let q = record::conclude(
        first.git_commit.clone(),
        first.plan.clone(),
        first.plan_fingerprint.clone(),
        first.plan_items,
        runs,
        results,
        true,
    );
    write(out, &q)?;
    print(&q, out);
    Ok(q)
}

/// The items of missing shards, as not run (the plan recomputed; it must be the same plan).
fn missing_items(
    first: &Qualification,
    count: u32,
    missing: &[u32],
) -> anyhow::Result<Vec<ItemResult>> {
    let items = first.plan.items()?;
    if plan::fingerprint(&first.plan, &items) != first.plan_fingerprint {
        bail!(Usage(format!(
            "shards {missing:?} of {count} are missing, and this etcd-sim ({GIT_COMMIT}) plans \
             differently from the shards' ({}): merge with that commit's etcd-sim",
            first.git_commit
        )));
    }
    let assigned = plan::assign(&items, count);
    Ok(items
        .iter()
        .enumerate()
        .filter(|(i, _)| missing.contains(&assigned[*i]))
        .map(|(i, it)| {
            ItemResult::not_run(
                it,
                i,
                format!("shard {}/{count} is missing from the merge", assigned[i]),
            )
        })
        .collect())
}

/// A plan's inputs in words.
fn describe(p: &PlanInputs) -> String {
    let mut s = format!("{} seeds", p.seeds);
    if !p.scenarios.is_empty() {
        s.push_str(&format!(", scenarios {}", p.scenarios.join(",")));
    }
    if !p.defects {
        s.push_str(", no defects");
    }
    if p.real {
        s.push_str(", real mode");
    }
    s
}

/// Copies a report directory (flat: report directories hold files only).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .with_context(|| format!("copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// The summary printed after a shard or a merge.
fn print(q: &Qualification, dir: &Path) {
    let count = |k: &str| q.counts.get(k).copied().unwrap_or(0);
    println!(
        "qualification {}: {} items of {} here ({} pass, {} fail, {} not run, {} pending), plan {} ({})",
        q.verdict.to_uppercase(),
        q.results.len(),
        q.plan_items,
        count("pass"),
        count("fail"),
        count("not-run"),
        count("pending"),
        q.plan_fingerprint,
        describe(&q.plan)
    );
    let runs: u64 = q.results.iter().map(|r| r.seeds_run).sum();
    println!(
        "{runs} runs: {:.1} seeds/min, {:.0} seeds/hour/core over {} shard(s)",
        q.seeds_per_minute,
        q.seeds_per_hour_per_core,
        q.shards.len()
    );
    for r in q
        .results
        .iter()
        .filter(|r| r.status == record::Status::Fail)
    {
        println!("FAIL {}: {}", r.item.id, r.why.join("; "));
        if !r.replay.is_empty() {
            println!("  replay: {}", r.replay);
        }
        if let Some(rep) = &r.report {
            println!("  report: {}", dir.join(rep).display());
        }
    }
    for g in &q.signatures {
        println!(
            "  {:>4} × {} (fastest: {} seed {}, {:.1} s)",
            g.runs, g.signature, g.fastest, g.seed, g.wall_seconds
        );
    }
    println!(
        "report: {} and {}",
        dir.join(record::FILE).display(),
        dir.join("index.html").display()
    );
}
