//! The linearizability checker's public API: options, results, partitioning and the (optionally
//! parallel) scheduling of per-partition searches.
//!
//! Owns: turning a history plus a [`Model`] into a [`CheckReport`], and the limits of a
//! search: a machine-independent step budget (configurations tried per partition) that decides
//! when the checker gives up, the same on every machine, and a wall-clock safety cap that, if
//! it ever fires first, is reported as its own failure ([`StopReason::WallClockCap`]: "checker
//! budget exceeded"), never as a verdict. Must never embed model semantics (those live in
//! `crate::models`) nor read the wall clock except for the cap and the elapsed time.

mod search;
mod tables;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::history::Operation;
use crate::model::Model;

/// How to run a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Use the model's partitioning (P-compositionality) if it offers one.
    pub partition: bool,
    /// Wall-clock safety cap: stop after this long with [`StopReason::WallClockCap`] (a failure
    /// of the check to finish on this machine, not a verdict).
    pub timeout: Option<Duration>,
    /// Check partitions on several threads.
    pub parallel: bool,
    /// Configurations each partition's search may try before it stops with
    /// [`StopReason::StepBudget`]: the budget that decides giving up, the same on any machine.
    pub step_budget: Option<u64>,
    /// Bytes the visited-configuration cache of each partition may hold; past them the search
    /// goes on without recording more (slower, never a different verdict).
    pub cache_limit_bytes: Option<usize>,
    /// Ask the model for a certain violation before searching ([`Model::certain_violation`]);
    /// off only to compare with the plain search.
    pub fast_paths: bool,
}

/// The default cache limit per partition (256 MiB: two partitions searched at once on a
/// 2-core machine stay far below 1 GiB).
pub const DEFAULT_CACHE_LIMIT_BYTES: usize = 256 << 20;

/// The default step budget: about 3 s of search on a 2-core machine (the release build tries
/// about 7 million configurations per second on porcupine's c10 kv history).
pub const DEFAULT_STEP_BUDGET: u64 = 20_000_000;

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            partition: true,
            timeout: None,
            parallel: true,
            step_budget: Some(DEFAULT_STEP_BUDGET),
            cache_limit_bytes: Some(DEFAULT_CACHE_LIMIT_BYTES),
            fast_paths: true,
        }
    }
}

/// Why a search stopped without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The step budget ran out: the same on every machine.
    StepBudget {
        /// The budget (configurations tried).
        steps: u64,
    },
    /// The wall-clock safety cap passed first: "checker budget exceeded" on this machine.
    WallClockCap {
        /// The cap.
        cap: Duration,
    },
    /// Another partition was found not linearizable first.
    Cancelled,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::StepBudget { steps } => {
                write!(f, "step budget of {steps} configurations reached")
            }
            StopReason::WallClockCap { cap } => write!(
                f,
                "checker budget exceeded: wall-clock cap of {:.1} s passed before the step budget",
                cap.as_secs_f64()
            ),
            StopReason::Cancelled => write!(f, "stopped: another partition failed"),
        }
    }
}

/// What an undecided check can say: where it stopped and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecided {
    /// The partition (index into [`CheckReport::partitions`]) that stopped.
    pub partition: usize,
    /// Why it stopped.
    pub reason: StopReason,
    /// Operations in the longest linearizable prefix found in that partition.
    pub prefix: usize,
    /// Operations in that partition.
    pub partition_ops: usize,
}

impl std::fmt::Display for Undecided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in partition {}; longest linearizable prefix {} of {} operations",
            self.reason, self.partition, self.prefix, self.partition_ops
        )
    }
}

/// The verdict of a check or of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable,
    /// The deadline passed (or, for a partition, the check stopped early because another
    /// partition was found not linearizable).
    Unknown,
}

/// One step of a (partial) linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinStep<S> {
    /// Index of the operation in the checked history.
    pub op: usize,
    /// The model state right after it.
    pub state: S,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample<S> {
    /// The partition (index into [`CheckReport::partitions`]) that failed.
    pub partition: usize,
    /// The first operation that cannot be placed: the unplaced known-outcome operation that
    /// returns first after the longest partial linearization.
    pub failed_op: usize,
    /// The longest partial linearization found.
    pub partial: Vec<LinStep<S>>,
    /// The model state at the end of `partial`.
    pub state: S,
    /// Set when the model found the violation without search
    /// ([`Model::certain_violation`]): what makes `failed_op` impossible (`partial` is empty).
    pub reason: Option<String>,
}

/// The overall result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult<S> {
    /// Every partition is linearizable.
    Linearizable,
    /// Some partition is not.
    NotLinearizable(Box<Counterexample<S>>),
    /// A search stopped before a verdict.
    Unknown(Box<Undecided>),
}

impl<S> CheckResult<S> {
    /// The verdict without details.
    pub fn verdict(&self) -> Verdict {
        match self {
            CheckResult::Linearizable => Verdict::Linearizable,
            CheckResult::NotLinearizable(_) => Verdict::NotLinearizable,
            CheckResult::Unknown(_) => Verdict::Unknown,
        }
    }
}

/// The result for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport<S> {
    /// Indices (into the checked history) of the partition's operations.
    pub ops: Vec<usize>,
    /// This partition's verdict.
    pub verdict: Verdict,
    /// The full linearization if linearizable (unknown-outcome operations that need not have
    /// taken effect are left out), otherwise the longest partial linearization found.
    pub linearization: Vec<LinStep<S>>,
    /// The initial model state.
    pub init: S,
    /// For a failed partition: the first operation that cannot be placed.
    pub failed_op: Option<usize>,
    /// For an undecided partition: why its search stopped.
    pub stopped: Option<StopReason>,
    /// Search statistics.
    pub stats: SearchStats,
}

/// Counters from one search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Configurations entered.
    pub visited: u64,
    /// Distinct model states met.
    pub states: u64,
    /// Bytes the visited-configuration cache held at the end.
    pub cache_bytes: u64,
    /// Whether the cache reached its limit (and stopped recording).
    pub cache_limited: bool,
}

/// A full check report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport<S> {
    /// The verdict and counterexample.
    pub result: CheckResult<S>,
    /// Per-partition results, in partition order.
    pub partitions: Vec<PartitionReport<S>>,
    /// Time spent.
    pub elapsed: Duration,
}

impl<S> CheckReport<S> {
    /// Re-indexes the report's operations through `map` (index in the checked history to index
    /// in the caller's), after checking a subsequence of the caller's history.
    pub fn map_ops(&mut self, map: &[usize]) {
        let to = |i: &mut usize| {
            if let Some(&j) = map.get(*i) {
                *i = j;
            }
        };
        for p in &mut self.partitions {
            p.ops.iter_mut().for_each(to);
            p.linearization.iter_mut().for_each(|s| to(&mut s.op));
            if let Some(f) = &mut p.failed_op {
                to(f);
            }
        }
        if let CheckResult::NotLinearizable(cx) = &mut self.result {
            to(&mut cx.failed_op);
            cx.partial.iter_mut().for_each(|s| to(&mut s.op));
        }
    }
}

/// The undecided partition to report, if any: one stopped by the wall-clock cap first (the
/// loud failure), else the first stopped by its step budget, else the first stopped at all.
fn undecided<S>(reports: &[PartitionReport<S>]) -> Option<Undecided> {
    let rank = |s: &StopReason| match s {
        StopReason::WallClockCap { .. } => 0,
        StopReason::StepBudget { .. } => 1,
        StopReason::Cancelled => 2,
    };
    let (partition, r, reason) = reports
        .iter()
        .enumerate()
        .filter(|(_, r)| r.verdict != Verdict::Linearizable)
        .map(|(i, r)| (i, r, r.stopped.unwrap_or(StopReason::Cancelled)))
        .min_by_key(|(i, _, s)| (rank(s), *i))?;
    Some(Undecided {
        partition,
        reason,
        prefix: r.linearization.len(),
        partition_ops: r.ops.len(),
    })
}

/// Number of CPUs, computed once (`available_parallelism` reads cgroup files on Linux).
fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The report of a violation the model found without search: one partition with every
/// operation, an empty partial linearization and the model's reason.
fn certain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    failed_op: usize,
    reason: String,
    elapsed: Duration,
) -> CheckReport<M::State> {
    let init = model.init();
    CheckReport {
        result: CheckResult::NotLinearizable(Box::new(Counterexample {
            partition: 0,
            failed_op,
            partial: Vec::new(),
            state: init.clone(),
            reason: Some(reason),
        })),
        partitions: vec![PartitionReport {
            ops: (0..history.len()).collect(),
            verdict: Verdict::NotLinearizable,
            linearization: Vec::new(),
            init,
            failed_op: Some(failed_op),
            stopped: None,
            stats: SearchStats::default(),
        }],
        elapsed,
    }
}

/// Checks `history` against `model` with default options.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> CheckReport<M::State> {
    check_with(model, history, &CheckOptions::default())
}

/// Checks `history` against `model`.
#[allow(clippy::disallowed_methods)] // Instant::now for the deadline and timing; never simulated.
pub fn check_with<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> CheckReport<M::State> {
    let start = Instant::now();
    if options.fast_paths {
        if let Some((op, reason)) = model.certain_violation(history) {
            return certain(model, history, op, reason, start.elapsed());
        }
    }
    let limits = search::Limits {
        deadline: options.timeout.map(|t| (start + t, t)),
        step_budget: options.step_budget,
        cache_limit_bytes: options.cache_limit_bytes,
    };
    let mut parts = if options.partition {
        model.partition(history)
    } else {
        None
    }
    .unwrap_or_else(|| vec![(0..history.len()).collect()]);
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        parts.push(Vec::new());
    }

    let cancel = AtomicBool::new(false);
    let threads = if options.parallel {
        cpus().min(parts.len())
    } else {
        1
    };
    let reports: Vec<PartitionReport<M::State>> = if threads <= 1 {
        let mut out = Vec::with_capacity(parts.len());
        for p in &parts {
            let r = search::search(model, history, p, &limits, &cancel);
            if r.verdict == Verdict::NotLinearizable {
                cancel.store(true, Ordering::Relaxed);
            }
            out.push(r);
        }
        out
    } else {
        // Largest partitions first for load balance; results go back to partition order.
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(parts[i].len()));
        let next = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<PartitionReport<M::State>>>> =
            Mutex::new((0..parts.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let r = search::search(model, history, &parts[i], &limits, &cancel);
                    if r.verdict == Verdict::NotLinearizable {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut slots) = slots.lock() {
                        slots[i] = Some(r);
                    }
                });
            }
        });
        let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
        slots
            .into_iter()
            .zip(&parts)
            .map(|(r, p)| r.unwrap_or_else(|| search::skipped(model, p)))
            .collect()
    };

    let result = if let Some((i, r)) = reports
        .iter()
        .enumerate()
        .find(|(_, r)| r.verdict == Verdict::NotLinearizable)
    {
        let state = r
            .linearization
            .last()
            .map_or_else(|| r.init.clone(), |s| s.state.clone());
        CheckResult::NotLinearizable(Box::new(Counterexample {
            partition: i,
            failed_op: r.failed_op.unwrap_or(usize::MAX),
            partial: r.linearization.clone(),
            state,
            reason: None,
        }))
    } else if let Some(u) = undecided(&reports) {
        CheckResult::Unknown(Box::new(u))
    } else {
        CheckResult::Linearizable
    };
    CheckReport {
        result,
        partitions: reports,
        elapsed: start.elapsed(),
    }
}
