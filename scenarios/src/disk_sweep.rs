//! `disk-latency-sweep`: one cluster under etcd traffic while the fsync p99 steps through 1, 2,
//! 5, 10, 25, 50, 100, 250, 500, 1000, 2000 ms, in two passes: first every member's disk (one
//! disk class for the cluster), then only the leader's; per step the leader changes per
//! simulated minute, the measured WAL fsync and backend commit p99 (the backend's syncs pay the
//! same latency) and the write p99, as a table and an SVG plot
//! marking etcd's guidance (WAL fsync p99 < 10 ms; 2 ms for heavily loaded clusters). Each
//! step's fsync latency is log-normal with that p99 and p50 = p99 / 2.
//!
//! Owns: the step timeline, the per-step measurements, the plot and the sweep's expectation
//! (no leader change at or below 10 ms). Must never:
//! measure with anything but simulated time and the members' own metrics.

use crate::catalogue::Scenario;
use crate::driver::{backend_commit_histogram, fsync_histogram, quantile_ms, simulation, Driver};
use crate::history::Recorder;
use crate::report::Outcome;
use crate::report::SweepRow;
use crate::stats::summarize;
use crate::timeline::timeline_for_sweep;
use sim::{Fault, LatencyModel};
use std::fmt::Write as _;
use std::time::Duration;

/// Whose disk a pass slows down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Every member's (one disk class for the cluster). Followers block in their own
    /// fdatasync too, so their election timers stall with the leader's heartbeats.
    AllMembers,
    /// The leader's at the step's start only (etcd's slow-disk leader loss).
    Leader,
}

/// The members' (WAL fsync, backend commit) histograms at one instant.
type Histograms = (Vec<u64>, Vec<u64>);

/// One step: (pass, fsync p99 ms, start, end, histograms before, after).
type Window = (Target, u64, Duration, Duration, Histograms, Histograms);

/// The fsync p99 steps, ms.
pub const STEPS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000];
/// Healthy, unmeasured time before each pass.
pub const SETTLE: Duration = Duration::from_secs(5);
/// Simulated time per step.
pub const STEP: Duration = Duration::from_secs(8);

/// The members' histograms now (the sweep only runs simulated).
fn histograms(d: &mut Driver) -> Histograms {
    match d.c.as_sim() {
        Some(s) => (fsync_histogram(s), backend_commit_histogram(s)),
        None => Default::default(),
    }
}

/// Runs the sweep.
pub fn run(sc: &Scenario, seed: u64) -> anyhow::Result<Outcome> {
    let mut d = Driver::new(Box::new(simulation(sc, seed)?));
    let rec = Recorder::default();
    let mut windows: Vec<Window> = Vec::new();
    let collected = timeline_for_sweep(&mut d, sc, &rec, |d| {
        for target in [Target::AllMembers, Target::Leader] {
            // Settle on healthy disks (unmeasured), so no slow fdatasync of the previous pass
            // is still in flight when the first step starts.
            for m in d.c.member_names() {
                d.c.apply(Fault::DiskLatency {
                    node: m,
                    model: LatencyModel::healthy(),
                })?;
            }
            let settle = d.c.elapsed() + SETTLE;
            d.run_to(settle)?;
            for p99 in STEPS_MS {
                let model = LatencyModel::LogNormal {
                    p50: Duration::from_micros(p99 * 1000 / 2),
                    p99: Duration::from_millis(p99),
                };
                let leader = d.c.leader();
                for m in d.c.member_names() {
                    let slow = target == Target::AllMembers || Some(&m) == leader.as_ref();
                    let model = if slow { model } else { LatencyModel::healthy() };
                    d.c.apply(Fault::DiskLatency { node: m, model })?;
                }
                let start = d.c.elapsed();
                let before = histograms(d);
                d.run_to(start + STEP)?;
                let after = histograms(d);
                windows.push((target, p99, start, d.c.elapsed(), before, after));
            }
        }
        for m in d.c.member_names() {
            d.c.apply(Fault::DiskLatency {
                node: m,
                model: LatencyModel::healthy(),
            })?;
        }
        Ok(())
    })?;
    let mut rows = Vec::new();
    let delta = |after: &[u64], before: &[u64]| -> Vec<u64> {
        after
            .iter()
            .zip(before.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect()
    };
    for (target, p99, from, to, before, after) in &windows {
        let wal = delta(&after.0, &before.0);
        let backend = delta(&after.1, &before.1);
        let (lo, hi) = (from.as_micros() as u64, to.as_micros() as u64);
        let in_step: Vec<_> = collected
            .records
            .iter()
            .filter(|r| r.is_write() && r.call_us >= lo && r.call_us < hi)
            .collect();
        let mut lat: Vec<Duration> = in_step.iter().filter_map(|r| r.latency()).collect();
        let changes = d.leader_changes_between(*from, *to);
        rows.push(SweepRow {
            slow: match target {
                Target::AllMembers => "all members".into(),
                Target::Leader => "leader".into(),
            },
            fsync_p99_ms: *p99,
            measured_wal_fsync_p99_ms: quantile_ms(&wal, 0.99),
            measured_backend_commit_p99_ms: quantile_ms(&backend, 0.99),
            leader_changes: changes,
            leader_changes_per_min: changes as f64 * 60.0 / (*to - *from).as_secs_f64(),
            writes_ok: lat.len(),
            writes_unknown: in_step.len() - lat.len(),
            write_p99_ms: summarize(&mut lat).p99_ms,
        });
    }
    let (mut summary, html, history_json) = crate::checks::assemble(
        sc,
        seed,
        &mut d,
        &collected,
        &Default::default(),
        "sweep steps",
    );
    let svg = crate::plot::sweep(&rows);
    summary.sweep = Some(rows);
    Ok(Outcome {
        summary,
        records: collected.records,
        watches: collected.watches,
        trace: d.c.log_jsonl(),
        html,
        history_json,
        schedule: Default::default(),
        svg: Some(svg),
    })
}

/// The sweep's expectation: no leader change at or below etcd's 10 ms guidance. Leader changes
/// at the slow steps are measured, not required: with the leader's p99 at 2000 ms (p50
/// 1000 ms) an 8 s step loses the leader in about two seeds out of three (the
/// `slow-fsync-leader` scenario requires the loss, with a longer and slower window).
pub fn judge(rows: &[SweepRow]) -> Vec<String> {
    let mut f = Vec::new();
    for r in rows.iter().filter(|r| r.fsync_p99_ms <= 10) {
        if r.leader_changes > 0 {
            f.push(format!(
                "sweep: {} leader changes at fsync p99 {} ms (within etcd's guidance)",
                r.leader_changes, r.fsync_p99_ms
            ));
        }
    }
    f
}

/// The sweep table as text.
pub fn table(rows: &[SweepRow]) -> String {
    let mut s = format!(
        "{:>12} {:>12} {:>16} {:>18} {:>11} {:>15} {:>10} {:>8}\n",
        "slow disk",
        "fsync p99",
        "WAL fsync p99 ms",
        "backend commit p99",
        "leader chg",
        "leader chg/min",
        "write p99",
        "writes"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>12} {:>9} ms {:>16} {:>18} {:>11} {:>15.1} {:>7.1} ms {:>8}{}",
            r.slow,
            r.fsync_p99_ms,
            r.measured_wal_fsync_p99_ms
                .map_or_else(|| "-".into(), |m| format!("{m:.1}")),
            r.measured_backend_commit_p99_ms
                .map_or_else(|| "-".into(), |m| format!("{m:.1}")),
            r.leader_changes,
            r.leader_changes_per_min,
            r.write_p99_ms,
            r.writes_ok,
            match r.fsync_p99_ms {
                2 => "   <- etcd guidance, heavy load (2 ms)",
                10 => "   <- etcd guidance (10 ms)",
                _ => "",
            }
        );
    }
    s
}
