//! The harness's hold on a running cluster: the [`Driver`] (the cluster plus what the harness
//! observes at every step: the terms in which some member led, and the world changes operator
//! hosts ask for), what a timeline [`Collected`] for the checks, and the simulation's
//! histogram readers (WAL fsync, backend commit).
//!
//! Owns: stepping the world and observing leaders after each step. Must never: move the world
//! except through [`Cluster::step`], or judge what it observes (that is `checks`).

use crate::catalogue::Scenario;
use crate::cluster::Cluster;
use crate::history::{LeaseLog, OperatorEvent, Record, WatchLog};
use crate::nemesis::AppliedFault;
use crate::operator::{WorldChange, WorldChanges};
use crate::report::{Liveness, VersionStep};
use anyhow::Context;
use etcd_server::etcdserver::FSYNC_BUCKETS;
use sim::{SimConfig, Simulation};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The cluster plus what the harness observes after every step.
pub struct Driver {
    /// The world.
    pub c: Box<dyn Cluster>,
    /// Terms in which some member led, with when and who first.
    pub terms: BTreeMap<u64, (Duration, String)>,
    /// World changes operator hosts asked for, applied after each step.
    pub changes: WorldChanges,
}

impl Driver {
    /// Wraps a cluster.
    pub fn new(c: Box<dyn Cluster>) -> Self {
        Driver {
            c,
            terms: BTreeMap::new(),
            changes: WorldChanges::default(),
        }
    }

    fn apply_changes(&mut self) -> anyhow::Result<()> {
        for c in self.changes.drain() {
            match c {
                WorldChange::Start { name, flags } => self
                    .c
                    .add_member(&name, &flags)
                    .with_context(|| format!("start new member {name}"))?,
                WorldChange::Retire(name) => self
                    .c
                    .retire_member(&name)
                    .with_context(|| format!("retire member {name}"))?,
            }
        }
        Ok(())
    }

    fn observe(&mut self) {
        if let Some(l) = self.c.leader() {
            if let Some(term) = self.c.term(&l) {
                let now = self.c.elapsed();
                self.terms.entry(term).or_insert((now, l));
            }
        }
    }

    /// One step.
    pub fn step(&mut self) -> anyhow::Result<()> {
        self.c
            .step()
            .with_context(|| format!("{} step", self.c.world()))?;
        self.observe();
        self.apply_changes()
    }

    /// Runs until simulated time `t`.
    pub fn run_to(&mut self, t: Duration) -> anyhow::Result<()> {
        while self.c.elapsed() < t {
            self.step()?;
        }
        Ok(())
    }

    /// Runs until `cond` or `timeout`; how long it took, `None` on timeout.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut cond: impl FnMut(&mut dyn Cluster) -> bool,
    ) -> anyhow::Result<Option<Duration>> {
        let start = self.c.elapsed();
        loop {
            if cond(&mut *self.c) {
                return Ok(Some(self.c.elapsed() - start));
            }
            if self.c.elapsed() - start >= timeout {
                return Ok(None);
            }
            self.step()?;
        }
    }

    /// Leader changes after the first election (distinct leader terms − 1).
    pub fn leader_changes(&self) -> u64 {
        (self.terms.len() as u64).saturating_sub(1)
    }

    /// When each leader change after the first election happened (a new term first led).
    pub fn leader_change_times(&self) -> Vec<Duration> {
        let first = self.terms.values().map(|(t, _)| *t).min();
        self.terms
            .values()
            .map(|(t, _)| *t)
            .filter(|t| Some(*t) != first)
            .collect()
    }

    /// Leader changes whose term first led in `[from, to)`.
    pub fn leader_changes_between(&self, from: Duration, to: Duration) -> u64 {
        self.leader_change_times()
            .into_iter()
            .filter(|t| *t >= from && *t < to)
            .count() as u64
    }
}

/// WAL fsync histogram of every running member, summed: (counts per bucket, last = +Inf).
pub fn fsync_histogram(s: &Simulation) -> Vec<u64> {
    sum_histograms(&members_histograms(s, |m| m.wal_fsync().0))
}

/// The backend commit histogram bucket counts summed over the members that are up.
pub fn backend_commit_histogram(s: &Simulation) -> Vec<u64> {
    sum_histograms(&members_histograms(s, |m| m.backend_commit().0))
}

/// Every running member's WAL fsync histogram (counts per bucket of [`FSYNC_BUCKETS`], last =
/// +Inf).
pub fn member_fsync_histograms(s: &Simulation) -> Vec<Vec<u64>> {
    members_histograms(s, |m| m.wal_fsync().0)
}

/// One histogram (bucket counts) per running member.
fn members_histograms(
    s: &Simulation,
    counts: impl Fn(&etcd_server::etcdserver::ServerMetrics) -> Vec<u64>,
) -> Vec<Vec<u64>> {
    s.member_names()
        .iter()
        .filter_map(|m| s.server(m))
        .map(|srv| counts(srv.metrics()))
        .collect()
}

/// Bucket-wise sum of histograms over [`FSYNC_BUCKETS`] (last = +Inf).
fn sum_histograms(histograms: &[Vec<u64>]) -> Vec<u64> {
    let mut sum = vec![0u64; FSYNC_BUCKETS.len() + 1];
    for h in histograms {
        for (x, c) in sum.iter_mut().zip(h) {
            *x += c;
        }
    }
    sum
}

/// Prometheus' `histogram_quantile` over the WAL fsync buckets, in ms.
pub fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut cum = 0u64;
    for (i, c) in counts.iter().enumerate() {
        let before = cum;
        cum += c;
        if cum as f64 >= rank && *c > 0 {
            let Some(&hi) = FSYNC_BUCKETS.get(i) else {
                return FSYNC_BUCKETS.last().map(|b| b * 1000.0);
            };
            let lo = if i == 0 { 0.0 } else { FSYNC_BUCKETS[i - 1] };
            let frac = (rank - before as f64) / *c as f64;
            return Some((lo + (hi - lo) * frac) * 1000.0);
        }
    }
    FSYNC_BUCKETS.last().map(|b| b * 1000.0)
}

/// A WAL fsync slower than this (s) counts as slow: a bucket bound of etcd's histogram, so
/// real etcd's `/metrics` answers it exactly, and half of etcd's 1 s "slow fdatasync" warning.
pub const SLOW_WAL_FSYNC_S: f64 = 0.512;

/// How many fsyncs of a histogram took longer than [`SLOW_WAL_FSYNC_S`].
pub fn slow_fsyncs(counts: &[u64]) -> u64 {
    let first_slow = FSYNC_BUCKETS
        .iter()
        .position(|b| *b > SLOW_WAL_FSYNC_S)
        .unwrap_or(FSYNC_BUCKETS.len());
    counts.iter().skip(first_slow).sum()
}

/// Everything the timeline collected, for the checks.
pub struct Collected {
    /// Requests.
    pub records: Vec<Record>,
    /// Watchers.
    pub watches: Vec<WatchLog>,
    /// Applied faults.
    pub applied: Vec<AppliedFault>,
    /// Liveness after heal.
    pub liveness: Liveness,
    /// Problems met while running (no first leader, clients stuck).
    pub problems: Vec<String>,
    /// The lease clients' leases.
    pub leases: Vec<LeaseLog>,
    /// What the operator did.
    pub operator: Vec<OperatorEvent>,
    /// Versions before each release change and at the end.
    pub versions: Vec<VersionStep>,
}

/// Distinct members that led, for the summary.
pub fn leaders(d: &Driver) -> BTreeSet<String> {
    d.terms.values().map(|(_, l)| l.clone()).collect()
}

/// Builds the simulation of `sc` for `seed`.
pub(crate) fn simulation(sc: &Scenario, seed: u64) -> anyhow::Result<Simulation> {
    let mut cfg = SimConfig::new(seed, sc.members);
    for f in &sc.flags {
        cfg = cfg.flag(f.clone());
    }
    Simulation::new(cfg).context("build the simulated cluster")
}
