//! `etcd-sim shrink`: from a failing run, the smallest run found that still fails the same way
//! (the same failure signature), as files `etcd-sim run --faults --workload` replays.
//!
//! Owns: the search. Every try is a seeded simulated run of the same scenario and seed with a
//! smaller fault schedule or workload; streams of what is not cut stay the same (each client,
//! watcher and the fault selectors draw from their own seeded stream, DESIGN.md §2), so each step
//! changes only what it cuts. Moves, in passes until none helps or the budget runs out: delete
//! faults (delta debugging: halves, quarters, ... single faults); scans (the deepest of 15 cuts
//! that still fails alike) of the faults' times, the traffic's stop, its start, the fault windows'
//! lengths and the rate; drop client hosts (delta debugging over traffic clients, the compactor,
//! watchers and lease clients, the others keeping their names, streams and pace); start fault
//! windows later, halve faults' intensities; drop kinds of request from the traffic's mix (a client
//! left with no kind sends nothing); fewer members (5 to 3, 3 to 1); and when those are stuck,
//! drop single requests (delta debugging over the requests the traffic clients and the compactor
//! sent, in the order sent: a dropped one is still drawn, so the host's others stay what they
//! were). A move that keeps every fault must not add operations. When none helps, the search
//! redraws (six times at most): the first of other draws of the traffic (each client's requests
//! drawn anew, everything else as it was) that fails alike is cut again, and kept if it ends
//! smaller. Independent tries (the chunks of a delta-debugging round, the op kinds) run `--jobs`
//! at a time; of those, the first in the search's order that fails alike is taken. Every accepted
//! step is saved (`shrink-progress.json`), and a search started again on the same out directory
//! resumes from it.
//!
//! Guarantees: a result fails with the original's first signature; the same report and
//! budget give the same result, for any `--jobs`, when the budget is not reached (the order of
//! tries decides, never their timing).
//! Must never: accept a try that fails differently, shrink a passing run, or shrink a real-mode
//! run (its timing is not a function of the seed).

use crate::catalogue::{self, Scenario};
use crate::cli::Usage;
use crate::history::Record;
use crate::nemesis::FaultSchedule;
use crate::report::{self, Outcome, Summary};
use crate::runner::{run, RunOptions};
use crate::workload::{self, WorkloadFile};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `etcd-sim shrink` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ShrinkArgs {
    /// The failing run's report directory (or its summary.json).
    pub report: PathBuf,
    /// Where the shrunk run goes (default: REPORT-shrunk).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop searching after this much wall time with the best found: 90s, 5m or seconds.
    #[arg(long, default_value = "5m")]
    pub budget: String,
    /// Tries run at once (default: one per CPU). The result does not depend on it: of tries
    /// run together, the first in the search's order that fails the same way is taken.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Start afresh, ignoring the progress a stopped search left in the out directory.
    #[arg(long)]
    pub fresh: bool,
}

/// How big a run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Size {
    /// Faults in the schedule.
    pub faults: usize,
    /// Requests issued.
    pub operations: usize,
    /// Client hosts: traffic clients, watchers, lease clients, the compactor.
    pub clients: usize,
    /// Simulated seconds.
    pub sim_seconds: f64,
    /// Members.
    pub members: usize,
}

/// `shrink.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShrinkReport {
    /// The failing run shrunk.
    pub original_report: String,
    /// The signature every accepted try failed with.
    pub signature: String,
    /// Before.
    pub original: Size,
    /// After.
    pub shrunk: Size,
    /// Runs tried, and how many were accepted.
    pub tries: usize,
    /// Tries that failed the same way (each made the run smaller).
    pub accepted: usize,
    /// Wall time of the search.
    pub seconds: f64,
    /// Whether the budget ended the search before no move helped.
    pub budget_reached: bool,
    /// The command that replays the shrunk run.
    pub replay: String,
}

/// What `shrink` produced.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The `--out` directory (schedule.json, workload.json, shrink.json).
    pub out: PathBuf,
    /// The shrunk run's report directory (inside `out`).
    pub run_dir: PathBuf,
    /// `shrink.json`.
    pub report: ShrinkReport,
}

/// A candidate run: what the search cuts.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    schedule: FaultSchedule,
    workload: WorkloadFile,
}

/// The search's state: the scenario, the seed, what it must keep failing with.
struct Search {
    scenario: Scenario,
    seed: u64,
    defects: Vec<String>,
    signature: String,
    files: (PathBuf, PathBuf),
    started: Instant,
    budget: Duration,
    tries: usize,
    accepted: usize,
    /// Tries run at once.
    jobs: usize,
    /// Which search this is, for a resumed one to recognize its progress.
    key: SearchKey,
    /// Where each accepted step is saved, so that a stopped search resumes (see [`Progress`]).
    progress_path: PathBuf,
    /// Tries so far and the current size, on stderr.
    bar: indicatif::ProgressBar,
    /// The next traffic draw [`redraw_traffic`] offers.
    next_draw: u64,
}

/// What a search keeps failing like: the original report, scenario, seed and signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SearchKey {
    original_report: String,
    scenario: String,
    seed: u64,
    signature: String,
}

/// `shrink-progress.json` in the out directory: the search so far, rewritten at every
/// accepted step. A search with the same [`SearchKey`] resumes from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    #[serde(flatten)]
    key: SearchKey,
    tries: usize,
    accepted: usize,
    schedule: FaultSchedule,
    workload: WorkloadFile,
}

impl Progress {
    /// The progress saved at `path` if it belongs to the search `key`.
    fn load(path: &Path, key: &SearchKey) -> Option<Progress> {
        #[allow(clippy::disallowed_methods)] // the search's own file, read before any run
        let text = std::fs::read_to_string(path).ok()?;
        let p: Progress = serde_json::from_str(&text).ok()?;
        (p.key == *key).then_some(p)
    }
}

impl Search {
    fn out_of_time(&self) -> bool {
        self.started.elapsed() >= self.budget
    }

    fn options(&self, c: &Candidate) -> RunOptions {
        RunOptions {
            schedule: Some(c.schedule.clone()),
            schedule_source: Some(format!("file {}", self.files.0.display())),
            defects: self.defects.clone(),
            skip_twin: true,
            workload: Some((c.workload.clone(), self.files.1.display().to_string())),
            ..RunOptions::default()
        }
    }

    /// Runs `c`; its outcome if it fails with the signature. A try the harness cannot run (a
    /// schedule naming a member the smaller cluster lacks) does not fail the same way.
    fn still_fails(&self, c: &Candidate) -> Option<Outcome> {
        self.bar.inc(1);
        let o = run(&self.scenario, self.seed, &self.options(c)).ok()?;
        o.summary.signatures.contains(&self.signature).then_some(o)
    }

    /// Whether `o`, the outcome of `next`, is a step down from `best`: it fails the same way
    /// and deletes faults, or changes the run without adding operations.
    fn is_smaller(best: &(Candidate, Outcome), next: &Candidate, o: &Outcome) -> bool {
        let fewer_faults = next.schedule.faults.len() < best.0.schedule.faults.len();
        let same_run = o.summary.trace_hash == best.1.summary.trace_hash;
        fewer_faults || (o.summary.ops.total <= best.1.summary.ops.total && !same_run)
    }

    /// Tries the candidates in order, `jobs` at a time, until one is a step down from `best`;
    /// takes the first (in order) that is, and returns its position. The order decides, not
    /// the timing: the result is the one trying them one by one would give.
    fn first_smaller(
        &mut self,
        best: &mut (Candidate, Outcome),
        candidates: Vec<(Candidate, String)>,
    ) -> anyhow::Result<Option<usize>> {
        self.first_taken(best, candidates, Self::is_smaller)
    }

    /// [`Search::first_smaller`] with another rule for which failing try is taken.
    fn first_taken(
        &mut self,
        best: &mut (Candidate, Outcome),
        candidates: Vec<(Candidate, String)>,
        taken: impl Fn(&(Candidate, Outcome), &Candidate, &Outcome) -> bool,
    ) -> anyhow::Result<Option<usize>> {
        let candidates: Vec<(usize, Candidate, String)> = candidates
            .into_iter()
            .enumerate()
            .filter(|(_, (c, _))| *c != best.0)
            .map(|(i, (c, what))| (i, c, what))
            .collect();
        for window in candidates.chunks(self.jobs.max(1)) {
            if self.out_of_time() {
                return Ok(None);
            }
            self.tries += window.len();
            let this = &*self;
            let outcomes = crate::parallel::map_ordered(
                window,
                this.jobs,
                |(_, c, _)| this.still_fails(c),
                |_| false,
            );
            let found = window.iter().zip(outcomes).find_map(|((i, c, what), o)| {
                let o = o.flatten()?;
                taken(best, c, &o).then(|| (*i, c.clone(), what.clone(), o))
            });
            if let Some((i, next, what, o)) = found {
                self.accept(best, next, o, &what)?;
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Tries one candidate (see [`Search::first_smaller`]).
    fn try_move(
        &mut self,
        best: &mut (Candidate, Outcome),
        next: Candidate,
        what: &str,
    ) -> anyhow::Result<bool> {
        Ok(self
            .first_smaller(best, vec![(next, what.to_string())])?
            .is_some())
    }

    /// Makes `next` the best, shows it and saves the progress.
    fn accept(
        &mut self,
        best: &mut (Candidate, Outcome),
        next: Candidate,
        o: Outcome,
        what: &str,
    ) -> anyhow::Result<()> {
        self.accepted += 1;
        let size = size_of(&next, &o.summary, &self.scenario);
        let now = format!(
            "{} fault(s), {} operation(s), {} client(s), {} member(s), {:.1} sim-s",
            size.faults, size.operations, size.clients, size.members, size.sim_seconds
        );
        self.bar
            .suspend(|| eprintln!("  try {:>3}: {what}: {now}", self.tries));
        self.bar.set_message(now);
        self.save_progress(&next)?;
        *best = (next, o);
        Ok(())
    }

    /// Saves the search so far, with `best` as its current run.
    fn save_progress(&self, best: &Candidate) -> anyhow::Result<()> {
        let progress = Progress {
            key: self.key.clone(),
            tries: self.tries,
            accepted: self.accepted,
            schedule: best.schedule.clone(),
            workload: best.workload.clone(),
        };
        write_json(&self.progress_path, &progress)
    }
}

fn size_of(c: &Candidate, s: &Summary, sc: &Scenario) -> Size {
    let members = c.workload.members.unwrap_or(sc.members);
    Size {
        faults: c.schedule.faults.len(),
        operations: s.ops.total,
        clients: workload::client_hosts(&c.workload.workload, members).len(),
        sim_seconds: s.sim_seconds,
        members,
    }
}

/// Delta debugging over a list a run holds (its faults, its client hosts, its requests): removes
/// chunks of it (halves, then smaller, down to single items, or to `finest` chunks of it) while
/// the run still fails alike. `items` reads the list from a run, once a round; `remove` cuts a
/// range of it from the run's candidate, saying what it cut.
fn delta_debug<T>(
    search: &mut Search,
    best: &mut (Candidate, Outcome),
    finest: usize,
    items: impl Fn(&(Candidate, Outcome)) -> Vec<T>,
    remove: impl Fn(&Candidate, &[T], Range<usize>) -> (Candidate, String),
) -> anyhow::Result<bool> {
    let mut progressed = false;
    let mut chunks = 2usize;
    while !search.out_of_time() {
        let list = items(best);
        if list.is_empty() {
            break;
        }
        let most_chunks = list.len().min(finest);
        let size = list.len().div_ceil(chunks.min(most_chunks));
        let candidates = (0..list.len())
            .step_by(size)
            .map(|start| remove(&best.0, &list, start..(start + size).min(list.len())))
            .collect();
        if search.first_smaller(best, candidates)?.is_some() {
            progressed = true;
            chunks = chunks.saturating_sub(1).max(2);
        } else if chunks >= most_chunks {
            break;
        } else {
            chunks = (chunks * 2).min(most_chunks);
        }
    }
    Ok(progressed)
}

/// Deletes faults (see [`delta_debug`]).
fn delete_faults(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    delta_debug(
        search,
        best,
        usize::MAX,
        |(c, _)| c.schedule.faults.clone(),
        |c, _, range| {
            let mut next = c.clone();
            let what = format!("drop fault(s) {}..{}", range.start, range.end);
            next.schedule.faults.drain(range);
            (next, what)
        },
    )
}

/// Drops client hosts: traffic clients, the compactor, watchers, lease clients (see
/// [`delta_debug`]). The others keep their names, streams and pace.
fn drop_hosts(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    let members = search.scenario.members;
    delta_debug(
        search,
        best,
        usize::MAX,
        |(c, _)| {
            workload::client_hosts(&c.workload.workload, c.workload.members.unwrap_or(members))
        },
        |c, hosts, range| {
            let dropped = &hosts[range];
            let mut next = c.clone();
            next.workload
                .workload
                .drop_hosts
                .extend(dropped.iter().cloned());
            next.workload.workload.drop_hosts.sort();
            (next, format!("drop client host(s) {}", dropped.join(", ")))
        },
    )
}

/// The requests `best` sent that its workload can drop (see
/// [`workload::WorkloadConfig::drop_requests`]), in the order they were sent: (host, the
/// request's number among those the host drew).
fn droppable_requests(best: &(Candidate, Outcome)) -> Vec<(String, u64)> {
    let dropped = &best.0.workload.workload.drop_requests;
    let mut records: Vec<&Record> = best
        .1
        .records
        .iter()
        .filter(|r| workload::is_drawing_host(&r.host))
        .collect();
    // A host sends one request at a time: in call order, its records are in the order it drew
    // them, with the dropped ones left out.
    records.sort_by_key(|r| r.call_us);
    let mut next_number: BTreeMap<&str, u64> = BTreeMap::new();
    records
        .into_iter()
        .map(|r| {
            let number = next_number.entry(&r.host).or_default();
            let skipped = dropped.get(&r.host);
            while skipped.is_some_and(|d| d.contains(number)) {
                *number += 1;
            }
            let this = *number;
            *number += 1;
            (r.host.clone(), this)
        })
        .collect()
}

/// The finest chunks request dropping cuts a run into: single requests once this many or fewer
/// are left. A run of a thousand requests (a defect that needs a snapshot) would spend the
/// budget on single requests that each cut a thousandth of it; the redraws cut more.
const FINEST_REQUEST_CHUNKS: usize = 64;

/// Drops requests of the traffic clients and the compactor (see [`delta_debug`]), down to
/// single ones in a run of [`FINEST_REQUEST_CHUNKS`] or fewer: each is still drawn, so the
/// host's others stay what they were.
fn drop_requests(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    delta_debug(
        search,
        best,
        FINEST_REQUEST_CHUNKS,
        droppable_requests,
        |c, requests, range| {
            let mut next = c.clone();
            let dropped = &mut next.workload.workload.drop_requests;
            for (host, number) in &requests[range.clone()] {
                let numbers = dropped.entry(host.clone()).or_default();
                numbers.push(*number);
                numbers.sort_unstable();
            }
            let (host, number) = &requests[range.start];
            let what = match range.len() {
                1 => format!("drop request {host}#{number}"),
                n => format!("drop {n} requests from {host}#{number} on"),
            };
            (next, what)
        },
    )
}

/// Draws of the traffic a redraw offers.
const REDRAWS: u64 = 16;

/// Redraws a search makes at most, whether or not they find a branch (see [`redraw_traffic`]).
const REDRAW_BRANCHES: usize = 6;

/// The first of the next [`REDRAWS`] draws of `best`'s traffic (every client host's requests drawn
/// anew; the servers, the network and the faults keep their streams) that fails alike, whatever its
/// operations: a branch for the moves to cut again. Once they are stuck on one draw, another often
/// lets them cut further. The draws tried only move forward.
fn redraw_traffic(
    search: &mut Search,
    best: &(Candidate, Outcome),
) -> anyhow::Result<Option<(Candidate, Outcome)>> {
    let from = search
        .next_draw
        .max(best.0.workload.workload.traffic_draw + 1);
    search.next_draw = from + REDRAWS;
    let mut branch = best.clone();
    let candidates = (from..search.next_draw)
        .map(|draw| {
            let mut next = best.0.clone();
            next.workload.workload.traffic_draw = draw;
            (next, format!("traffic draw {draw}"))
        })
        .collect();
    let taken = search.first_taken(&mut branch, candidates, |_, _, _| true)?;
    Ok(taken.map(|_| branch))
}

/// Whether `a` is a smaller run than `b`: fewer faults, or as many and fewer operations.
fn smaller_run(a: &(Candidate, Outcome), b: &(Candidate, Outcome)) -> bool {
    let faults = |r: &(Candidate, Outcome)| r.0.schedule.faults.len();
    (faults(a), a.1.summary.ops.total) < (faults(b), b.1.summary.ops.total)
}

/// Every move, in passes, until none helps or the budget runs out. Dropping single requests,
/// the move with the most tries (several per request of the run), comes when the others are
/// stuck: on a run of a thousand requests they cut more for their tries.
fn cut_until_stuck(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<()> {
    loop {
        let deleted = delete_faults(search, best)?;
        let fewer = fewer_members(search, best)?;
        let cut = cut_traffic(search, best)?;
        if search.out_of_time() {
            return Ok(());
        }
        // Requests are dropped only when the other moves did nothing this pass.
        if !(deleted || fewer || cut || drop_requests(search, best)?) {
            return Ok(());
        }
    }
}

/// Fewer members where the run allows: 5 to 3, then 3 to 1 (a schedule naming a member the
/// smaller cluster lacks does not run, so it is not taken).
fn fewer_members(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    let mut progressed = false;
    loop {
        let members = best.0.workload.members.unwrap_or(search.scenario.members);
        if members < 3 || search.out_of_time() {
            return Ok(progressed);
        }
        let mut next = best.0.clone();
        next.workload.members = Some(members - 2);
        if !search.try_move(best, next, &format!("{} members", members - 2))? {
            return Ok(progressed);
        }
        progressed = true;
    }
}

/// The shortest fault window a cut leaves.
const MIN_FAULT_WINDOW_MS: u64 = 50;

/// How finely a scan divides what it cuts: candidates at 1/16, 2/16, ... of it.
const SCAN_STEPS: u64 = 16;

/// The faults' times, the traffic's length and start, the fault windows and the rate, each cut as
/// far as the run still fails alike: a scan offers the cuts from the deepest to the slightest
/// (every fault at 1/16 of its time, then 2/16, ..., so that the traffic can stop sooner after
/// them; stop at 1/16 of the way from its start, then 2/16, ...; start 15/16 of the way to the end,
/// then 14/16, ...; every fault window at 1/16 of its length (not below 50 ms), ...; 1/16 of the
/// rate, then 2/16, ...), `jobs` at a time, and takes the deepest that still fails alike; repeated
/// from there until a scan finds none, or only the slightest. Fixed halvings stopped at the first
/// half that no longer failed, far from where the failure lies.
fn scan_cuts(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    type Scan = (&'static str, fn(&mut Candidate, u64) -> bool);
    let scans: [Scan; 5] = [
        ("move the faults earlier", |c, k| {
            let mut changed = false;
            for f in &mut c.schedule.faults {
                let at = f.at_ms * k / SCAN_STEPS;
                changed |= at != f.at_ms;
                f.at_ms = at;
            }
            changed
        }),
        ("stop the traffic earlier", |c, k| {
            stop_sooner(c, k, SCAN_STEPS)
        }),
        ("start the traffic later", |c, k| {
            start_later(c, SCAN_STEPS - k, SCAN_STEPS)
        }),
        ("shorten the fault windows", |c, k| {
            let mut changed = false;
            for f in &mut c.schedule.faults {
                let d = f.duration_ms * k / SCAN_STEPS;
                if d >= MIN_FAULT_WINDOW_MS && d < f.duration_ms {
                    f.duration_ms = d;
                    changed = true;
                }
            }
            changed
        }),
        ("lower the rate", |c, k| {
            let r = (c.workload.workload.rate as u64 * k / SCAN_STEPS) as u32;
            let ok = r >= 1 && r < c.workload.workload.rate;
            if ok {
                c.workload.workload.rate = r;
            }
            ok
        }),
    ];
    let mut progressed = false;
    for (what, cut) in scans {
        loop {
            let candidates: Vec<(Candidate, String)> = (1..SCAN_STEPS)
                .filter_map(|k| {
                    let mut next = best.0.clone();
                    cut(&mut next, k).then(|| (next, what.to_string()))
                })
                .collect();
            let slightest = candidates.len().saturating_sub(1);
            match search.first_smaller(best, candidates)? {
                None => break,
                Some(i) => {
                    progressed = true;
                    // Only the slightest cut still failed: the next scan would shave as
                    // little again; leave the rest to the other moves.
                    if i == slightest {
                        break;
                    }
                }
            }
        }
    }
    Ok(progressed)
}

/// Stops the traffic `num / den` of the way from where it starts to where it stops now (not
/// below 500 ms).
fn stop_sooner(c: &mut Candidate, num: u64, den: u64) -> bool {
    let w = &mut c.workload;
    let from = w.workload.start_after_ms;
    let d = from + w.duration_ms.saturating_sub(from) * num / den;
    let ok = d >= 500 && d > from && d < w.duration_ms;
    if ok {
        w.duration_ms = d;
    }
    ok
}

/// Starts the traffic `num / den` of the way from where it starts now to its end.
fn start_later(c: &mut Candidate, num: u64, den: u64) -> bool {
    let w = &mut c.workload;
    let from = w.workload.start_after_ms;
    let later = from + w.duration_ms.saturating_sub(from) * num / den;
    let ok = later > from && later < w.duration_ms;
    if ok {
        w.workload.start_after_ms = later;
    }
    ok
}

/// Smaller workloads and fault windows: the scans, dropped client hosts, then one knob at a
/// time (fault windows, intensities), each halved while the run still fails the same way, then
/// the op mix.
fn cut_traffic(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    type Cut = (&'static str, fn(&mut Candidate) -> bool);
    let cuts: [Cut; 2] = [
        ("start every fault window later, ending where it did", |c| {
            let mut changed = false;
            for f in &mut c.schedule.faults {
                if f.duration_ms >= 2 * MIN_FAULT_WINDOW_MS {
                    let shift = f.duration_ms / 2;
                    f.at_ms += shift;
                    f.duration_ms -= shift;
                    changed = true;
                }
            }
            changed
        }),
        ("halve every fault's intensity", |c| {
            let mut changed = false;
            for f in &mut c.schedule.faults {
                if let Some(m) = f.fault.milder() {
                    f.fault = m;
                    changed = true;
                }
            }
            changed
        }),
    ];
    let mut progressed = scan_cuts(search, best)?;
    progressed |= drop_hosts(search, best)?;
    for (what, cut) in cuts {
        loop {
            let mut next = best.0.clone();
            if !cut(&mut next) || !search.try_move(best, next, what)? {
                break;
            }
            progressed = true;
        }
    }
    Ok(drop_op_kinds(search, best)? || progressed)
}

/// The kinds of request the run's traffic clients sent, by name: what `skip_ops` can drop
/// (the compactor's, the lease clients', the liveness probe's and the final reads are not
/// theirs).
fn traffic_kinds(o: &Outcome) -> BTreeSet<String> {
    o.records
        .iter()
        .filter(|r| crate::workload::is_traffic_host(&r.host))
        .map(|r| r.kind.clone())
        .collect()
}

/// Drops the kinds of request the traffic clients send, one kind at a time (by name), while
/// the run still fails the same way.
fn drop_op_kinds(search: &mut Search, best: &mut (Candidate, Outcome)) -> anyhow::Result<bool> {
    let mut kinds: Vec<String> = traffic_kinds(&best.1).into_iter().collect();
    let mut progressed = false;
    loop {
        let sent = traffic_kinds(&best.1);
        kinds.retain(|k| !best.0.workload.workload.skip_ops.contains(k) && sent.contains(k));
        let candidates = kinds
            .iter()
            .map(|kind| {
                let mut next = best.0.clone();
                next.workload.workload.skip_ops.push(kind.clone());
                next.workload.workload.skip_ops.sort();
                (next, format!("no {kind} requests"))
            })
            .collect();
        match search.first_smaller(best, candidates)? {
            // The kinds before it did not help against the same best: go on after it.
            Some(i) => {
                kinds.drain(..=i);
                progressed = true;
            }
            None => return Ok(progressed),
        }
    }
}

/// `etcd-sim shrink` (progress on stderr).
#[allow(clippy::disallowed_methods)] // the search's wall-clock budget and its output files
pub fn shrink(args: &ShrinkArgs) -> anyhow::Result<Shrunk> {
    let (old, dir) = report::read_summary(&args.report).map_err(|e| Usage(format!("{e:#}")))?;
    if old.verdict == "pass" {
        bail!(Usage(format!(
            "{} passed: there is no failure to shrink",
            dir.display()
        )));
    }
    if old.real.is_some() {
        bail!(Usage(format!(
            "{} is a real-mode run: its timing is not a function of its seed, so it cannot be \
             shrunk (shrink a simulated run of the same scenario)",
            dir.display()
        )));
    }
    let Some(signature) = old.signatures.first().cloned() else {
        bail!(Usage(format!(
            "{} failed without a signature (a report older than signatures?): re-run it",
            dir.display()
        )));
    };
    let scenario = catalogue::find(&old.scenario)
        .ok_or_else(|| Usage(format!("unknown scenario {:?}", old.scenario)))?;
    let budget = crate::bugs::parse_budget(&args.budget)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = dir.as_os_str().to_owned();
        name.push("-shrunk");
        PathBuf::from(name)
    });
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let files = (out.join("schedule.json"), out.join("workload.json"));
    // The original run as a candidate: its schedule and its traffic as it ran.
    let original_opts = RunOptions {
        traffic: old.traffic.clone(),
        rate: old.rate,
        ..RunOptions::default()
    };
    let mut traffic = scenario.clone();
    if let Some(t) = &original_opts.traffic {
        traffic.workload = traffic
            .workload
            .with_traffic(t)
            .map_err(anyhow::Error::msg)?;
    }
    if let Some(r) = original_opts.rate {
        traffic.workload.rate = r.max(1);
    }
    let start = Candidate {
        schedule: old.fault_schedule.clone(),
        workload: WorkloadFile {
            duration_ms: scenario.duration.as_millis() as u64,
            workload: traffic.workload,
            members: None,
        },
    };
    let mut search = Search {
        scenario,
        seed: old.seed,
        defects: old.defects.clone(),
        signature: signature.clone(),
        files,
        started: Instant::now(),
        budget,
        tries: 1,
        accepted: 0,
        jobs: args.jobs.unwrap_or_else(crate::cli::threads).max(1),
        key: SearchKey {
            original_report: dir.display().to_string(),
            scenario: old.scenario.clone(),
            seed: old.seed,
            signature: signature.clone(),
        },
        progress_path: out.join("shrink-progress.json"),
        bar: crate::progress::spinner("shrink"),
        next_draw: 0,
    };
    eprintln!(
        "shrinking {} seed {} ({}), keeping: {signature}",
        old.scenario,
        old.seed,
        dir.display()
    );
    let Some(first) = search.still_fails(&start) else {
        bail!(
            "{} seed {} does not fail with {signature:?} when re-run from its schedule and \
             traffic (recorded with commit {}, now {}): nothing to shrink",
            old.scenario,
            old.seed,
            old.git_commit,
            report::GIT_COMMIT
        );
    };
    let original = size_of(&start, &first.summary, &search.scenario);
    let resumed = (!args.fresh)
        .then(|| Progress::load(&search.progress_path, &search.key))
        .flatten()
        .and_then(|p| {
            let c = Candidate {
                schedule: p.schedule.clone(),
                workload: p.workload.clone(),
            };
            search.tries += 1;
            let o = search.still_fails(&c);
            if o.is_none() {
                eprintln!(
                    "  {} no longer fails the same way: starting afresh",
                    search.progress_path.display()
                );
            }
            o.map(|o| (p, c, o))
        });
    let (start, first) = match resumed {
        Some((p, c, o)) => {
            eprintln!(
                "  resuming from {} ({} tries, {} accepted before)",
                search.progress_path.display(),
                p.tries,
                p.accepted
            );
            search.tries += p.tries;
            search.accepted = p.accepted;
            (c, o)
        }
        None => (start, first),
    };
    let mut best = (start, first);
    cut_until_stuck(&mut search, &mut best)?;
    for _ in 0..REDRAW_BRANCHES {
        if search.out_of_time() {
            break;
        }
        // None of the 16 draws fails alike: the next redraw offers the next 16.
        let Some(mut branch) = redraw_traffic(&mut search, &best)? else {
            continue;
        };
        cut_until_stuck(&mut search, &mut branch)?;
        if smaller_run(&branch, &best) {
            best = branch;
        }
    }
    search.bar.finish_and_clear();
    // What the search tried after its last step counts too, for a search resumed from here.
    search.save_progress(&best.0)?;
    let (best_candidate, best_outcome) = best;
    let shrunk = size_of(&best_candidate, &best_outcome.summary, &search.scenario);
    write_json(&search.files.0, &best_candidate.schedule)?;
    write_json(&search.files.1, &best_candidate.workload)?;
    let run_dir = report::write_dir(&out, &best_outcome)?;
    let result = ShrinkReport {
        original_report: dir.display().to_string(),
        signature,
        original,
        shrunk,
        tries: search.tries,
        accepted: search.accepted,
        seconds: search.started.elapsed().as_secs_f64(),
        budget_reached: search.out_of_time(),
        replay: best_outcome.summary.replay.clone(),
    };
    write_json(&out.join("shrink.json"), &result)?;
    let page = page(&result, &best_outcome.summary, &out, &run_dir, &dir);
    #[allow(clippy::disallowed_methods)] // output files, written after the runs
    std::fs::write(out.join("index.html"), page)
        .with_context(|| format!("write {}", out.join("index.html").display()))?;
    Ok(Shrunk {
        out,
        run_dir,
        report: result,
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(value)?;
    #[allow(clippy::disallowed_methods)] // output files, written after the runs
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// `to` relative to the directory `from` (both made absolute first), for links between report
/// directories.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from), abs(to));
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// `index.html` of a shrink: what it kept failing with, how much smaller the run got, the
/// remaining faults, a link to the original run's report, and the shrunk run's history view
/// (its first illegal operation marked) on the same screen.
fn page(r: &ShrinkReport, s: &Summary, out: &Path, run_dir: &Path, original: &Path) -> String {
    use crate::plot::escape;
    let link = |dir: &Path| format!("{}/history.html", relative(out, dir).display());
    let (a, b) = (&r.original, &r.shrunk);
    let row = |what: &str, x: String, y: String| {
        format!("<tr><td>{what}</td><td>{x}</td><td>{y}</td></tr>")
    };
    let rows = [
        row("faults", a.faults.to_string(), b.faults.to_string()),
        row(
            "operations",
            a.operations.to_string(),
            b.operations.to_string(),
        ),
        row("client hosts", a.clients.to_string(), b.clients.to_string()),
        row(
            "simulated seconds",
            format!("{:.1}", a.sim_seconds),
            format!("{:.1}", b.sim_seconds),
        ),
        row("members", a.members.to_string(), b.members.to_string()),
    ]
    .concat();
    let faults: String = s
        .faults
        .iter()
        .map(|f| {
            format!(
                "<li>{} ms – {} ms: {}</li>",
                f.start_ms,
                f.end_ms,
                escape(&f.what)
            )
        })
        .collect();
    let failures: String = s
        .failures
        .iter()
        .map(|f| format!("<li>{}</li>", escape(f)))
        .collect();
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>shrunk: {scenario} seed {seed}</title>
<style>body{{font:13px/1.4 system-ui,sans-serif;margin:16px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}iframe{{width:100%;height:80vh;border:1px solid #ccc}}.bad{{color:#c62828}}</style></head><body>
<h1>shrunk: {scenario} seed {seed}</h1>
<p class="bad">still fails with: <b>{signature}</b></p>
<p><a href="{original}">the original run</a> ({original_dir}) · <a href="{shrunk}">the shrunk run</a> · replay: <code>{replay}</code></p>
<table><tr><th></th><th>original</th><th>shrunk</th></tr>{rows}</table>
<p>{tries} tries, {accepted} accepted, {seconds:.1} s{budget}</p>
<h2>Faults left</h2><ul>{faults}</ul>
<h2>Failures</h2><ul>{failures}</ul>
<iframe src="{shrunk}" title="the shrunk run's history"></iframe>
</body></html>
"#,
        scenario = escape(&s.scenario),
        seed = s.seed,
        signature = escape(&r.signature),
        original = escape(&link(original)),
        original_dir = escape(&r.original_report),
        shrunk = escape(&link(run_dir)),
        replay = escape(&r.replay),
        tries = r.tries,
        accepted = r.accepted,
        seconds = r.seconds,
        budget = if r.budget_reached {
            ", budget reached"
        } else {
            ""
        },
        faults = if faults.is_empty() {
            "<li>none</li>".to_string()
        } else {
            faults
        },
    )
}

/// Prints what a shrink did.
pub fn print(s: &Shrunk) {
    let (r, run_dir) = (&s.report, &s.run_dir);
    let (a, b) = (&r.original, &r.shrunk);
    println!(
        "shrunk in {} tries ({} accepted), {:.1} s{}:",
        r.tries,
        r.accepted,
        r.seconds,
        if r.budget_reached {
            ", budget reached"
        } else {
            ""
        }
    );
    println!("  faults      {:>6} -> {}", a.faults, b.faults);
    println!("  operations  {:>6} -> {}", a.operations, b.operations);
    println!("  clients     {:>6} -> {}", a.clients, b.clients);
    println!("  members     {:>6} -> {}", a.members, b.members);
    println!(
        "  sim seconds {:>6.1} -> {:.1}",
        a.sim_seconds, b.sim_seconds
    );
    println!("  still fails with: {}", r.signature);
    println!("  files: {}", s.out.display());
    println!("  report: {}", run_dir.display());
    println!("  view:   {}", s.out.join("index.html").display());
    println!("  replay: {}", r.replay);
}
