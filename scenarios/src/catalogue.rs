//! The scenario catalogue (v1): each scenario's cluster, traffic, fault schedule (drawn from
//! the seed's `faults` stream) and expectations.
//!
//! Owns: the list [`catalogue`], lookup by name, and the negative control
//! [`NEGATIVE_CONTROL`] (not part of `--all`: it must fail). Must never: build a schedule from
//! anything but the `rng` it is handed.

use crate::nemesis::{windows, CrashSurvival, FaultKind, FaultSchedule, ScheduledFault};
use crate::workload::{Profile, WorkloadConfig};
use rand::Rng;
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
    /// At least this many WAL fsyncs slower than 512 ms on one member (its
    /// `etcd_disk_wal_fsync_duration_seconds` above the 0.512 bucket). Not a p99: a leader that
    /// steps down early makes few slow syncs among many fast ones.
    pub min_slow_wal_fsyncs: Option<u64>,
    /// Operator actions that must succeed at least once (`compact`, `defrag`, `disarm`,
    /// `member-remove`, `member-add`, `learner-add`, `promote`, `promote-refused`).
    pub operator_ok: Vec<&'static str>,
    /// Every running member lists this many voters (the same ones) and no learner at the end.
    pub voters_at_end: Option<usize>,
    /// At least this many watch streams canceled because their start was compacted.
    pub min_compaction_cancels: Option<usize>,
    /// At least this many writes refused with NOSPACE.
    pub min_refused_writes: Option<usize>,
    /// At least this many leases seen expiring.
    pub min_lease_expiries: Option<usize>,
    /// The cluster version all running members report before each `restart-as` entry and at
    /// the end, in order.
    pub cluster_versions: Vec<&'static str>,
    /// Health probes that must have answered so: (path, status code, text in the body).
    pub health: Vec<(&'static str, u16, &'static str)>,
    /// Texts some member line of some version step must contain (e.g. a refusal to start).
    pub version_steps_contain: Vec<&'static str>,
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

/// `leader` with probability `p`, else `follower`.
fn leader_or_follower(r: &mut ChaCha8Rng, p: f64) -> String {
    if r.gen_bool(p) { "leader" } else { "follower" }.to_string()
}

fn none(_: &mut ChaCha8Rng) -> FaultSchedule {
    FaultSchedule::default()
}

fn each(
    rng: &mut ChaCha8Rng,
    count: usize,
    dur: (u64, u64),
    mut f: impl FnMut(&mut ChaCha8Rng) -> FaultKind,
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
    each(rng, 2, (2_500, 4_000), |r| FaultKind::PartitionOneway {
        node: leader_or_follower(r, 0.5),
    })
}

fn partition_minority(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 2, (2_500, 4_000), |r| FaultKind::PartitionMinority {
        nodes: vec![leader_or_follower(r, 0.5)],
    })
}

fn follower_cut_off(rng: &mut ChaCha8Rng) -> FaultSchedule {
    cut_off_a_follower(rng, 1, (5_000, 7_000))
}

/// `count` windows of `dur` ms in which a follower is cut off from the other members.
fn cut_off_a_follower(rng: &mut ChaCha8Rng, count: usize, dur: (u64, u64)) -> FaultSchedule {
    each(rng, count, dur, |_| FaultKind::PartitionMinority {
        nodes: vec!["follower".into()],
    })
}

/// A follower is cut off twice, each for 4.5-5 s: at 400 requests/s, long enough that the
/// leader's 512 raft messages in flight to it do not cover the gap and it catches up from a
/// snapshot.
fn follower_cut_off_twice(rng: &mut ChaCha8Rng) -> FaultSchedule {
    cut_off_a_follower(rng, 2, (4_500, 5_000))
}

/// Slow WAL syncs all along, and three power losses of the only member.
fn sole_member_power_loss(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut s = each(rng, 3, (500, 1_500), |_| FaultKind::Crash {
        node: "leader".into(),
        model: CrashSurvival::LoseAll,
    });
    let slow_wal = FaultKind::SlowFsync {
        node: "leader".into(),
        p50_ms: 20,
        p99_ms: 60,
        path: "wal".into(),
    };
    s.faults.insert(0, entry(500, 14_000, slow_wal));
    s
}

fn flaky_links(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (8_000, 10_000), |r| FaultKind::FlakyLinks {
        probability: r.gen_range(0.05..0.2),
        latency_ms: r.gen_range(5..40),
    })
}

fn crash_restart(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 3, (1_000, 3_000), |r| FaultKind::Crash {
        node: leader_or_follower(r, 0.3),
        model: Default::default(),
    })
}

/// Six kills (`kill -9`: the page cache survives) of the leader or a follower, each restarted
/// 0.3-1 s later: etcd robustness's recipe for 13766 (kills under high traffic).
fn kill_under_load(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 6, (300, 1_000), |r| FaultKind::Crash {
        node: leader_or_follower(r, 0.5),
        model: CrashSurvival::KeepAll,
    })
}

fn crash_all(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (1_000, 3_000), |_| FaultKind::CrashAll)
}

/// Two members' WAL syncs (m1's and m2's) are slow for the whole run (p50 50 ms, p99 200 ms),
/// m0's are not, and the whole cluster loses power five times (unsynced writes lost), each
/// time for 0.5-1 s: a committed entry must survive on a quorum's disks, so that whoever is
/// elected after the outage has it, even when the fast member led and the two slow ones elect
/// one of themselves (Jepsen's lazyfs runs that reported etcd 14143).
fn power_loss_all(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut s = each(rng, 5, (500, 1_000), |_| FaultKind::CrashAll);
    for (i, m) in ["m1", "m2"].iter().enumerate() {
        let slow_wal = FaultKind::SlowFsync {
            node: m.to_string(),
            p50_ms: 50,
            p99_ms: 200,
            path: "wal".into(),
        };
        s.faults.insert(i, entry(500, 14_000, slow_wal));
    }
    s
}

fn slow_fsync_leader(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (8_000, 10_000), |_| FaultKind::SlowFsync {
        node: "leader".into(),
        p50_ms: 1_300,
        p99_ms: 2_000,
        path: String::new(),
    })
}

fn lease_clock_skew(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (10_000, 12_000), |r| {
        let sign = if r.gen_bool(0.5) { 1 } else { -1 };
        FaultKind::Clock {
            node: "leader".into(),
            skew_ms: r.gen_range(-60_000..60_000),
            drift_ppm: sign * r.gen_range(10_000..50_000),
        }
    })
}

fn slow_fsync_leases(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (8_000, 10_000), |_| FaultKind::SlowFsync {
        node: "leader".into(),
        p50_ms: 6_000,
        p99_ms: 6_000,
        path: String::new(),
    })
}

fn member_replace(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (500, 1_000), |_| FaultKind::ReplaceMember {
        node: "follower".into(),
    })
}

fn learner_cut_off(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (3_000, 6_000), |_| FaultKind::AddLearnerCutOff)
}

fn frequent_compaction(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 10, (50, 100), |r| FaultKind::Compact {
        behind: r.gen_range(0..30),
    })
}

/// A rolling upgrade to 3.6.0: a follower defragmented first (so database sizes differ), then
/// each follower and finally the leader restarted as 3.6.0 some 4-5 s apart, with a follower
/// isolated for 2-3 s between the first two steps.
fn rolling_upgrade(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let entry = |at_ms, duration_ms, fault| ScheduledFault {
        at_ms,
        duration_ms,
        fault,
    };
    let restart = |node: &str| FaultKind::RestartAs {
        node: node.into(),
        release: "3.6.0".into(),
    };
    let first = rng.gen_range(2_000..3_000);
    let gap = rng.gen_range(4_000..5_000);
    let mut faults = vec![
        entry(
            500,
            100,
            FaultKind::Defrag {
                node: "follower".into(),
            },
        ),
        entry(first, 1, restart("follower")),
        entry(
            first + 800,
            rng.gen_range(2_000..3_000),
            FaultKind::Isolate {
                node: "follower".into(),
            },
        ),
        entry(first + gap, 1, restart("follower")),
        entry(first + 2 * gap, 1, restart("leader")),
    ];
    faults.sort_by_key(|f| f.at_ms);
    FaultSchedule { faults }
}

fn entry(at_ms: u64, duration_ms: u64, fault: FaultKind) -> ScheduledFault {
    ScheduledFault {
        at_ms,
        duration_ms,
        fault,
    }
}

fn restart_as(node: &str, release: &str) -> FaultKind {
    FaultKind::RestartAs {
        node: node.into(),
        release: release.into(),
    }
}

fn downgrade(action: &str, version: &str) -> FaultKind {
    FaultKind::Downgrade {
        action: action.into(),
        version: version.into(),
    }
}

/// etcd's MemberDowngrade then MemberDowngradeUpgrade: validate and enable 3.5, each member
/// restarted as 3.5.20 (followers first), a follower losing power mid-way, then one member
/// upgraded back to 3.6.0 once the downgrade finished.
fn downgrade_and_back(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let gap = rng.gen_range(4_000..5_000);
    let first = 8_500 + rng.gen_range(0..500);
    FaultSchedule {
        faults: vec![
            entry(2_000, 1, downgrade("validate", "3.5")),
            entry(3_000, 1, downgrade("enable", "3.5")),
            entry(first, 1, restart_as("follower", "3.5.20")),
            entry(
                first + gap / 2,
                rng.gen_range(1_000..2_000),
                FaultKind::Crash {
                    node: "follower".into(),
                    model: Default::default(),
                },
            ),
            entry(first + gap, 1, restart_as("follower", "3.5.20")),
            entry(first + 2 * gap, 1, restart_as("leader", "3.5.20")),
            entry(first + 2 * gap + 9_000, 1, restart_as("follower", "3.6.0")),
        ],
    }
}

/// A downgrade enabled, then cancelled before any member changes release.
fn downgrade_then_cancel(rng: &mut ChaCha8Rng) -> FaultSchedule {
    FaultSchedule {
        faults: vec![
            entry(2_000, 1, downgrade("enable", "3.5")),
            entry(rng.gen_range(7_000..9_000), 1, downgrade("cancel", "")),
        ],
    }
}

/// A follower restarted on an older (or the same-line but unaware) release without a
/// downgrade, then on its own release again.
fn refused_then_back(
    old: &'static str,
    own: &'static str,
) -> impl Fn(&mut ChaCha8Rng) -> FaultSchedule {
    move |rng| {
        let at = rng.gen_range(3_000..4_000);
        FaultSchedule {
            faults: vec![
                entry(at, 1, restart_as("follower", old)),
                entry(at + 4_000, 1, restart_as("follower", own)),
            ],
        }
    }
}

/// etcd-operator's scale-out from one member: a learner added and promoted once caught up,
/// twice, then the first promoted member (m1) restarted as `to` (etcd 19557's upgrade). m1's
/// backend holds both dropped promotions; the last member to join (m2) seeded its backend
/// from the member list it fetched when joining, so in this server only its own promotion is
/// missing there (in etcd a joiner replays the log into its backend and misses both).
fn scale_out_then_upgrade(to: &'static str) -> impl Fn(&mut ChaCha8Rng) -> FaultSchedule {
    move |rng| {
        let second = rng.gen_range(4_500..5_500);
        FaultSchedule {
            faults: vec![
                entry(1_000, 500, FaultKind::AddLearnerCutOff),
                entry(second, 500, FaultKind::AddLearnerCutOff),
                entry(second + 5_000, 1, restart_as("m1", to)),
            ],
        }
    }
}

fn scale_out_then_rc2(rng: &mut ChaCha8Rng) -> FaultSchedule {
    scale_out_then_upgrade("3.6.0-rc.2")(rng)
}

fn scale_out_then_3_6_0(rng: &mut ChaCha8Rng) -> FaultSchedule {
    scale_out_then_upgrade("3.6.0")(rng)
}

/// A follower cut off from the majority for 12-13 s; 2 s in, its `/readyz` (fails on
/// linearizable_read once the read times out, 7 s later), `/readyz?exclude=linearizable_read`
/// and `/livez` are probed.
fn readyz_minority(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let start = rng.gen_range(2_000..3_000);
    let probe = |at, path: &str| {
        entry(
            at,
            1,
            FaultKind::ProbeHealth {
                node: "minority".into(),
                path: path.into(),
            },
        )
    };
    FaultSchedule {
        faults: vec![
            entry(
                start,
                rng.gen_range(12_000..13_000),
                FaultKind::PartitionMinority {
                    nodes: vec!["follower".into()],
                },
            ),
            probe(start + 2_000, "/readyz?verbose"),
            probe(start + 2_100, "/readyz?exclude=linearizable_read"),
            probe(start + 2_200, "/livez"),
            probe(
                start + 2_300,
                "/readyz/linearizable_read?exclude=linearizable_read",
            ),
        ],
    }
}

fn invalid_downgrade(rng: &mut ChaCha8Rng) -> FaultSchedule {
    refused_then_back("3.5.20", "3.6.0")(rng)
}

fn unsupported_storage(rng: &mut ChaCha8Rng) -> FaultSchedule {
    refused_then_back("3.6.0", "3.7.0")(rng)
}

fn defrags(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 4, (50, 100), |r| FaultKind::Defrag {
        node: leader_or_follower(r, 0.5),
    })
}

/// Three defragmentations of m1, each followed by a kill of m1 10-90 ms later (inside the
/// backend's 100 ms batch interval), restarted a second later.
fn defrag_then_kill(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut faults = Vec::new();
    for (at_ms, _) in windows(rng, 3, 1_000, 13_000, (1_000, 1_500), 1_500) {
        let node = || "m1".to_string();
        faults.push(entry(at_ms, 100, FaultKind::Defrag { node: node() }));
        let kill = FaultKind::Crash {
            node: node(),
            model: CrashSurvival::KeepAll,
        };
        faults.push(entry(at_ms + rng.gen_range(10..90), 1_000, kill));
    }
    FaultSchedule { faults }
}

/// Eight compactions at the newest revision, each followed 10-90 ms later by a kill of the
/// member that just applied it (the same member every time, down for 1 s).
fn compact_then_kill(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut faults = Vec::new();
    for (at_ms, _) in windows(rng, 8, 1_000, 14_500, (1_000, 1_200), 400) {
        faults.push(entry(at_ms, 100, FaultKind::Compact { behind: 0 }));
        let kill = FaultKind::Crash {
            node: "m1".to_string(),
            model: CrashSurvival::KeepAll,
        };
        faults.push(entry(at_ms + rng.gen_range(10..90), 1_000, kill));
    }
    FaultSchedule { faults }
}

/// etcd's Issue17780 recipe: ten times, the only member is armed to stop in its next
/// compaction, and a compaction at the newest revision follows 20-200 ms later; the window's
/// end restarts it.
fn crash_in_compaction(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut faults = Vec::new();
    for (at_ms, duration_ms) in windows(rng, 10, 1_000, 14_500, (900, 1_100), 200) {
        let node = "m0".to_string();
        faults.push(entry(
            at_ms,
            duration_ms,
            FaultKind::CrashInCompaction { node },
        ));
        faults.push(entry(
            at_ms + rng.gen_range(20..200),
            100,
            FaultKind::Compact { behind: 0 },
        ));
    }
    FaultSchedule { faults }
}

/// etcd's Issue17529 recipe: five watch-send stalls of 2.5-3 s, each on a member drawn from
/// the stream, with a compaction close to the newest revision 70-90 % into it. Watchers that fell
/// behind during the stall find their next revision compacted while their stream's queue is
/// still full.
fn stalled_watch_sends(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut faults = Vec::new();
    for (at_ms, duration_ms) in windows(rng, 5, 1_000, 14_500, (3_000, 4_000), 200) {
        let node = format!("m{}", rng.gen_range(0..3));
        faults.push(entry(
            at_ms,
            duration_ms,
            FaultKind::WatchSendStall { node },
        ));
        let behind = rng.gen_range(0..10);
        let compact_at = at_ms + duration_ms * rng.gen_range(70..90) / 100;
        faults.push(entry(compact_at, 100, FaultKind::Compact { behind }));
    }
    FaultSchedule { faults }
}

/// The NOSPACE runbook near the end of the traffic: the traffic keeps writing large values
/// (the compactor keeps up to 100 revisions of them), so it fills the quota again within a few
/// seconds of a recovery, as it would for an operator who disarms without removing the cause.
fn nospace_runbook(_: &mut ChaCha8Rng) -> FaultSchedule {
    FaultSchedule {
        faults: vec![ScheduledFault {
            at_ms: 13_500,
            duration_ms: 100,
            fault: FaultKind::RecoverNospace,
        }],
    }
}

fn minority_isolated(rng: &mut ChaCha8Rng) -> FaultSchedule {
    // Member links only: the clients bound to the follower still reach it.
    each(rng, 1, (6_000, 8_000), |_| FaultKind::PartitionMinority {
        nodes: vec!["follower".into()],
    })
}

/// A follower cut off by `faults` catches up from a snapshot: etcd traffic at 400 req/s, so
/// that the leader's raft messages held by the partition do not cover the gap; a snapshot
/// every `snapshot_every` entries, as many kept for followers that lag (etcd robustness's
/// snapshot settings); `watchers` watchers, enough that some are on the member cut off, and no
/// compaction: they catch up from the history the snapshot brings, not from a compacted
/// revision.
fn snapshot_catchup(
    name: &'static str,
    about: &'static str,
    faults: fn(&mut ChaCha8Rng) -> FaultSchedule,
    snapshot_every: u64,
    watchers: usize,
) -> Scenario {
    let mut s = base(name, about, faults);
    s.flags = vec![
        format!("--snapshot-count={snapshot_every}"),
        format!("--experimental-snapshot-catchup-entries={snapshot_every}"),
    ];
    s.workload.profile = Profile::Etcd;
    s.workload.rate = 400;
    s.workload.watchers = watchers;
    s.workload.compaction_period_ms = None;
    s.expect.trace_contains = vec!["applying snapshot from leader"];
    s
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
    v.push(snapshot_catchup(
        "snapshot-catchup",
        "a follower is cut off from the other members (its clients still reach it) until the leader's log has moved past it: it catches up from a snapshot, its watchers from the history",
        follower_cut_off,
        100,
        6,
    ));
    // etcd robustness's Issue20221 settings: a snapshot every 10 entries, 10 kept.
    let mut s = snapshot_catchup(
        "snapshot-catchup-watch-restarts",
        "a follower is cut off twice until it catches up from a snapshot, while watchers restart every 1-2 s from up to 100 revisions before or after the newest (etcd 20221's recipe)",
        follower_cut_off_twice,
        10,
        12,
    );
    s.workload.watch_rewind = true;
    v.push(s);
    let mut s = base(
        "single-member-power-loss",
        "a one-member cluster with slow WAL syncs loses power three times: no acknowledged write lost",
        sole_member_power_loss,
    );
    s.members = 1;
    s.workload.profile = Profile::Etcd;
    v.push(s);
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
    let mut s = base(
        "kill-under-load",
        "members are killed (kill -9) and restarted six times under high etcd traffic with --snapshot-count=100 (etcd robustness's 13766 recipe; runs in real mode too)",
        kill_under_load,
    );
    s.flags = vec!["--snapshot-count=100".into()];
    s.workload = s
        .workload
        .with_traffic("etcd-high")
        .unwrap_or_else(|_| WorkloadConfig::default());
    v.push(s);
    v.push(base(
        "crash-all",
        "the whole cluster loses power at once and restarts: no acknowledged write lost",
        crash_all,
    ));
    let mut s = base(
        "power-loss-all",
        "two members' WAL syncs are slow (p99 200 ms) and the whole cluster loses power five times under high traffic: no acknowledged write lost",
        power_loss_all,
    );
    s.workload.profile = Profile::Etcd;
    s.workload.rate = 400;
    // Enough writes in flight that some are acknowledged in the last sync's time before
    // each power loss.
    s.workload.clients_per_member = 3;
    v.push(s);
    let mut s = base(
        "slow-fsync-leader",
        "the leader's disk syncs (WAL and backend) get a 2 s p99, beyond the election timeout: it loses leadership",
        slow_fsync_leader,
    );
    s.expect.min_leader_changes = Some(1);
    s.expect.trace_contains = vec![
        "slow fdatasync",
        "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
    ];
    s.expect.healthy_twin_stable = true;
    s.expect.min_slow_wal_fsyncs = Some(SLOW_FSYNCS_EXPECTED);
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
        ..Default::default()
    };
    v.push(s);
    v.extend(lease_and_maintenance());
    v.extend(disks_and_processes());
    v.extend(release_lines());
    v
}

/// A member paused 1-5 s, twice (once the leader): its clients keep reading through it.
fn pause_member(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut first = true;
    each(rng, 2, (1_000, 5_000), |r| {
        let node = if std::mem::take(&mut first) {
            "leader".to_string()
        } else {
            leader_or_follower(r, 0.3)
        };
        FaultKind::Pause { node }
    })
}

/// The leader's WAL fdatasync fails with EIO for 3-5 s.
fn leader_wal_eio(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (3_000, 5_000), |_| FaultKind::DiskEio {
        node: "leader".into(),
        op: "fsync".into(),
        path: "wal".into(),
        probability: 1.0,
    })
}

/// A follower's syncs lie for 4-6 s, then it loses power (every unsynced write lost).
fn lying_follower(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (4_000, 6_000), |_| FaultKind::LyingFsync {
        node: "follower".into(),
        power_loss_at_end: true,
    })
}

/// Every member's syncs lie for 4-6 s, then all lose power at once.
fn lying_everyone(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let (at_ms, duration_ms) = windows(rng, 1, 2_000, 12_000, (4_000, 6_000), 1_000)[0];
    let faults = ["m0", "m1", "m2"]
        .iter()
        .map(|m| ScheduledFault {
            at_ms,
            duration_ms,
            fault: FaultKind::LyingFsync {
                node: m.to_string(),
                power_loss_at_end: true,
            },
        })
        .collect();
    FaultSchedule { faults }
}

/// The leader's backend commits (only those) become slow for 6-8 s: p99 100-500 ms.
fn slow_backend(rng: &mut ChaCha8Rng) -> FaultSchedule {
    each(rng, 1, (6_000, 8_000), |r| {
        let p99_ms = r.gen_range(100..=500);
        FaultKind::SlowFsync {
            node: "leader".into(),
            p50_ms: p99_ms / 2,
            p99_ms,
            path: "backend".into(),
        }
    })
}

/// One member (drawn from the seed) is killed; while it is down its backend starts reading
/// back flipped bits, so its restart finds the damage and refuses to start; once the flips
/// stop it restarts and rejoins; 2 s later the operator replaces it anyway (member remove, then
/// add of an empty member), as a runbook for a member with a bad disk says.
fn bitrot(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let node = format!("m{}", rng.gen_range(0..3));
    let at = rng.gen_range(3_000..5_000);
    let flips = rng.gen_range(2_000..3_000);
    FaultSchedule {
        faults: vec![
            entry(
                at,
                1_000,
                FaultKind::Crash {
                    node: node.clone(),
                    model: CrashSurvival::KeepAll,
                },
            ),
            entry(
                at + 100,
                flips,
                FaultKind::Bitflip {
                    node: node.clone(),
                    path: "backend".into(),
                    probability: 1.0,
                },
            ),
            entry(
                at + 100 + flips + 2_000,
                500,
                FaultKind::ReplaceMember { node },
            ),
        ],
    }
}

/// One swarm ingredient: a fault kind drawn with its intensity.
type Ingredient = fn(&mut ChaCha8Rng) -> FaultKind;

/// What `swarm` may switch on: every kind a correct server must survive (lying disks, which
/// lose acknowledged writes by design, stay out), with intensities drawn per use.
const SWARM_INGREDIENTS: &[(&str, Ingredient)] = &[
    ("isolate", |r| FaultKind::Isolate {
        node: leader_or_follower(r, 0.5),
    }),
    ("partition-oneway", |r| FaultKind::PartitionOneway {
        node: leader_or_follower(r, 0.5),
    }),
    ("partition-minority", |r| FaultKind::PartitionMinority {
        nodes: vec![leader_or_follower(r, 0.5)],
    }),
    ("flaky-links", |r| FaultKind::FlakyLinks {
        probability: r.gen_range(0.02..0.2),
        latency_ms: r.gen_range(2..40),
    }),
    ("link-latency", |r| FaultKind::LinkLatency {
        a: "leader".into(),
        b: "follower".into(),
        latency_ms: r.gen_range(5..200),
    }),
    ("crash", |r| FaultKind::Crash {
        node: leader_or_follower(r, 0.3),
        model: if r.gen_bool(0.5) {
            CrashSurvival::Torn4k
        } else {
            CrashSurvival::Torn512
        },
    }),
    ("pause", |r| FaultKind::Pause {
        node: leader_or_follower(r, 0.5),
    }),
    ("watch-send-stall", |r| FaultKind::WatchSendStall {
        node: leader_or_follower(r, 0.5),
    }),
    ("crash-in-compaction", |r| FaultKind::CrashInCompaction {
        node: leader_or_follower(r, 0.5),
    }),
    ("clock", |r| FaultKind::Clock {
        node: leader_or_follower(r, 0.5),
        skew_ms: r.gen_range(-30_000..30_000),
        drift_ppm: r.gen_range(-20_000..20_000),
    }),
    ("slow-fsync", |r| {
        let p99_ms = r.gen_range(5..1_500);
        FaultKind::SlowFsync {
            node: leader_or_follower(r, 0.5),
            p50_ms: p99_ms / 2,
            p99_ms,
            path: if r.gen_bool(0.3) {
                "backend".into()
            } else {
                String::new()
            },
        }
    }),
    ("disk-eio", |r| FaultKind::DiskEio {
        node: leader_or_follower(r, 0.3),
        op: ["write", "fsync", "read"][r.gen_range(0..3)].into(),
        path: ["wal", "backend", ""][r.gen_range(0..3)].into(),
        probability: if r.gen_bool(0.5) {
            1.0
        } else {
            r.gen_range(0.01..0.5)
        },
    }),
    ("disk-full", |r| FaultKind::DiskFull {
        node: leader_or_follower(r, 0.3),
        free_bytes: r.gen_range(0..200_000),
    }),
    ("bitflip", |r| FaultKind::Bitflip {
        node: leader_or_follower(r, 0.3),
        path: "wal".into(),
        probability: r.gen_range(0.1..1.0),
    }),
    ("compact", |r| FaultKind::Compact {
        behind: r.gen_range(0..50),
    }),
    ("defrag", |r| FaultKind::Defrag {
        node: leader_or_follower(r, 0.5),
    }),
    ("replace-member", |_| FaultKind::ReplaceMember {
        node: "follower".into(),
    }),
];

/// The swarm: the seed switches each ingredient on with probability 1/2 (at least one), then
/// draws 4-10 faults of the switched-on kinds, each at its own time and length (they may
/// overlap), over a 24 s run.
fn swarm(rng: &mut ChaCha8Rng) -> FaultSchedule {
    let mut on: Vec<Ingredient> = SWARM_INGREDIENTS
        .iter()
        .filter(|_| rng.gen_bool(0.5))
        .map(|(_, f)| *f)
        .collect();
    if on.is_empty() {
        on.push(SWARM_INGREDIENTS[rng.gen_range(0..SWARM_INGREDIENTS.len())].1);
    }
    let count = rng.gen_range(4..=10);
    let mut faults: Vec<ScheduledFault> = (0..count)
        .map(|_| {
            let fault = on[rng.gen_range(0..on.len())](rng);
            let at_ms = rng.gen_range(1_000..18_000);
            let duration_ms = rng.gen_range(200..4_000);
            ScheduledFault {
                at_ms,
                duration_ms,
                fault,
            }
        })
        .collect();
    faults.sort_by_key(|f| f.at_ms);
    FaultSchedule { faults }
}

/// The ingredient names `swarm` can draw (for the README and the report's mix).
pub fn swarm_ingredients() -> Vec<&'static str> {
    SWARM_INGREDIENTS.iter().map(|(n, _)| *n).collect()
}

/// Process pauses and disk faults: EIO, lying syncs, slow backend commits.
fn disks_and_processes() -> Vec<Scenario> {
    let mut v = Vec::new();
    let mut s = base(
        "pause-member",
        "a member (the leader first) is paused 1-5 s twice while its clients keep reading through it: no stale read after it resumes (etcd 20418)",
        pause_member,
    );
    s.workload.clients_per_member = 2;
    v.push(s);
    let mut s = base(
        "disk-eio",
        "the leader's WAL fdatasync fails (EIO): it stops as etcd does, the others elect a leader, nothing acknowledged is lost; restarted on a healthy disk it rejoins",
        leader_wal_eio,
    );
    s.expect.min_leader_changes = Some(1);
    s.expect.trace_contains = vec!["member exited"];
    v.push(s);
    let mut s = base(
        "lying-disk",
        "a follower's fsync lies for 4-6 s, then it loses power: the majority holds every acknowledged write; the liar, its log short of what it acknowledged, stops as etcd's raft does",
        lying_follower,
    );
    s.expect.trace_contains =
        vec!["tocommit is out of range; was the raft log corrupted, truncated, or lost?"];
    v.push(s);
    let mut s = base(
        "bitrot",
        "a member's backend reads back flipped bits: it refuses to start, naming the damage; the cluster carries on; it rejoins once the flips stop and is then replaced by an empty member; all members' hashes agree",
        bitrot,
    );
    s.expect.trace_contains = vec!["member failed to start"];
    s.expect.operator_ok = vec!["member-remove", "member-add"];
    s.expect.voters_at_end = Some(3);
    v.push(s);
    let mut s = base(
        "slow-backend",
        "only the leader's backend commits are slow (p99 100-500 ms): no leader change, applies take longer",
        slow_backend,
    );
    s.expect.max_leader_changes = Some(0);
    s.expect.trace_contains = vec!["apply request took too long"];
    v.push(s);
    let mut s = base(
        "swarm",
        "the seed switches on a random half of the fault kinds (network, crash, pause, clock, slow/failing/full disks, bit flips, compaction, defrag, member replace) and draws 4-10 of them, overlapping, under traffic compacted every 150 ms",
        swarm,
    );
    s.duration = Duration::from_secs(24);
    s.workload.rate = 100;
    s.workload.compaction_period_ms = Some(150);
    s.workload.txn_reads_at_revision = true;
    let mut five = s.clone();
    v.push(s);
    five.name = "swarm-5";
    five.about = "the swarm on 5 members";
    five.members = 5;
    v.push(five);
    v
}

/// Upgrades and downgrades between emulated releases.
fn release_lines() -> Vec<Scenario> {
    let mut s = base(
        "rolling-upgrade-3.5-to-3.6",
        "3 members on 3.5.20 restarted one by one as 3.6.0, leader last, a partition mid-roll: cluster version 3.5 until the last, then 3.6",
        rolling_upgrade,
    );
    s.flags = vec!["--emulate-release=3.5.20".into()];
    s.duration = Duration::from_secs(24);
    s.expect.cluster_versions = vec!["3.5.0", "3.5.0", "3.5.0", "3.6.0"];
    s.expect.operator_ok = vec!["defrag"];
    let mut v = vec![s];
    let mut s = base(
        "downgrade-3.6-to-3.5",
        "downgrade validate + enable 3.5, members restarted as 3.5.20 one by one (one loses power), then one upgraded back",
        downgrade_and_back,
    );
    s.duration = Duration::from_secs(32);
    s.expect.cluster_versions = vec![
        "3.6.0", "3.6.0", "3.5.0", "3.5.0", "3.5.0", "3.5.0", "3.5.0",
    ];
    s.expect.operator_ok = vec!["downgrade-validate", "downgrade-enable"];
    s.expect.trace_contains = vec![
        "Cluster version downgrade detected, forcing snapshot",
        "The server is ready to downgrade",
        "the cluster has been downgraded",
    ];
    v.push(s);
    let mut s = base(
        "downgrade-cancel",
        "a downgrade to 3.5 is enabled (cluster version 3.5) and cancelled: the cluster version returns to 3.6",
        downgrade_then_cancel,
    );
    s.duration = Duration::from_secs(16);
    s.expect.cluster_versions = vec!["3.6.0", "3.5.0", "3.6.0"];
    s.expect.operator_ok = vec!["downgrade-enable", "downgrade-cancel"];
    v.push(s);
    let scale_out = |name, about, release: &str, faults| {
        let mut s = base(name, about, faults);
        s.members = 1;
        s.flags = vec![format!("--emulate-release={release}")];
        s.duration = Duration::from_secs(16);
        s.expect.operator_ok = vec!["learner-add", "promote"];
        s
    };
    let mut s = scale_out(
        "upgrade-learner-bug",
        "etcd 19557: learners promoted on 3.5.19, a member upgraded to 3.6.0-rc.2 refuses to start (too many learners)",
        "3.5.19",
        scale_out_then_rc2,
    );
    s.expect.version_steps_contain = vec!["membership: too many learner members in cluster"];
    v.push(s);
    let mut s = scale_out(
        "upgrade-learner-bug-via-3.5.20",
        "the same steps with learners promoted on 3.5.20 (promotions persisted): 3.6.0-rc.2 starts",
        "3.5.20",
        scale_out_then_rc2,
    );
    s.expect.version_steps_contain = vec!["3.6.0-rc.2 cluster 3.5.0"];
    s.expect.voters_at_end = Some(3);
    v.push(s);
    let mut s = scale_out(
        "upgrade-learner-bug-to-3.6.0",
        "the same steps on 3.5.19, upgraded straight to 3.6.0: its bootstrap promotes the learners back and starts",
        "3.5.19",
        scale_out_then_3_6_0,
    );
    s.expect.version_steps_contain = vec!["3.6.0 cluster 3.5.0"];
    s.expect.trace_contains = vec!["Syncing member in v3store"];
    s.expect.voters_at_end = Some(3);
    v.push(s);
    let mut s = base(
        "readyz-under-partition",
        "a follower cut off from the majority: its /readyz fails on linearizable_read, passes with ?exclude=linearizable_read; /livez stays ok",
        readyz_minority,
    );
    s.duration = Duration::from_secs(18);
    s.expect.health = vec![
        ("/readyz?verbose", 503, "[-]linearizable_read failed: "),
        ("/readyz?verbose", 503, "[+]serializable_read ok"),
        ("/readyz?exclude=linearizable_read", 200, "ok"),
        ("/livez", 200, "ok"),
        (
            "/readyz/linearizable_read?exclude=linearizable_read",
            503,
            "[-]linearizable_read failed",
        ),
    ];
    v.push(s);
    let mut s = base(
        "invalid-downgrade",
        "a follower restarted as 3.5.20 on 3.6 data without a downgrade refuses to start; as 3.6.0 it starts again",
        invalid_downgrade,
    );
    s.expect.cluster_versions = vec!["3.6.0", "3.6.0", "3.6.0"];
    s.expect.version_steps_contain =
        vec!["invalid downgrade; server version is lower than determined cluster version"];
    v.push(s);
    let mut s = base(
        "unsupported-storage",
        "a follower of a 3.7.0 cluster restarted as 3.6.0 refuses storage version 3.7.0; as 3.7.0 it starts again",
        unsupported_storage,
    );
    s.flags = vec!["--emulate-release=3.7.0".into()];
    s.expect.cluster_versions = vec!["3.7.0", "3.7.0", "3.7.0"];
    s.expect.version_steps_contain = vec!["version \"3.7.0\" is not supported"];
    v.push(s);
    v
}

/// The leases, compaction, maintenance and membership scenarios.
fn lease_and_maintenance() -> Vec<Scenario> {
    let mut v = Vec::new();
    let leases = |hold: bool| crate::workload::lease::LeasePlan {
        clients: 3,
        ttl_s: if hold { (5, 5) } else { (2, 5) },
        keepalives: 2,
        hold,
    };
    let mut s = base(
        "lease-clock-skew",
        "the leader's clock steps and runs 1-5% fast or slow: leases expire within TTL x drift + tolerance",
        lease_clock_skew,
    );
    s.workload.leases = leases(false);
    s.expect.min_lease_expiries = Some(2);
    v.push(s);
    let mut s = base(
        "slow-fsync-leases",
        "the leader's fdatasync stalls 5-6 s while clients keep leases alive: none is revoked (etcd 15247)",
        slow_fsync_leases,
    );
    s.workload.leases = leases(true);
    v.push(s);
    let mut s = base(
        "member-replace",
        "a follower is removed and a new, empty member added in its place; it catches up",
        member_replace,
    );
    s.expect.operator_ok = vec!["member-remove", "member-add"];
    s.expect.voters_at_end = Some(3);
    v.push(s);
    let mut s = base(
        "learner-promote-under-partition",
        "a learner is added cut off: promotion is refused until it catches up after the heal",
        learner_cut_off,
    );
    s.expect.operator_ok = vec!["learner-add", "promote-refused", "promote"];
    s.expect.voters_at_end = Some(4);
    v.push(s);
    let mut s = base(
        "compaction-under-watch",
        "compaction every ~1.4 s while watchers rewind to old revisions (canceled with compact_revision)",
        frequent_compaction,
    );
    s.workload.watchers = 4;
    s.workload.watch_rewind = true;
    s.expect.operator_ok = vec!["compact"];
    s.expect.min_compaction_cancels = Some(1);
    v.push(s);
    let mut s = base(
        "watch-send-stall",
        "a member's watch streams send nothing for 2.5-3 s, five times, under kubernetes traffic at 400 req/s, with a compaction near the newest revision in each stall: watchers fall behind, then are canceled with the compact revision or catch up from the history",
        stalled_watch_sends,
    );
    s.workload.profile = Profile::Kubernetes;
    s.workload.rate = 400;
    s.workload.watchers = 6;
    s.expect.operator_ok = vec!["compact"];
    s.expect.min_compaction_cancels = Some(1);
    v.push(s);
    let mut s = base(
        "txn-reads-at-revision",
        "no faults; txns read keys at past revisions while the compactor runs: a read at a compacted or future revision fails its whole txn on every member (real etcd before 3.7 applies the rest on the members that did not propose it, etcd 18667)",
        none,
    );
    s.workload.txn_reads_at_revision = true;
    v.push(s);
    let mut s = base(
        "defrag-under-load",
        "members defragment their backend four times under traffic",
        defrags,
    );
    s.workload.rate = 100;
    s.expect.operator_ok = vec!["defrag"];
    v.push(s);
    let mut s = base(
        "compact-then-crash",
        "a member is killed 10-90 ms after each of eight compactions under kubernetes traffic (no other compactor): it restarts with the others' key space, and watchers resuming at a compact revision see its deletions",
        compact_then_kill,
    );
    s.workload.profile = Profile::Kubernetes;
    s.workload.rate = 100;
    s.workload.compaction_period_ms = None;
    s.workload.watchers = 4;
    s.workload.watch_rewind = true;
    s.expect.operator_ok = vec!["compact"];
    v.push(s);
    let mut s = base(
        "crash-in-compaction",
        "etcd's Issue17780 recipe: the only member stops inside each of ten compactions at the newest revision, under kubernetes traffic, and restarts: its revision never goes back",
        crash_in_compaction,
    );
    s.members = 1;
    s.workload.profile = Profile::Kubernetes;
    s.workload.rate = 100;
    s.workload.compaction_period_ms = None;
    s.expect.trace_contains = vec!["member exited"];
    v.push(s);
    let mut s = base(
        "defrag-then-crash",
        "a member is killed 10-90 ms after it starts defragmenting, three times: it restarts with the others' revisions",
        defrag_then_kill,
    );
    s.workload.rate = 100;
    s.expect.operator_ok = vec!["defrag"];
    v.push(s);
    let mut s = base(
        "disk-full",
        "a small --quota-backend-bytes fills: NOSPACE alarm, writes refused; compact + defrag + disarm recovers",
        nospace_runbook,
    );
    s.flags = vec![format!("--quota-backend-bytes={DISK_FULL_QUOTA}")];
    s.workload.profile = Profile::Etcd;
    // Large values: the 0-100 revisions the compactor keeps outgrow the quota.
    s.workload.value_padding = 1500;
    s.expect.operator_ok = vec!["compact", "defrag", "disarm"];
    s.expect.min_refused_writes = Some(1);
    v.push(s);
    v
}

/// The backend quota of `disk-full` (bytes).
pub const DISK_FULL_QUOTA: u64 = 400_000;

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
    s.flags = defect_flags("skip-read-index");
    s
}

/// etcd traffic with clients on every member while a follower is cut off from the others.
fn cut_off_follower(name: &'static str, about: &'static str) -> Scenario {
    let mut s = base(name, about, minority_isolated);
    s.workload = WorkloadConfig {
        profile: Profile::Etcd,
        rate: 80,
        clients_per_member: 6,
        cluster_clients: 0,
        watchers: 0,
        ..Default::default()
    };
    s
}

/// A server defect the harness must catch: etcd issue 15247, a leader stalled by a slow disk
/// revokes leases without confirming it still leads
/// (`--unsafe-test-defects=revoke-without-leadership-check`), under `slow-fsync-leases`.
pub const DEFECT_REVOKE_WITHOUT_LEADERSHIP_CHECK: &str = "defect-revoke-without-leadership-check";

/// The lease-revocation defect scenario (see [`DEFECT_REVOKE_WITHOUT_LEADERSHIP_CHECK`]);
/// must FAIL.
pub fn defect_revoke_without_leadership_check() -> Scenario {
    let mut s = lease_and_maintenance()
        .into_iter()
        .find(|s| s.name == "slow-fsync-leases")
        .unwrap_or_else(|| base("slow-fsync-leases", "", slow_fsync_leases));
    s.name = DEFECT_REVOKE_WITHOUT_LEADERSHIP_CHECK;
    s.about = "server defect (must FAIL): a stalled leader revokes kept-alive leases (etcd 15247)";
    s.flags = defect_flags("revoke-without-leadership-check");
    s
}

/// The server flags that switch test defects (`defects`: comma-separated names) on: the
/// defects and the test-only opt-in.
pub fn defect_flags(defects: &str) -> Vec<String> {
    vec![
        format!("--unsafe-test-defects={defects}"),
        "--unsafe-test-opt-in".to_string(),
    ]
}

/// A catalogue scenario under another name, with a test defect switched on (must FAIL).
fn with_defect(from: &str, name: &'static str, about: &'static str, defect: &str) -> Scenario {
    let mut s = catalogue()
        .into_iter()
        .find(|s| s.name == from)
        .unwrap_or_else(|| base(name, about, none));
    s.name = name;
    s.about = about;
    s.flags.extend(defect_flags(defect));
    s
}

/// WAL fsyncs slower than 512 ms that `slow-fsync-leader` must see on its slowed member (it
/// makes 2-4 before it steps down, seeds 0..40).
const SLOW_FSYNCS_EXPECTED: u64 = 2;

/// etcd 13766 as a server defect: the consistent index set before the entry is applied, a
/// batch commit in between, and `crash-restart`'s power losses.
pub const DEFECT_CONSISTENT_INDEX_BEFORE_APPLY: &str = "defect-consistent-index-before-apply";

/// etcd 18089 as a server defect: compaction drops a tombstone at exactly its revision, under
/// `compaction-under-watch` (watchers resume at the compact revision after a cancel).
pub const DEFECT_COMPACT_DROPS_TOMBSTONE: &str = "defect-compact-drops-tombstone-at-revision";

/// etcd 15220 as a server defect: a requested progress notification overtakes the events
/// queued for its stream; watchers ask for progress every 100 ms under load.
pub const DEFECT_PROGRESS_BYPASSES_WATCH_QUEUE: &str = "defect-progress-bypasses-watch-queue";

/// etcd 15271 as a server defect: synced watchers keep their start revision, and the
/// catch-up after a snapshot from the leader replays what they already sent.
pub const DEFECT_SYNCED_WATCHER_KEEPS_START_REV: &str = "defect-synced-watcher-keeps-start-rev";

/// etcd 14370 as a server defect: a sole voter applies and answers before its WAL sync.
pub const DEFECT_APPLY_BEFORE_WAL_SYNC: &str = "defect-apply-before-wal-sync";

/// etcd 14685 as a server defect: defragmentation commits without the consistent index.
pub const DEFECT_DEFRAG_WITHOUT_CONSISTENT_INDEX: &str =
    "defect-defrag-commit-without-consistent-index";

/// etcd 18667 as a server defect: members without a waiter strip a txn's reads; the traffic's
/// txns read at past revisions while the compactor runs.
pub const DEFECT_STRIP_TXN_RANGES: &str = "defect-strip-txn-ranges-without-waiter";

/// etcd 19179 as a server defect: the index rebuild skips tombstone-only keys, and a member
/// killed between a compaction's deletions and its finished mark resumes it from that index.
pub const DEFECT_RESTORE_SKIPS_TOMBSTONES: &str = "defect-restore-skips-tombstone-only-keys";

/// etcd 17529 as a server defect: a watcher whose "compacted" response finds its stream's
/// queue full is caught up with the others, skipping events, under `watch-send-stall`.
pub const DEFECT_COMPACTED_WATCHER_SKIPS_AHEAD: &str = "defect-compacted-watcher-skips-ahead";

/// etcd 17780 as a server defect: the restored store revision ignores the scheduled
/// compaction; a member stopped in a compaction of its newest revision, a delete, goes back,
/// under `crash-in-compaction`.
pub const DEFECT_RESTORE_IGNORES_SCHEDULED_COMPACTION: &str =
    "defect-restore-ignores-scheduled-compaction";

/// etcd 20221 as a server defect: a snapshot from the leader lowers the start of watchers
/// waiting for a future revision, under `snapshot-catchup-watch-restarts`.
pub const DEFECT_RESTORE_LOWERS_FUTURE_WATCHERS: &str = "defect-restore-lowers-future-watchers";

/// etcd 14143's class as a server defect: followers acknowledge entries before their WAL
/// sync, under `power-loss-all`.
pub const DEFECT_FOLLOWER_ACKS_BEFORE_WAL_SYNC: &str = "defect-follower-acks-before-wal-sync";

/// A must-FAIL control of the disk model: every member's fsync lies, then all lose power
/// at once; acknowledged writes are lost and the checker must say so.
pub const LYING_MAJORITY: &str = "negative-lying-majority";

/// The lying-majority control (see [`LYING_MAJORITY`]).
pub fn lying_majority() -> Scenario {
    base(
        LYING_MAJORITY,
        "negative control (must FAIL): every member's fsync lies, then all lose power: acknowledged writes lost",
        lying_everyone,
    )
}

/// Scenarios that must fail: the harness's negative controls and the server defects.
pub fn must_fail() -> Vec<Scenario> {
    vec![
        negative_control(),
        lying_majority(),
        defect_skip_read_index(),
        defect_revoke_without_leadership_check(),
        with_defect(
            "crash-restart",
            DEFECT_CONSISTENT_INDEX_BEFORE_APPLY,
            "server defect (must FAIL): consistent index committed before its entry's writes, then power losses (etcd 13766)",
            "consistent-index-before-apply",
        ),
        with_defect(
            "compaction-under-watch",
            DEFECT_COMPACT_DROPS_TOMBSTONE,
            "server defect (must FAIL): compaction drops the tombstone at its revision; watchers resume there (etcd 18089)",
            "compact-drops-tombstone-at-revision",
        ),
        with_defect(
            "compaction-under-watch",
            DEFECT_PROGRESS_BYPASSES_WATCH_QUEUE,
            "server defect (must FAIL): a requested progress notification overtakes queued watch events (etcd 15220)",
            "progress-bypasses-watch-queue",
        ),
        with_defect(
            "snapshot-catchup",
            DEFECT_SYNCED_WATCHER_KEEPS_START_REV,
            "server defect (must FAIL): synced watchers keep their start revision; a snapshot from the leader replays old events (etcd 15271)",
            "synced-watcher-keeps-start-rev",
        ),
        with_defect(
            "single-member-power-loss",
            DEFECT_APPLY_BEFORE_WAL_SYNC,
            "server defect (must FAIL): a one-member cluster answers writes before its WAL sync, then loses power (etcd 14370)",
            "apply-before-wal-sync",
        ),
        with_defect(
            "txn-reads-at-revision",
            DEFECT_STRIP_TXN_RANGES,
            "server defect (must FAIL): members that did not propose a txn skip its reads, and with them the compacted-revision check the proposer fails (etcd 18667)",
            "strip-txn-ranges-without-waiter",
        ),
        with_defect(
            "compact-then-crash",
            DEFECT_RESTORE_SKIPS_TOMBSTONES,
            "server defect (must FAIL): the index rebuild skips keys whose first revision is a tombstone; killed mid-compaction, a member resumes it and deletes the tombstones at the compact revision (etcd 19179)",
            "restore-skips-tombstone-only-keys",
        ),
        with_defect(
            "watch-send-stall",
            DEFECT_COMPACTED_WATCHER_SKIPS_AHEAD,
            "server defect (must FAIL): a watcher whose compacted response finds its stream's queue full is brought to the round's revisions, never told of the compaction (etcd 17529)",
            "compacted-watcher-skips-ahead",
        ),
        with_defect(
            "crash-in-compaction",
            DEFECT_RESTORE_IGNORES_SCHEDULED_COMPACTION,
            "server defect (must FAIL): the store revision restored after a crash mid-compaction ignores the scheduled compaction, which removed the newest revision, a delete (etcd 17780)",
            "restore-ignores-scheduled-compaction",
        ),
        with_defect(
            "snapshot-catchup-watch-restarts",
            DEFECT_RESTORE_LOWERS_FUTURE_WATCHERS,
            "server defect (must FAIL): a snapshot from the leader brings watchers waiting for a future revision down to the store's; they get events before their start (etcd 20221)",
            "restore-lowers-future-watchers",
        ),
        with_defect(
            "power-loss-all",
            DEFECT_FOLLOWER_ACKS_BEFORE_WAL_SYNC,
            "server defect (must FAIL): followers acknowledge entries before their WAL sync; after a whole-cluster power loss a committed write is gone (etcd 14143's class)",
            "follower-acks-before-wal-sync",
        ),
        with_defect(
            "defrag-then-crash",
            DEFECT_DEFRAG_WITHOUT_CONSISTENT_INDEX,
            "server defect (must FAIL): defragmentation commits without the consistent index, then the member is killed (etcd 14685)",
            "defrag-commit-without-consistent-index",
        ),
    ]
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
