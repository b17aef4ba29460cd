//! The linearizability checker's public API: options, results, partitioning and the (optionally
//! parallel) scheduling of per-partition searches.
//!
//! Owns: turning a history plus a [`Model`] into a [`CheckReport`]. Must never embed model
//! semantics (those live in `crate::models`) nor read the wall clock except for the deadline.

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
    /// Give up (verdict `Unknown`) after this long.
    pub timeout: Option<Duration>,
    /// Check partitions on several threads.
    pub parallel: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            partition: true,
            timeout: None,
            parallel: true,
        }
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
}

/// The overall result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult<S> {
    /// Every partition is linearizable.
    Linearizable,
    /// Some partition is not.
    NotLinearizable(Box<Counterexample<S>>),
    /// The deadline passed before a verdict.
    Unknown,
}

impl<S> CheckResult<S> {
    /// The verdict without details.
    pub fn verdict(&self) -> Verdict {
        match self {
            CheckResult::Linearizable => Verdict::Linearizable,
            CheckResult::NotLinearizable(_) => Verdict::NotLinearizable,
            CheckResult::Unknown => Verdict::Unknown,
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

/// Number of CPUs, computed once (`available_parallelism` reads cgroup files on Linux).
fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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
    let deadline = options.timeout.map(|t| start + t);
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
            let r = search::search(model, history, p, deadline, &cancel);
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
                    let r = search::search(model, history, &parts[i], deadline, &cancel);
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
        }))
    } else if reports.iter().all(|r| r.verdict == Verdict::Linearizable) {
        CheckResult::Linearizable
    } else {
        CheckResult::Unknown
    };
    CheckReport {
        result,
        partitions: reports,
        elapsed: start.elapsed(),
    }
}
