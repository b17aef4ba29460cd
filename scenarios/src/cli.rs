//! The scenario subcommands of `etcd-sim`: `list`, `run`, `replay`, `sweep`.
//!
//! Owns: argument validation (unknown scenario, malformed seed range, bad fault-schedule file →
//! one clear message and exit code 2), running seeds on worker threads, the printed tables,
//! progress and replay commands, and exit codes (0 pass, 1 fail, 2 usage). Must never: exit 0
//! when a run failed.

use crate::catalogue::{self, Scenario};
use crate::nemesis::FaultSchedule;
use crate::real::RealOptions;
use crate::report::{self, Summary};
use crate::runner::{self, RunOptions};
use anyhow::{bail, Context};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Seeds `etcd-sim run` uses when none is given.
pub const DEFAULT_SEEDS: [u64; 2] = [1, 2];

/// A usage error (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Parses `A..B` (B exclusive), `A..=B` or a single seed.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, Usage> {
    let bad = || {
        Usage(format!(
            "malformed seed range {s:?}: use A..B (B exclusive), A..=B or N"
        ))
    };
    if let Some((a, b)) = s.split_once("..=") {
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        return Ok((a..=b).collect());
    }
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a >= b {
            return Err(bad());
        }
        return Ok((a..b).collect());
    }
    s.parse().map(|n| vec![n]).map_err(|_| bad())
}

/// Resolves scenario names (`None` + `all`: the catalogue).
pub fn select(name: Option<&str>, all: bool) -> Result<Vec<Scenario>, Usage> {
    match (name, all) {
        (Some(_), true) => Err(Usage("give a scenario name or --all, not both".into())),
        (None, _) => Ok(catalogue::catalogue()),
        (Some(n), false) => catalogue::find(n).map(|s| vec![s]).ok_or_else(|| {
            Usage(format!(
                "unknown scenario {n:?}; valid: {}",
                catalogue::names().join(", ")
            ))
        }),
    }
}

/// What `etcd-sim run` and `sweep` change about a scenario (`--traffic`, `--rate`,
/// `--defect`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// An etcd robustness traffic profile instead of the scenario's (see `etcd-sim list`).
    #[arg(long)]
    pub traffic: Option<String>,
    /// Requests per simulated second instead of the scenario's or the profile's.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Switch a known-bug defect on in every member (a name from `etcd-sim bugs`; the run is
    /// expected to fail). Repeatable.
    #[arg(long = "defect")]
    pub defects: Vec<String>,
    /// A workload file (`workload.json`, as `etcd-sim shrink` writes it): the traffic and its
    /// duration instead of the scenario's.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<std::path::PathBuf>,
    /// Real mode instead of the simulation.
    #[command(flatten)]
    pub world: RealArgs,
}

/// `--real [--etcd-bin PATH]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RealArgs {
    /// Real mode: run on member processes on loopback (faults by kill -9, SIGSTOP/SIGCONT,
    /// restart, and proxies in front of every port) instead of the simulation.
    #[arg(long)]
    pub real: bool,
    /// Real mode's member binary: our etcd-server (the default, next to etcd-sim) or a real
    /// etcd.
    #[arg(long, requires = "real", value_name = "PATH")]
    pub etcd_bin: Option<std::path::PathBuf>,
}

impl RealArgs {
    /// Real mode's options, if asked for.
    pub fn options(&self) -> anyhow::Result<Option<RealOptions>> {
        Ok(match (self.real, &self.etcd_bin) {
            (false, _) => None,
            (true, Some(bin)) => Some(RealOptions { bin: bin.clone() }),
            (true, None) => Some(RealOptions {
                bin: default_member_binary()?,
            }),
        })
    }
}

impl Overrides {
    /// Run options with these overrides, refusing an unknown profile or defect, or a zero rate.
    fn options(self) -> anyhow::Result<RunOptions> {
        for d in &self.defects {
            etcd_server::defects::parse(d).map_err(Usage)?;
        }
        if let Some(t) = &self.traffic {
            crate::workload::WorkloadConfig::default()
                .with_traffic(t)
                .map_err(Usage)?;
        }
        if self.rate == Some(0) {
            bail!(Usage("--rate must be at least 1 request per second".into()));
        }
        let real = self.world.options()?;
        let workload = match &self.workload {
            Some(path) => Some((
                crate::workload::WorkloadFile::load(path).map_err(|e| Usage(format!("{e:#}")))?,
                path.display().to_string(),
            )),
            None => None,
        };
        Ok(RunOptions {
            workload,
            traffic: self.traffic,
            rate: self.rate,
            defects: self.defects,
            real,
            ..RunOptions::default()
        })
    }
}

/// Our `etcd-server` next to this `etcd-sim` (cargo builds both into one directory).
fn default_member_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locate etcd-sim")?;
    let bin = exe.with_file_name("etcd-server");
    if !bin.exists() {
        bail!(Usage(format!(
            "--real needs a member binary: {} does not exist (build it with \
             `cargo build --release -p etcd-server`) or pass --etcd-bin PATH",
            bin.display()
        )));
    }
    Ok(bin)
}

/// `etcd-sim list`.
pub fn list() {
    for s in catalogue::catalogue() {
        println!("{:<24} {}", s.name, s.about);
    }
    for n in catalogue::must_fail() {
        println!("{:<24} {}", n.name, n.about);
    }
    println!();
    println!("traffic profiles (etcd-sim run SCENARIO --traffic NAME [--rate N]):");
    for (name, about) in crate::workload::TRAFFIC_PROFILES {
        println!("{name:<24} {about}");
    }
}

/// One finished run.
pub struct Done {
    /// The summary.
    pub summary: Summary,
    /// Its report directory.
    pub dir: PathBuf,
}

/// Runs every (scenario, seed) pair on `jobs` threads, writing reports under `root`; calls
/// `progress` after each. Errors of the harness itself (not of the server) abort.
pub fn run_many(
    jobs: Vec<(Scenario, u64)>,
    root: &Path,
    opts: &RunOptions,
    threads: usize,
    progress: &(dyn Fn(&Done, usize, usize) + Sync),
) -> anyhow::Result<Vec<Done>> {
    let finished = AtomicUsize::new(0);
    let total = jobs.len();
    // Real clusters share this machine's cores: one at a time.
    let threads = if opts.real.is_some() { 1 } else { threads };
    let run_one = |(sc, seed): &(Scenario, u64)| {
        let (o, dir) = runner::run(sc, *seed, opts)
            .and_then(|o| report::write_dir(root, &o).map(|dir| (o, dir)))
            .with_context(|| format!("{} seed {seed}", sc.name))?;
        let d = Done {
            summary: o.summary,
            dir,
        };
        progress(&d, finished.fetch_add(1, Ordering::Relaxed) + 1, total);
        Ok(d)
    };
    crate::parallel::map_ordered(&jobs, threads, run_one, |r| r.is_err())
        .into_iter()
        .flatten()
        .collect()
}

/// Worker threads by default: one per CPU.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Prints the failures and replay commands of failed runs; returns how many failed.
fn print_failures(done: &[Done]) -> usize {
    let failed: Vec<&Done> = done
        .iter()
        .filter(|d| d.summary.verdict != "pass")
        .collect();
    for d in &failed {
        println!();
        println!("FAIL {} seed {}:", d.summary.scenario, d.summary.seed);
        for f in &d.summary.failures {
            println!("  - {f}");
        }
        println!("  report: {}", d.dir.display());
        println!("  replay: {}", d.summary.replay);
    }
    failed.len()
}

/// `etcd-sim run`.
pub fn run(
    name: Option<&str>,
    all: bool,
    seeds: Option<Vec<u64>>,
    root: &Path,
    faults: Option<&Path>,
    traffic: Overrides,
) -> anyhow::Result<bool> {
    let scenarios = select(name, all)?;
    let seeds = seeds.unwrap_or_else(|| DEFAULT_SEEDS.to_vec());
    let mut opts = traffic.options()?;
    if let Some(path) = faults {
        let members = opts
            .workload
            .as_ref()
            .and_then(|(w, _)| w.members)
            .or_else(|| scenarios.first().map(|s| s.members))
            .unwrap_or(3);
        let s = FaultSchedule::load(path, members).map_err(|e| Usage(format!("{e:#}")))?;
        opts.schedule = Some(s);
        opts.schedule_source = Some(format!("file {}", path.display()));
    }
    let jobs: Vec<(Scenario, u64)> = scenarios
        .iter()
        .flat_map(|s| seeds.iter().map(move |seed| (s.clone(), *seed)))
        .collect();
    println!(
        "running {} scenario(s) × {} seed(s) {} ...",
        scenarios.len(),
        seeds.len(),
        match &opts.real {
            None => "in simulation".to_string(),
            Some(r) => format!("in real mode on {}", r.bin.display()),
        }
    );
    println!("{}", report::table_header());
    let progress = |d: &Done, _: usize, _: usize| {
        println!("{}", report::table_row(&d.summary));
        let _ = std::io::stdout().flush();
    };
    let done = run_many(jobs, root, &opts, threads(), &progress)?;
    for d in &done {
        if let Some(rows) = &d.summary.sweep {
            println!();
            println!(
                "disk-latency-sweep seed {} (plot: {}):",
                d.summary.seed,
                d.dir.join("sweep.svg").display()
            );
            print!("{}", crate::disk_sweep::table(rows));
        }
        if !d.summary.versions.is_empty() {
            println!();
            println!("{} seed {} versions:", d.summary.scenario, d.summary.seed);
            for v in &d.summary.versions {
                println!("  {:>6} ms  cluster {:<8} {}", v.at_ms, v.cluster, v.step);
                for m in &v.members {
                    println!("             {m}");
                }
            }
        }
        if let Some(t) = &d.summary.healthy_twin {
            println!(
                "{} seed {}: WAL fsync p99 {:.0} ms, {} leader change(s); healthy twin: {} leader change(s)",
                d.summary.scenario,
                d.summary.seed,
                d.summary.wal_fsync_p99_ms.unwrap_or(0.0),
                d.summary.leader_changes,
                t.leader_changes
            );
        }
    }
    let failed = print_failures(&done);
    println!();
    println!(
        "{} run(s): {} passed, {} failed; reports in {}",
        done.len(),
        done.len() - failed,
        failed,
        root.display()
    );
    Ok(failed == 0)
}

/// `etcd-sim replay DIR|summary.json`: re-runs and compares the trace hash.
pub fn replay(path: &Path, root: &Path) -> anyhow::Result<bool> {
    let (old, dir) = report::read_summary(path).map_err(|e| Usage(format!("{e:#}")))?;
    let sc = catalogue::find(&old.scenario).ok_or_else(|| {
        Usage(format!(
            "{}: unknown scenario {:?}",
            path.display(),
            old.scenario
        ))
    })?;
    let mut opts = RunOptions {
        traffic: old.traffic.clone(),
        rate: old.rate,
        defects: old.defects.clone(),
        real: old.real.as_ref().map(|r| RealOptions {
            bin: r.bin.clone().into(),
        }),
        ..Default::default()
    };
    if old.fault_schedule_source.starts_with("file") {
        opts.schedule = Some(old.fault_schedule.clone());
        opts.schedule_source = Some(old.fault_schedule_source.clone());
    }
    if old.git_commit != report::GIT_COMMIT {
        println!(
            "note: recorded with commit {}, replaying with {}: the trace may differ",
            old.git_commit,
            report::GIT_COMMIT
        );
    }
    let o = runner::run(&sc, old.seed, &opts)?;
    let new_dir = report::write_dir(root, &o)?;
    println!("{}", report::table_header());
    println!("{}", report::table_row(&o.summary));
    let same = o.summary.trace_hash == old.trace_hash;
    println!(
        "trace_hash {} ({}) vs recorded {} ({}): {}",
        o.summary.trace_hash,
        new_dir.display(),
        old.trace_hash,
        dir.display(),
        if same { "identical" } else { "DIFFERENT" }
    );
    println!(
        "verdict {} (recorded {})",
        o.summary.verdict.to_uppercase(),
        old.verdict.to_uppercase()
    );
    Ok(same && o.summary.verdict == old.verdict)
}

/// `etcd-sim sweep`: many seeds, a progress line, a per-scenario speed table.
pub fn sweep(
    name: Option<&str>,
    all: bool,
    seeds: Vec<u64>,
    root: &Path,
    jobs_n: Option<usize>,
    traffic: Overrides,
) -> anyhow::Result<bool> {
    if name.is_none() && !all {
        bail!(Usage("give a scenario name or --all".into()));
    }
    let scenarios = select(name, all)?;
    let opts = traffic.options()?;
    let jobs: Vec<(Scenario, u64)> = scenarios
        .iter()
        .flat_map(|s| seeds.iter().map(move |seed| (s.clone(), *seed)))
        .collect();
    #[allow(clippy::disallowed_methods)] // wall time of the sweep itself
    let wall = std::time::Instant::now();
    let bar = crate::progress::bar(jobs.len() as u64, "sweep");
    let failed = AtomicUsize::new(0);
    let progress = |d: &Done, _: usize, _: usize| {
        if d.summary.verdict != "pass" {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        bar.set_message(format!(
            "{} failed; last {} seed {} {}",
            failed.load(Ordering::Relaxed),
            d.summary.scenario,
            d.summary.seed,
            d.summary.verdict
        ));
        bar.inc(1);
    };
    let done = run_many(jobs, root, &opts, jobs_n.unwrap_or_else(threads), &progress)?;
    bar.finish_and_clear();
    let total_wall = wall.elapsed().as_secs_f64();
    println!(
        "{:<20} {:>6} {:>6} {:>10} {:>12} {:>12} {:>14}",
        "scenario", "seeds", "failed", "wall-s", "seeds/min", "sim-s/seed", "sim-s/wall-s"
    );
    for sc in &scenarios {
        let mine: Vec<&Done> = done
            .iter()
            .filter(|d| d.summary.scenario == sc.name)
            .collect();
        let wall_s: f64 = mine.iter().map(|d| d.summary.wall_seconds).sum();
        let sim_s: f64 = mine.iter().map(|d| d.summary.sim_seconds).sum();
        let failed = mine.iter().filter(|d| d.summary.verdict != "pass").count();
        println!(
            "{:<20} {:>6} {:>6} {:>10.1} {:>12.2} {:>12.1} {:>14.2}",
            sc.name,
            mine.len(),
            failed,
            wall_s,
            mine.len() as f64 * 60.0 / wall_s.max(1e-9),
            sim_s / mine.len().max(1) as f64,
            sim_s / wall_s.max(1e-9)
        );
    }
    print_fault_coverage(&done);
    let failed = print_failures(&done);
    print_signatures(&done);
    println!();
    println!(
        "{} run(s) in {:.1} s wall ({:.2} seeds/min overall with {} thread(s)): {} passed, {} failed; reports in {}",
        done.len(),
        total_wall,
        done.len() as f64 * 60.0 / total_wall.max(1e-9),
        jobs_n.unwrap_or_else(threads),
        done.len() - failed,
        failed,
        root.display()
    );
    Ok(failed == 0)
}

/// Failures grouped by signature, each with the seed that failed fastest (the one to debug).
fn print_signatures(done: &[Done]) {
    let groups = crate::signature::group(done.iter().filter(|d| d.summary.verdict != "pass").map(
        |d| {
            let s = &d.summary;
            (
                s.scenario.as_str(),
                s.seed,
                s.wall_seconds,
                s.replay.as_str(),
                s.signatures.as_slice(),
            )
        },
    ));
    if groups.is_empty() {
        return;
    }
    println!();
    println!("failures by signature (runs, then the run that failed fastest):");
    for g in &groups {
        let (scenario, seed, wall, replay) = &g.fastest;
        println!("  {:>4} × {}", g.runs, g.signature);
        println!("         fastest: {scenario} seed {seed} ({wall:.1} s wall): {replay}");
    }
}

/// How often each fault kind was applied across the runs (the mix a sweep covered).
fn print_fault_coverage(done: &[Done]) {
    let kinds = report::fault_coverage(
        done.iter()
            .map(|d| d.summary.faults.iter().map(|f| f.kind.as_str())),
    );
    if kinds.is_empty() {
        return;
    }
    println!();
    println!("fault kinds applied (times, in how many runs):");
    let all: Vec<String> = kinds
        .iter()
        .map(|(k, c)| format!("{k} {} ({})", c.times, c.runs))
        .collect();
    println!("  {}", all.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("0..3").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_seeds("2..=3").unwrap(), vec![2, 3]);
        assert_eq!(parse_seeds("7").unwrap(), vec![7]);
        for bad in ["3..3", "5..2", "a..b", "1..", "", "-1"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection() {
        assert_eq!(
            select(None, true).unwrap().len(),
            catalogue::catalogue().len()
        );
        assert!(select(Some("baseline"), true).is_err());
        let e = select(Some("nope"), false).unwrap_err();
        assert!(e.0.contains("crash-all"), "{e}");
    }
}
