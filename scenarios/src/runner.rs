//! Running one scenario on one seed: build the cluster (simulated, or member processes with
//! `--real`), run the timeline (`crate::timeline`), check, and judge.
//!
//! Owns: [`RunOptions`] (overrides of the scenario and how to replay them), the healthy twin,
//! and assembling the [`Outcome`]. Must never: use the wall clock for anything but
//! `wall_seconds`.

use crate::catalogue::{Kind, Scenario};
use crate::checks;
use crate::cluster::Cluster;
use crate::driver::{simulation, Driver};
use crate::history::Recorder;
use crate::nemesis::FaultSchedule;
use crate::real::RealOptions;
use crate::report::{self, Outcome};
use crate::timeline::timeline;
use crate::workload::WorkloadFile;

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
    /// Run on member processes on loopback instead of the simulation (`--real`).
    pub real: Option<RealOptions>,
    /// This traffic and duration instead of the scenario's, with the file it came from
    /// (`--workload FILE`; applied after `traffic` and `rate`).
    pub workload: Option<(WorkloadFile, String)>,
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
        if let Some((_, path)) = &self.workload {
            out.push_str(&format!(" --workload {path}"));
        }
        if let Some(real) = &self.real {
            out.push_str(&real.replay_args());
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
    if let Some((file, _)) = &opts.workload {
        sc.workload = file.workload.clone();
        sc.duration = std::time::Duration::from_millis(file.duration_ms.max(1));
        if let Some(m) = file.members {
            sc.members = m.max(1);
        }
    }
    Ok(sc)
}

/// Runs `sc` on `seed`.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> anyhow::Result<Outcome> {
    #[allow(clippy::disallowed_methods)] // wall time is reported, never simulated
    let wall = std::time::Instant::now();
    let sc = &with_overrides(sc, opts)?;
    let mut out = match (sc.kind, &opts.real) {
        (Kind::Standard, _) => run_standard(sc, seed, opts)?,
        (Kind::DiskSweep, None) => crate::disk_sweep::run(sc, seed)?,
        (Kind::DiskSweep, Some(_)) => anyhow::bail!(
            "{} sweeps the simulated disk's fsync latency: it has no real mode",
            sc.name
        ),
    };
    let twin = sc.expect.healthy_twin_stable && !opts.skip_twin && opts.schedule.is_none();
    if twin && opts.real.is_none() {
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

fn run_standard(sc: &Scenario, seed: u64, opts: &RunOptions) -> anyhow::Result<Outcome> {
    let cluster: Box<dyn Cluster> = match &opts.real {
        None => Box::new(simulation(sc, seed)?),
        Some(real) => crate::real::RealCluster::start(sc, seed, real)?,
    };
    // Drawing the schedule and resolving its selectors (which follower, ...) are separate
    // streams: a schedule given as a file resolves as it did when drawn from the seed.
    let schedule = match &opts.schedule {
        Some(s) => s.clone(),
        None => (sc.faults)(&mut cluster.rng("faults")),
    };
    let selectors = cluster.rng("faults/selectors");
    let mut d = Driver::new(cluster);
    let rec = Recorder::default();
    let collected = timeline(&mut d, sc, &schedule, &rec, selectors)?;
    let source = opts
        .schedule_source
        .clone()
        .unwrap_or_else(|| "seed".into());
    let (summary, html, history_json) =
        checks::assemble(sc, seed, &mut d, &collected, &schedule, &source);
    Ok(Outcome {
        summary,
        records: collected.records,
        watches: collected.watches,
        trace: d.c.log_jsonl(),
        html,
        history_json,
        schedule,
        svg: None,
    })
}
