//! Running a shard's items: simulated items on worker threads, real-mode items one at a time
//! after them, each item's runs turned into an [`ItemResult`].
//!
//! Owns: what each kind of item runs (a run, a defect's hunt over its seed range, a
//! determinism re-run, a real-mode run), which reports are kept (failed runs and caught
//! defects; a passing run keeps only its record), the budget, and the progress bar. Must
//! never: judge a run itself (`report::judge` and the known-bug signatures do), or stop a
//! qualification on a run's failure.

use super::plan::{Item, ItemKind, DEFECT_SEEDS};
use super::record::{ItemResult, Status, HARNESS_ERROR};
use crate::bugs;
use crate::catalogue;
use crate::real::RealOptions;
use crate::report::{self, Outcome, Summary};
use crate::runner::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the reports of kept runs go, under the qualification directory.
pub const RUNS: &str = "runs";

/// How a shard runs its items.
pub struct Execution<'a> {
    /// The qualification directory.
    pub dir: &'a Path,
    /// Worker threads for simulated items.
    pub threads: usize,
    /// Stop starting items after this much wall time.
    pub budget: Option<Duration>,
    /// Real mode's member binary, for real items.
    pub real: Option<RealOptions>,
}

impl Execution<'_> {
    /// Runs `items` (with their plan positions); returns one result per item, in any order.
    #[allow(clippy::disallowed_methods)] // the budget and progress are wall time, never simulated
    pub fn run(&self, items: &[(usize, Item)]) -> Vec<ItemResult> {
        let start = Instant::now();
        let bar = crate::progress::bar(items.len() as u64, "qualify");
        let failed = AtomicUsize::new(0);
        let over_budget = || self.budget.is_some_and(|b| start.elapsed() > b);
        let run_or_skip = |(order, item): &(usize, Item)| {
            let r = if over_budget() {
                ItemResult::not_run(item, *order, "the budget ran out".into())
            } else {
                self.item(*order, item)
            };
            if r.status == Status::Fail {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            bar.set_message(format!(
                "{} failed; last {}",
                failed.load(Ordering::Relaxed),
                r.item.id
            ));
            bar.inc(1);
            r
        };
        type Items<'a> = Vec<&'a (usize, Item)>;
        let (real, simulated): (Items, Items) =
            items.iter().partition(|(_, it)| it.kind == ItemKind::Real);
        let mut out: Vec<ItemResult> =
            crate::parallel::map_ordered(&simulated, self.threads, |it| run_or_skip(it), |_| false)
                .into_iter()
                .flatten()
                .collect();
        // Member processes share the machine's cores: one cluster at a time, after the rest.
        out.extend(real.into_iter().map(run_or_skip));
        bar.finish_and_clear();
        out
    }

    /// Runs one item.
    fn item(&self, order: usize, item: &Item) -> ItemResult {
        match item.kind {
            ItemKind::Run => self.single(order, item, RunOptions::default(), Keep::Failed),
            ItemKind::Determinism => {
                let mut r = self.single(order, item, RunOptions::default(), Keep::Never);
                if !r.is_harness_error() {
                    // Decided against its original when both results are together.
                    r.status = Status::Pending;
                    r.why.clear();
                    r.signatures.clear();
                }
                r
            }
            ItemKind::Real => match &self.real {
                Some(real) => {
                    let opts = RunOptions {
                        real: Some(real.clone()),
                        ..RunOptions::default()
                    };
                    self.single(order, item, opts, Keep::Failed)
                }
                None => ItemResult::not_run(item, order, "no real-mode binary".into()),
            },
            ItemKind::Defect => self.hunt(order, item),
        }
    }

    /// One run of the item's scenario and seed.
    fn single(&self, order: usize, item: &Item, opts: RunOptions, keep: Keep) -> ItemResult {
        let Some(sc) = catalogue::find(&item.scenario) else {
            return harness_error(item, order, format!("no scenario {}", item.scenario));
        };
        match runner::run(&sc, item.seed, &opts) {
            Ok(o) => {
                let mut r = from_summary(item, order, &o.summary);
                if let (Keep::Failed, Status::Fail) = (keep, r.status) {
                    r.report = self.keep(item, &o);
                }
                r
            }
            Err(e) => harness_error(item, order, format!("{e:#}")),
        }
    }

    /// A defect's hunt: its scenario seed by seed until a failure with one of the bug's
    /// signatures.
    fn hunt(&self, order: usize, item: &Item) -> ItemResult {
        let bug = item.defect.as_deref().and_then(bugs::find);
        let (Some(bug), Some(sc)) = (bug, catalogue::find(&item.scenario)) else {
            return harness_error(item, order, format!("no defect {:?}", item.defect));
        };
        let mut wall = 0.0;
        let mut last = None;
        for seed in item.seed..item.seed + DEFECT_SEEDS {
            let o = match runner::run(&sc, seed, &RunOptions::default()) {
                Ok(o) => o,
                Err(e) => return harness_error(item, order, format!("seed {seed}: {e:#}")),
            };
            wall += o.summary.wall_seconds;
            let tried = seed - item.seed + 1;
            if bug.is_signature_of(&o.summary) {
                let mut r = from_summary(item, order, &o.summary);
                r.status = Status::Pass;
                r.why.clear();
                r.signatures
                    .retain(|s| bug.signatures.iter().any(|p| s.starts_with(p)));
                r.report = self.keep(item, &o);
                r.seeds_run = tried;
                r.wall_seconds = wall;
                return r;
            }
            last = Some((o.summary, tried));
        }
        let Some((summary, tried)) = last else {
            return harness_error(item, order, "no seed tried".into());
        };
        let mut r = from_summary(item, order, &summary);
        r.status = Status::Fail;
        r.why = vec![format!(
            "{} not caught in seeds {}..{} of {}",
            bug.defect,
            item.seed,
            item.seed + DEFECT_SEEDS,
            sc.name
        )];
        r.signatures = vec![format!("defect not caught: {}", bug.defect)];
        r.seeds_run = tried;
        r.wall_seconds = wall;
        r
    }

    /// Writes a run's report under `runs/<kind>/`; returns its path relative to the
    /// qualification directory (none if it could not be written: the record still says why).
    fn keep(&self, item: &Item, o: &Outcome) -> Option<String> {
        let kind = match item.kind {
            ItemKind::Run => "run",
            ItemKind::Defect => "defect",
            ItemKind::Determinism => "determinism",
            ItemKind::Real => "real",
        };
        let root: PathBuf = self.dir.join(RUNS).join(kind);
        match report::write_dir(&root, o) {
            Ok(dir) => dir
                .strip_prefix(self.dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            Err(e) => {
                eprintln!("qualify: cannot keep the report of {}: {e:#}", item.id);
                None
            }
        }
    }
}

/// Which reports to write.
#[derive(Clone, Copy)]
enum Keep {
    /// Failed runs' reports.
    Failed,
    /// None (a determinism re-run's report would repeat its original's).
    Never,
}

/// The result of a run the harness itself could not complete: a failure of the item.
fn harness_error(item: &Item, order: usize, e: String) -> ItemResult {
    let mut r = ItemResult::not_run(item, order, format!("harness error: {e}"));
    r.status = Status::Fail;
    r.signatures = vec![HARNESS_ERROR.to_string()];
    r
}

/// An item's result from one run's summary: passed if the run passed.
fn from_summary(item: &Item, order: usize, s: &Summary) -> ItemResult {
    ItemResult {
        item: item.clone(),
        order,
        status: if s.verdict == "pass" {
            Status::Pass
        } else {
            Status::Fail
        },
        why: s.failures.clone(),
        signatures: s.signatures.clone(),
        run_seed: s.seed,
        seeds_run: 1,
        replay: s.replay.clone(),
        report: None,
        trace_hash: s.trace_hash.clone(),
        wall_seconds: s.wall_seconds,
        sim_seconds: s.sim_seconds,
        leader_changes: s.leader_changes,
        wal_fsync_p99_ms: s.wal_fsync_p99_ms,
        checker_seconds: s.checker.seconds,
        fault_kinds: s.faults.iter().map(|f| f.kind.clone()).collect(),
    }
}
