//! The known-bug catalogue: etcd's historical bug classes that the server reproduces as test
//! defects (`--unsafe-test-defects`, with `--unsafe-test-opt-in`) or as an emulated release,
//! the scenario that exposes each, and the general check that catches it; and `etcd-sim hunt`,
//! which runs seeds of a bug's scenario until one fails with one of the bug's signatures.
//!
//! Owns: the table and the hunt loop. Must never: add a check of its own. A bug is caught by
//! the harness's general checks (linearizability, watch guarantees, lease timing, the members'
//! HashKV at the end) or not at all.

use crate::catalogue::{self, Scenario};
use crate::cli::{parse_seeds, run_many, Done, RealArgs, Usage};
use crate::runner::RunOptions;
use crate::shrink::{shrink, ShrinkArgs, ShrinkReport};
use anyhow::bail;
use std::path::Path;
use std::time::{Duration, Instant};

/// One known etcd bug class.
#[derive(Debug, Clone, Copy)]
pub struct KnownBug {
    /// The defect switch (what `--unsafe-test-defects` and `hunt` take), or the emulated
    /// release for bugs reproduced by release emulation.
    pub defect: &'static str,
    /// The etcd issue.
    pub etcd_issue: u32,
    /// The etcd releases affected.
    pub affected: &'static str,
    /// What goes wrong.
    pub wrong: &'static str,
    /// The scenario that exposes it.
    pub scenario: &'static str,
    /// The general check that catches it.
    pub caught_by: &'static str,
    /// Whether it is a defect switch `hunt` can run (the others are release emulation).
    pub huntable: bool,
    /// Failure signatures (their beginnings) that are this bug: what the benchmark counts as
    /// caught, and what a real-mode hunt on a binary that has the bug natively looks for.
    pub signatures: &'static [&'static str],
}

impl KnownBug {
    /// Whether a run failed as this bug: one of its failure signatures is the bug's.
    pub fn is_signature_of(&self, s: &crate::report::Summary) -> bool {
        s.verdict != "pass"
            && s.signatures
                .iter()
                .any(|sig| self.signatures.iter().any(|p| sig.starts_with(p)))
    }
}

/// What a hash mismatch between members reads as in a failure signature.
const HASHES_DIFFER: &str = "members' key spaces differ";

/// Every bug class the harness reproduces, by etcd issue.
pub const KNOWN_BUGS: &[KnownBug] = &[
    KnownBug {
        defect: "consistent-index-before-apply",
        etcd_issue: 13766,
        affected: "3.5.0-3.5.2, fixed in 3.5.3",
        wrong: "the consistent index is committed before its entry's writes; after a crash the entry is never applied on that member",
        scenario: catalogue::DEFECT_CONSISTENT_INDEX_BEFORE_APPLY,
        caught_by: "members' HashKV at the end, linearizability",
        huntable: true,
        signatures: &[HASHES_DIFFER, "linearizability"],
    },
    KnownBug {
        defect: "defrag-commit-without-consistent-index",
        etcd_issue: 14685,
        affected: "3.5 before 3.5.6",
        wrong: "defragmentation commits without the consistent index; after a crash the member re-applies entries and its revisions run ahead",
        scenario: catalogue::DEFECT_DEFRAG_WITHOUT_CONSISTENT_INDEX,
        caught_by: "members' HashKV at the end, linearizability",
        huntable: true,
        signatures: &[HASHES_DIFFER, "linearizability"],
    },
    KnownBug {
        defect: "revoke-without-leadership-check",
        etcd_issue: 15247,
        affected: "3.5 before 3.5.13",
        wrong: "a leader stalled by a slow disk revokes leases the new leader kept alive",
        scenario: catalogue::DEFECT_REVOKE_WITHOUT_LEADERSHIP_CHECK,
        caught_by: "lease timing",
        huntable: true,
        signatures: &["lease"],
    },
    KnownBug {
        defect: "progress-bypasses-watch-queue",
        etcd_issue: 15220,
        affected: "3.4 before 3.4.25, 3.5 before 3.5.8",
        wrong: "a requested progress notification overtakes events queued for the stream",
        scenario: catalogue::DEFECT_PROGRESS_BYPASSES_WATCH_QUEUE,
        caught_by: "watch guarantees (bookmarkable)",
        huntable: true,
        signatures: &["watch/bookmarkable"],
    },
    KnownBug {
        defect: "synced-watcher-keeps-start-rev",
        etcd_issue: 15271,
        affected: "3.4 before 3.4.25, 3.5 before 3.5.8",
        wrong: "after a snapshot from the leader, watchers replay events they already sent: the watch goes back in time",
        scenario: catalogue::DEFECT_SYNCED_WATCHER_KEEPS_START_REV,
        caught_by: "watch guarantees",
        huntable: true,
        signatures: &["watch/ordered", "watch/unique", "watch/resumable"],
    },
    KnownBug {
        defect: "apply-before-wal-sync",
        etcd_issue: 14370,
        affected: "3.5.0-3.5.4, fixed in 3.5.5",
        wrong: "a one-member cluster acknowledges a write before its WAL fdatasync; a power loss loses it",
        scenario: catalogue::DEFECT_APPLY_BEFORE_WAL_SYNC,
        caught_by: "linearizability",
        huntable: true,
        signatures: &["linearizability"],
    },
    KnownBug {
        defect: "compact-drops-tombstone-at-revision",
        etcd_issue: 18089,
        affected: "3.5 before 3.5.16, 3.4 before 3.4.34",
        wrong: "compaction at revision r drops a key's deletion at exactly r; a watch from r misses it",
        scenario: catalogue::DEFECT_COMPACT_DROPS_TOMBSTONE,
        caught_by: "watch guarantees",
        huntable: true,
        signatures: &["watch/reliable", "watch/resumable"],
    },
    KnownBug {
        defect: "strip-txn-ranges-without-waiter",
        etcd_issue: 18667,
        affected: "every release before 3.7 (fixed on main)",
        wrong: "members that did not propose a txn strip its reads before applying it; a read at a compacted revision fails the txn on the proposer only, and the members' data part ways",
        scenario: catalogue::DEFECT_STRIP_TXN_RANGES,
        caught_by: "members' HashKV at the end, linearizability",
        huntable: true,
        signatures: &[HASHES_DIFFER, "linearizability"],
    },
    KnownBug {
        defect: "restore-skips-tombstone-only-keys",
        etcd_issue: 19179,
        affected: "3.5.16-3.5.17, 3.4.34-3.4.35 (fixed in 3.5.18, 3.4.36)",
        wrong: "the index rebuild skips keys whose first stored revision is a tombstone; a member killed mid-compaction resumes it and deletes the deletions at the compact revision",
        scenario: catalogue::DEFECT_RESTORE_SKIPS_TOMBSTONES,
        caught_by: "watch guarantees, members' HashKV at the end",
        huntable: true,
        signatures: &["watch/reliable", "watch/resumable", HASHES_DIFFER],
    },
    KnownBug {
        defect: "compacted-watcher-skips-ahead",
        etcd_issue: 17529,
        affected: "3.4 before 3.4.31, 3.5 before 3.5.13",
        wrong: "a watcher whose compacted response finds its stream's queue full is brought to the round's revisions: it skips events and is never told of the compaction",
        scenario: catalogue::DEFECT_COMPACTED_WATCHER_SKIPS_AHEAD,
        caught_by: "watch guarantees (reliable, resumable)",
        huntable: true,
        signatures: &["watch/reliable", "watch/resumable"],
    },
    KnownBug {
        defect: "restore-ignores-scheduled-compaction",
        etcd_issue: 17780,
        affected: "3.4 before 3.4.32, 3.5 before 3.5.14",
        wrong: "a member stopped mid-compaction whose newest revision was a delete the compaction removed restarts with a lower store revision and hands revisions out again",
        scenario: catalogue::DEFECT_RESTORE_IGNORES_SCHEDULED_COMPACTION,
        caught_by: "linearizability (a revision returned twice), members' HashKV at the end, watch prev_kv",
        huntable: true,
        signatures: &[HASHES_DIFFER, "linearizability", "watch/prev_kv"],
    },
    KnownBug {
        defect: "restore-lowers-future-watchers",
        etcd_issue: 20221,
        affected: "3.4 before 3.4.38, 3.5 before 3.5.22, 3.6 before 3.6.2",
        wrong: "a snapshot from the leader brings a watcher waiting for a future revision down to the store's: it gets events before the revision it asked to start from",
        scenario: catalogue::DEFECT_RESTORE_LOWERS_FUTURE_WATCHERS,
        caught_by: "watch guarantees (resumable: only events at or after the start revision)",
        huntable: true,
        signatures: &["watch/resumable"],
    },
    KnownBug {
        defect: "follower-acks-before-wal-sync",
        etcd_issue: 14143,
        affected: "reported on 3.5.3 under lazyfs, never root-caused",
        wrong: "followers acknowledge entries before their WAL fdatasync; after a whole-cluster power loss the followers elect one of themselves and a committed write is gone",
        scenario: catalogue::DEFECT_FOLLOWER_ACKS_BEFORE_WAL_SYNC,
        caught_by: "linearizability, members' HashKV at the end",
        huntable: true,
        signatures: &[HASHES_DIFFER, "linearizability"],
    },
    KnownBug {
        defect: "release 3.5.19",
        etcd_issue: 19557,
        affected: "3.5.1-3.5.19 upgraded to 3.6.0-rc.0..rc.2",
        wrong: "learner promotions dropped from the v3 store; the upgraded member refuses to start",
        scenario: "upgrade-learner-bug",
        caught_by: "the scenario's expected start-up refusal",
        huntable: false,
        signatures: &[],
    },
    KnownBug {
        defect: "skip-read-index",
        etcd_issue: 0,
        affected: "a class, not one issue",
        wrong: "linearizable reads served from local state without ReadIndex",
        scenario: catalogue::DEFECT_SKIP_READ_INDEX,
        caught_by: "linearizability",
        huntable: true,
        signatures: &["linearizability"],
    },
];

/// The generic scenario `hunt --swarm` and the benchmark's second column use.
const GENERIC_SCENARIO: &str = "swarm";

/// Looks a bug up by defect name or etcd issue number.
pub fn find(name_or_issue: &str) -> Option<&'static KnownBug> {
    let issue = name_or_issue.trim_start_matches('#').parse::<u32>().ok();
    KNOWN_BUGS
        .iter()
        .find(|b| b.defect == name_or_issue || (issue.is_some() && Some(b.etcd_issue) == issue))
}

impl KnownBug {
    /// `etcd#N`, or `bug class` for one with no single etcd issue.
    fn issue_label(&self) -> String {
        match self.etcd_issue {
            0 => "bug class".to_string(),
            n => format!("etcd#{n}"),
        }
    }
}

/// `etcd-sim bugs`: one line per bug, starting with the defect's name.
pub fn list() {
    for b in KNOWN_BUGS {
        println!(
            "{:<36} {:<11} {:<38} {}; caught by {} in {}",
            b.defect,
            b.issue_label(),
            b.affected,
            b.wrong,
            b.caught_by,
            b.scenario
        );
    }
}

/// The catalogue as the README's Markdown table (`etcd-sim bugs --markdown`).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| defect | etcd issue | what goes wrong | scenario | caught by |\n|---|---|---|---|---|\n",
    );
    for b in KNOWN_BUGS {
        let issue = match b.etcd_issue {
            0 => "-".to_string(),
            n => format!("{n}"),
        };
        out.push_str(&format!(
            "| `{}` | {issue} ({}) | {} | `{}` | {} |\n",
            b.defect, b.affected, b.wrong, b.scenario, b.caught_by
        ));
    }
    out
}

/// `etcd-sim hunt`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct HuntArgs {
    /// The bug: a defect name or an etcd issue number (see `etcd-sim bugs`).
    pub bug: String,
    /// Seeds to try, in order: A..B (B exclusive) or A..=B.
    #[arg(long, default_value = "0..200")]
    pub seeds: String,
    /// Stop after this much wall time without a failure: 90s, 5m or seconds.
    #[arg(long, default_value = "60s")]
    pub budget: String,
    /// Where report directories go.
    #[arg(long, default_value = "target/etcd-sim/hunts")]
    pub report_dir: std::path::PathBuf,
    /// Hunt with this catalogue scenario (the defect switched on) instead of the bug's own.
    #[arg(long, conflicts_with = "swarm")]
    pub scenario: Option<String>,
    /// Hunt with the generic `swarm` scenario (the defect switched on).
    #[arg(long)]
    pub swarm: bool,
    /// Hunt in real mode. On our etcd-server the defect is switched on as in a simulation; on
    /// another binary (a real etcd) nothing is switched on: the hunt looks for the bug as the
    /// binary has it, in the `--scenario` given. In both worlds only failures with the bug's
    /// signatures count.
    #[command(flatten)]
    pub world: RealArgs,
}

/// What a hunt runs: the bug's own scenario, or `other` (a catalogue scenario) with the
/// defect switched on through the run options, so that the replay command carries it.
fn hunted(bug: &KnownBug, other: Option<&str>) -> anyhow::Result<(Scenario, RunOptions)> {
    let name = other.unwrap_or(bug.scenario);
    let Some(scenario) = catalogue::find(name) else {
        bail!(Usage(format!(
            "unknown scenario {name:?} (see `etcd-sim list`)"
        )));
    };
    let opts = RunOptions {
        defects: other
            .map(|_| vec![bug.defect.to_string()])
            .unwrap_or_default(),
        ..RunOptions::default()
    };
    Ok((scenario, opts))
}

/// Parses `90s`, `5m` or a number of seconds.
pub fn parse_budget(s: &str) -> Result<Duration, Usage> {
    let bad = || Usage(format!("malformed budget {s:?}: use 90s, 5m or seconds"));
    let (num, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60.0),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * unit))
}

/// `etcd-sim hunt`: runs the bug's scenario seed by seed (a batch per worker at a time) until
/// one fails with one of the bug's signatures (other failures are printed and skipped);
/// prints seeds to detection, wall time, the failing check and the replay command.
/// `Ok(true)` when caught, `Ok(false)` when the seeds or the budget ran out.
#[allow(clippy::disallowed_methods)] // Wall-clock budget of the hunt itself; never simulated.
pub fn hunt(args: &HuntArgs, threads: usize) -> anyhow::Result<bool> {
    let Some(bug) = find(&args.bug) else {
        let known: Vec<&str> = KNOWN_BUGS.iter().map(|b| b.defect).collect();
        bail!(Usage(format!(
            "unknown bug {:?}; known: {} (or their etcd issue numbers)",
            args.bug,
            known.join(", ")
        )));
    };
    if !bug.huntable {
        bail!(Usage(format!(
            "etcd {} is reproduced by release emulation, not a defect switch: run `etcd-sim run {}`",
            bug.etcd_issue, bug.scenario
        )));
    }
    let seeds = parse_seeds(&args.seeds)?;
    let budget = parse_budget(&args.budget)?;
    let other = if args.swarm {
        Some(GENERIC_SCENARIO)
    } else {
        args.scenario.as_deref()
    };
    let real = args.world.options()?;
    let native = match &real {
        Some(r) => !crate::real::is_ours(&r.bin)?,
        None => false,
    };
    let (scenario, mut opts) = if native {
        let Some(name) = other else {
            bail!(Usage(format!(
                "a real-mode hunt on a binary that is not ours switches nothing on: name the \
                 scenario that exposes etcd {} with --scenario",
                bug.etcd_issue
            )));
        };
        let scenario = catalogue::find(name)
            .ok_or_else(|| Usage(format!("unknown scenario {name:?} (see `etcd-sim list`)")))?;
        (scenario, RunOptions::default())
    } else {
        hunted(bug, other)?
    };
    opts.real = real;
    let start = Instant::now();
    let mut tried = 0;
    let bar = crate::progress::bar(seeds.len() as u64, &format!("hunt {}", bug.defect));
    let mut other_failures = 0;
    for batch in seeds.chunks(threads.max(1)) {
        if start.elapsed() > budget {
            break;
        }
        let jobs = batch.iter().map(|&s| (scenario.clone(), s)).collect();
        let done = run_many(
            jobs,
            Path::new(&args.report_dir),
            &opts,
            threads,
            &|_, _, _| {},
        )?;
        for d in done {
            tried += 1;
            bar.inc(1);
            bar.set_message(format!(
                "seed {} {}; {other_failures} failed otherwise",
                d.summary.seed, d.summary.verdict
            ));
            // A failure of another kind is not this bug (a defect may bring a neighbour's
            // mechanism along, as 17780's does 18089's): the benchmark and `qualify` count
            // alike.
            if d.summary.verdict != "pass" && !bug.is_signature_of(&d.summary) {
                other_failures += 1;
                bar.suspend(|| {
                    println!(
                        "seed {} failed, but not as {}: {}",
                        d.summary.seed,
                        bug.issue_label(),
                        d.summary.signatures.join("; ")
                    )
                });
                continue;
            }
            if d.summary.verdict != "pass" {
                bar.finish_and_clear();
                println!(
                    "caught {} ({}) in {} at seed {}: {tried} seed(s), {:.1} s wall",
                    bug.defect,
                    bug.issue_label(),
                    scenario.name,
                    d.summary.seed,
                    start.elapsed().as_secs_f64()
                );
                for (f, sig) in d.summary.failures.iter().zip(&d.summary.signatures) {
                    println!("  - [{sig}] {f}");
                }
                println!("  report: {}", d.dir.display());
                println!("  replay: {}", d.summary.replay);
                return Ok(true);
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "not caught: {} ({}) passed {tried} seed(s) of {} in {:.1} s wall",
        bug.defect,
        bug.issue_label(),
        scenario.name,
        start.elapsed().as_secs_f64()
    );
    Ok(false)
}

/// How one scenario did against one defect over a seed range.
#[derive(Debug, Clone, PartialEq)]
struct Detection {
    /// Seeds tried.
    seeds: usize,
    /// Seeds that failed.
    caught: usize,
    /// Median over starting seeds of how many seeds until the first failure (that one
    /// included), going round the range; `None` when none failed.
    median_seeds: Option<usize>,
    /// The same in wall seconds on this machine (run times over the workers).
    median_wall: Option<f64>,
}

/// Detection statistics from each seed's (failed, wall seconds), in seed order.
fn detection(runs: &[(bool, f64)], workers: usize) -> Detection {
    let n = runs.len();
    let caught = runs.iter().filter(|r| r.0).count();
    let mut to_first: Vec<(usize, f64)> = Vec::new();
    if caught > 0 {
        for start in 0..n {
            let mut wall = 0.0;
            for k in 0..n {
                let (failed, w) = runs[(start + k) % n];
                wall += w;
                if failed {
                    to_first.push((k + 1, wall / workers.max(1) as f64));
                    break;
                }
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Detection {
        seeds: n,
        caught,
        median_seeds: median(to_first.iter().map(|t| t.0 as f64).collect()).map(|m| m as usize),
        median_wall: median(to_first.iter().map(|t| t.1).collect()),
    }
}

impl Detection {
    /// `caught/seeds, median seeds, median wall` as table cells.
    fn cells(&self) -> String {
        match (self.median_seeds, self.median_wall) {
            (Some(s), Some(w)) => format!("{}/{} | {s} | {w:.1} s", self.caught, self.seeds),
            _ => format!("0/{} | - | -", self.seeds),
        }
    }
}

/// `etcd-sim bugs --bench`: every defect over seeds `0..n`, with its own scenario and with
/// the generic one; prints the README's table. Release emulation bugs are listed, not run.
pub fn bench(n: u64, threads: usize, root: &Path) -> anyhow::Result<String> {
    let mut out = String::from(
        "| defect | etcd issue | own scenario: caught | median seeds | median wall | swarm: caught | median seeds | median wall |\n|---|---|---|---|---|---|---|---|\n",
    );
    let seeds: Vec<u64> = (0..n).collect();
    for bug in KNOWN_BUGS.iter().filter(|b| b.huntable) {
        let mut cells = Vec::new();
        for other in [None, Some(GENERIC_SCENARIO)] {
            let (scenario, opts) = hunted(bug, other)?;
            let jobs = seeds.iter().map(|&s| (scenario.clone(), s)).collect();
            let done: Vec<Done> = run_many(jobs, root, &opts, threads, &|d, i, total| {
                eprint!(
                    "\r{} on {}: {i}/{total} (seed {} {})      ",
                    bug.defect, scenario.name, d.summary.seed, d.summary.verdict
                );
            })?;
            // Caught as this bug: a failure with one of its signatures (a seed that fails for
            // another reason does not count).
            let runs: Vec<(bool, f64)> = done
                .iter()
                .map(|d| (bug.is_signature_of(&d.summary), d.summary.wall_seconds))
                .collect();
            cells.push(detection(&runs, threads).cells());
        }
        eprintln!();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            bug.defect,
            bug.issue_label(),
            cells[0],
            cells[1]
        ));
    }
    Ok(out)
}

/// The shrink benchmark (`etcd-sim bugs --bench --shrink`): for every defect, the first seed
/// in 0..n its own scenario fails, shrunk within `budget`; a Markdown table ending with the
/// medians.
pub fn bench_shrink(n: u64, threads: usize, root: &Path, budget: &str) -> anyhow::Result<String> {
    let mut out = String::from(
        "| defect | etcd issue | seed | faults | operations | client hosts | sim seconds | tries | shrink time |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let seeds: Vec<u64> = (0..n).collect();
    let mut shrunk: Vec<ShrinkReport> = Vec::new();
    for bug in KNOWN_BUGS.iter().filter(|b| b.huntable) {
        let (scenario, opts) = hunted(bug, None)?;
        let mut failing: Option<Done> = None;
        for batch in seeds.chunks(threads.max(1)) {
            let jobs = batch.iter().map(|&s| (scenario.clone(), s)).collect();
            let done = run_many(jobs, root, &opts, threads, &|_, _, _| {})?;
            failing = done.into_iter().find(|d| d.summary.verdict != "pass");
            if failing.is_some() {
                break;
            }
        }
        let Some(d) = failing else {
            out.push_str(&format!(
                "| `{}` | {} | not caught in 0..{n} | | | | | | |\n",
                bug.defect,
                bug.issue_label()
            ));
            continue;
        };
        eprintln!("{}: shrinking seed {}", bug.defect, d.summary.seed);
        let args = ShrinkArgs {
            report: d.dir.clone(),
            out: Some(root.join("shrunk").join(bug.defect)),
            budget: budget.to_string(),
            jobs: None,
            fresh: true,
        };
        let r = shrink(&args)?.report;
        let (a, b) = (&r.original, &r.shrunk);
        out.push_str(&format!(
            "| `{}` | {} | {} | {} → {} | {} → {} | {} → {} | {:.1} → {:.1} | {} | {:.0} s |\n",
            bug.defect,
            bug.issue_label(),
            d.summary.seed,
            a.faults,
            b.faults,
            a.operations,
            b.operations,
            a.clients,
            b.clients,
            a.sim_seconds,
            b.sim_seconds,
            r.tries,
            r.seconds
        ));
        shrunk.push(r);
    }
    let median = |mut v: Vec<f64>| -> String {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => "-".into(),
            n => format!("{}", (v[(n - 1) / 2] * 10.0).round() / 10.0),
        }
    };
    let col = |f: fn(&ShrinkReport) -> f64| median(shrunk.iter().map(f).collect());
    out.push_str(&format!(
        "| **median** | | | {} | {} | {} | {} | {} | {} s |\n",
        col(|r| r.shrunk.faults as f64),
        col(|r| r.shrunk.operations as f64),
        col(|r| r.shrunk.clients as f64),
        col(|r| r.shrunk.sim_seconds),
        col(|r| r.tries as f64),
        col(|r| r.seconds.round()),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bugs_resolve_by_name_or_issue_and_name_real_scenarios() {
        assert_eq!(
            find("13766").map(|b| b.defect),
            Some("consistent-index-before-apply")
        );
        assert_eq!(find("#18089").map(|b| b.etcd_issue), Some(18089));
        assert!(find("nope").is_none());
        for b in KNOWN_BUGS {
            assert!(
                catalogue::find(b.scenario).is_some(),
                "{} names no scenario",
                b.defect
            );
            if b.huntable {
                let s = catalogue::find(b.scenario).unwrap_or_else(|| unreachable!());
                assert!(
                    s.flags.iter().any(|f| f.contains(b.defect)),
                    "{}'s scenario does not switch it on",
                    b.defect
                );
            }
        }
    }

    #[test]
    fn readme_table_is_the_generated_one() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README's bug table is not `etcd-sim bugs --markdown`'s output; regenerate it"
        );
    }

    #[test]
    fn detection_counts_seeds_round_the_range_to_the_first_failure() {
        // Seeds 0..4; only seed 2 fails. From 0: 3 seeds, from 1: 2, from 2: 1, from 3: 4.
        let runs = [(false, 1.0), (false, 1.0), (true, 2.0), (false, 1.0)];
        let d = detection(&runs, 1);
        assert_eq!((d.seeds, d.caught), (4, 1));
        assert_eq!(d.median_seeds, Some(3));
        assert_eq!(d.median_wall, Some(4.0));
        assert_eq!(detection(&runs, 2).median_wall, Some(2.0));
        let none = detection(&[(false, 1.0); 3], 2);
        assert_eq!((none.caught, none.median_seeds), (0, None));
        assert_eq!(none.cells(), "0/3 | - | -");
    }

    #[test]
    fn budgets_parse() {
        assert_eq!(parse_budget("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_budget("5m").ok(), Some(Duration::from_secs(300)));
        assert_eq!(parse_budget("2").ok(), Some(Duration::from_secs(2)));
        assert!(parse_budget("soon").is_err());
        assert!(parse_budget("0s").is_err());
    }
}
