//! The scenario catalogue (v1): each scenario's cluster, traffic, fault schedule (drawn from
//! the seed's `faults` stream) and expectations.
//!
//! Owns: the list [`catalogue`], lookup by name, and the negative control
//! [`NEGATIVE_CONTROL`] (not part of `--all`: it must fail). Must never: build a schedule from
//! anything but the `rng` it is handed.

use crate::nemesis::{windows, FaultKind, FaultSchedule, ScheduledFault};
use crate::workload::{Profile, WorkloadConfig};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// What a scenario must show, beyond the checks every run gets (linearizability, watch
/// guarantees, liveness after the faults heal).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// At most this many leader changes after the first election.
    pub max_leader_changes: Option<u64>,
    /// At least this many leader changes after the first election.
    pub min_leader_changes: Option<u64>,
    /// Messages the trace must contain.
    pub trace_contains: Vec<&'static str>,
    /// The same seed without faults must see no leader change after the first election.
    pub healthy_twin_stable: bool,
    /// The leader's WAL fsync p99 must exceed this (ms).
    pub min_wal_fsync_p99_ms: Option<f64>,
}

/// What kind of run a scenario is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Workload + fault schedule + checks.
    Standard,
    /// The fsync latency sweep (steps over disk classes, table and plot).
    DiskSweep,
}

/// A named scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name (`etcd-sim run NAME`).
    pub name: &'static str,
    /// One line for `etcd-sim list`.
    pub about: &'static str,
    /// Cluster size.
    pub members: usize,
    /// Extra server flags for every member.
    pub flags: Vec<String>,
    /// Traffic.
    pub workload: WorkloadConfig,
    /// How long the traffic runs (the fault schedule lies inside it).
    pub duration: Duration,
    /// Draws the fault schedule from the seed's `faults` stream.
    pub faults: fn(&mut ChaCha8Rng) -> FaultSchedule,
    /// Expectations.
    pub expect: Expect,
    /// Kind.
    pub kind: Kind,
    /// Serializable reads are checked as if linearizable (negative control only).
    pub stale_reads_as_linearizable: bool,
}

fn none(_: &mut ChaCha8Rng) -> FaultSchedule {
    FaultSchedule::default()
}

fn each(
    rng: &mut ChaCha8Rng,
    count: usize,
    dur: (u64, u64),
    f: impl Fn(&mut ChaCha8Rng) -> FaultKind,
) -> FaultSchedule {
    let faults = windows(rng, count, 1_000, 14_000, dur, 1_500)
        .into_iter()
        .map(|(at_ms, duration_ms)| ScheduledFault {
            at_ms,
            duration_ms,
            fault: f(rng),
        })
        .collect();
    FaultSchedule { faults }
}

fn partition_leader(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 2, (2_500, 4_000), |_| FaultKind::Isolate {
        node: "leader".into(),
    })
}

fn partition_one_way(rng: &mut ChaCha8Rng) -> FaultSchedule {
    use rand::Rng;
    each(rng, 2, (2_500, 4_000), |r| FaultKind::PartitionOneway {
        node: if r.gen_bool(0.5) {
            "leader"
        } else {
            "follower"
        }
        .into(),
    })
}

fn partition_minority(rng: &mut ChaCha8Rng) -> FaultSchedule {
    use rand::Rng;
    each(rng, 2, (2_500, 4_000), |r| FaultKind::PartitionMinority {
        nodes: vec![if r.gen_bool(0.5) {
            "leader"
        } else {
            "follower"
        }
        .into()],
    })
}

fn flaky_links(rng: &mut ChaCha8Rng) -> FaultSchedule {
    use rand::Rng;
    each(rng, 1, (8_000, 10_000), |r| FaultKind::FlakyLinks {
        probability: r.gen_range(0.05..0.2),
        latency_ms: r.gen_range(5..40),
    })
}

fn crash_restart(rng: &mut ChaCha8Rng) -> FaultSchedule {
    use rand::Rng;
    each(rng, 3, (1_000, 3_000), |r| FaultKind::Crash {
        node: if r.gen_bool(0.3) {
            "leader"
        } else {
            "follower"
        }
        .into(),
    })
}

fn crash_all(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (1_000, 3_000), |_| FaultKind::CrashAll)
}

fn slow_fsync_leader(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (8_000, 10_000), |_| FaultKind::SlowFsync {
        node: "leader".into(),
        p50_ms: 1_300,
        p99_ms: 2_000,
    })
}

fn minority_isolated(rng: &mut ChaCha8Rng) -> FaultSchedule {
    // Member links only: the clients bound to the follower still reach it.
    each(rng, 1, (6_000, 8_000), |_| FaultKind::PartitionMinority {
        nodes: vec!["follower".into()],
    })
}

fn base(
    name: &'static str,
    about: &'static str,
    faults: fn(&mut ChaCha8Rng) -> FaultSchedule,
) -> Scenario {
    Scenario {
        name,
        about,
        members: 3,
        flags: Vec::new(),
        workload: WorkloadConfig::default(),
        duration: Duration::from_secs(15),
        faults,
        expect: Expect::default(),
        kind: Kind::Standard,
        stale_reads_as_linearizable: false,
    }
}

/// Every scenario of the catalogue, in `etcd-sim list` order.
pub fn catalogue() -> Vec<Scenario> {
    let mut v = Vec::new();
    let mut s = base(
        "baseline",
        "no faults: one election at start, none after",
        none,
    );
    s.expect.max_leader_changes = Some(0);
    v.push(s);
    v.push(base(
        "partition-leader",
        "the leader is isolated twice (a new leader takes over; the old one steps down)",
        partition_leader,
    ));
    v.push(base(
        "partition-one-way",
        "a member (leader or follower) cannot send to the others but still hears them",
        partition_one_way,
    ));
    v.push(base(
        "partition-minority",
        "a minority (leader or follower) is cut off from the majority",
        partition_minority,
    ));
    v.push(base(
        "flaky-links",
        "member links lose 5-20% of writes (RTO delays) and gain 5-40 ms latency",
        flaky_links,
    ));
    v.push(base(
        "crash-restart",
        "random members lose power (unsynced writes torn) and restart: no acknowledged write lost",
        crash_restart,
    ));
    v.push(base(
        "crash-all",
        "the whole cluster loses power at once and restarts: no acknowledged write lost",
        crash_all,
    ));
    let mut s = base(
        "slow-fsync-leader",
        "the leader's fdatasync p99 (2 s) exceeds the election timeout: it loses leadership",
        slow_fsync_leader,
    );
    s.expect.min_leader_changes = Some(1);
    s.expect.trace_contains = vec![
        "slow fdatasync",
        "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
    ];
    s.expect.healthy_twin_stable = true;
    s.expect.min_wal_fsync_p99_ms = Some(1_000.0);
    v.push(s);
    let mut s = base(
        "disk-latency-sweep",
        "fsync p99 in steps 1..2000 ms under etcd traffic: leader changes/min and write p99 per step",
        none,
    );
    s.kind = Kind::DiskSweep;
    s.workload = WorkloadConfig {
        profile: Profile::Etcd,
        rate: 40,
        clients_per_member: 1,
        cluster_clients: 1,
        watchers: 0,
    };
    v.push(s);
    v
}

/// The negative control: serializable reads from an isolated follower checked as if they were
/// linearizable. A correct server serves them stale, so the checker must say "not
/// linearizable": this proves the harness can fail.
pub const NEGATIVE_CONTROL: &str = "negative-stale-reads";

/// The negative control scenario (see [`NEGATIVE_CONTROL`]).
pub fn negative_control() -> Scenario {
    let mut s = cut_off_follower(
        NEGATIVE_CONTROL,
        "negative control (must FAIL): stale reads from an isolated follower checked as linearizable",
    );
    s.stale_reads_as_linearizable = true;
    s
}

/// A server defect the harness must catch: linearizable reads served without ReadIndex
/// (`--unsafe-test-defects=skip-read-index`), with a follower cut off from the other members
/// while its clients still reach it.
pub const DEFECT_SKIP_READ_INDEX: &str = "defect-skip-read-index";

/// The server-defect scenario (see [`DEFECT_SKIP_READ_INDEX`]); must FAIL.
pub fn defect_skip_read_index() -> Scenario {
    let mut s = cut_off_follower(
        DEFECT_SKIP_READ_INDEX,
        "server defect (must FAIL): linearizable reads without ReadIndex, follower cut off",
    );
    s.flags = vec!["--unsafe-test-defects=skip-read-index".to_string()];
    s
}

/// etcd traffic with clients on every member while a follower is cut off from the others.
fn cut_off_follower(name: &'static str, about: &'static str) -> Scenario {
    let mut s = base(name, about, minority_isolated);
    s.workload = WorkloadConfig {
        profile: Profile::Etcd,
        rate: 80,
        clients_per_member: 2,
        cluster_clients: 0,
        watchers: 0,
    };
    s
}

/// Scenarios that must fail: the harness's negative control and the server defects.
pub fn must_fail() -> Vec<Scenario> {
    vec![negative_control(), defect_skip_read_index()]
}

/// Looks a scenario up by name (the must-fail controls included).
pub fn find(name: &str) -> Option<Scenario> {
    catalogue()
        .into_iter()
        .chain(must_fail())
        .find(|s| s.name == name)
}

/// Names of every scenario, for error messages.
pub fn names() -> Vec<&'static str> {
    catalogue()
        .iter()
        .map(|s| s.name)
        .chain(must_fail().into_iter().map(|s| s.name))
        .collect()
}
