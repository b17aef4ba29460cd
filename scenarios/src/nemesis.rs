//! Fault schedules as data: a list of (at, fault, duration) in milliseconds after the workload
//! starts, drawn from the seed's `faults` stream by a scenario or read from a JSON file, and
//! applied through the simulator's fault API.
//!
//! Owns: [`FaultSchedule`] (serde), node selectors resolved when a fault fires (`leader`,
//! `follower`, `mN`), each fault's undo at the end of its window, and the record of what was
//! applied ([`AppliedFault`]).
//!
//! Semantics: the end of a network fault heals every partition and link loss (the simulator
//! has one heal); a crash window ends with a restart on the same disk; a slow-fsync window
//! ends with a healthy disk; a clock window ends with a correct clock. Operator entries
//! (compact, defrag, NOSPACE runbook, member replace, learner add) start an operator host
//! (`op{index}`, see `crate::operator`) when they fire; their window is how long a learner
//! stays cut off.
//!
//! Must never: decide with randomness other than the run's `faults` stream, or leave a fault
//! active past the end of the workload (the runner heals everything then).

use crate::cluster::Cluster;
use anyhow::{bail, Context};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sim::{CrashModel, DiskFault, Fault, FaultRule, LatencyModel, NodeClock};
use std::path::Path;
use std::time::Duration;

/// What a fault does. Node selectors: `leader` (the leader when the fault fires), `follower`
/// (a member that is not the leader then, chosen from the `faults` stream), or a member name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// Cut every link of the node (members and clients).
    Isolate {
        /// Node selector.
        node: String,
    },
    /// The node cannot send to the other members; it still hears them.
    PartitionOneway {
        /// Node selector.
        node: String,
    },
    /// The given members on one side, the rest of the cluster on the other.
    PartitionMinority {
        /// Node selectors of the minority side.
        nodes: Vec<String>,
    },
    /// Every member-to-member link loses writes with this probability (each loss delays the
    /// bytes by a retransmission timeout), plus a fixed latency.
    FlakyLinks {
        /// Loss probability in [0, 1].
        probability: f64,
        /// One-way latency on member links, ms.
        latency_ms: u64,
    },
    /// Power loss (or a kill): what survives of unsynced writes is `model`'s; restart at the
    /// end.
    Crash {
        /// Node selector.
        node: String,
        /// `torn-4k` (default: a random prefix of each file's unsynced writes survives, the
        /// first lost one torn at a 4 KiB sector), `torn-512`, `lose-all` (every unsynced
        /// write lost) or `keep-all` (a process kill: the page cache survives).
        #[serde(default)]
        model: CrashSurvival,
    },
    /// Every member loses power at the same instant; all restart at the end.
    CrashAll,
    /// The node's fdatasync latency becomes log-normal with this p50/p99: every sync's, or
    /// with `path` (as for `disk-eio`: `wal`, `backend`, ...) only the syncs of those files
    /// (`backend`: the backend's commits, etcd's `backend_commit_duration`).
    SlowFsync {
        /// Node selector.
        node: String,
        /// Median, ms.
        p50_ms: u64,
        /// 99th percentile, ms.
        p99_ms: u64,
        /// Which files (empty: all).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
    },
    /// The node's disk fails `op` (`write`: writes, truncation and directory changes;
    /// `fsync`: syncs, whose data is then never durable, as on Linux; `read`) with EIO on
    /// paths under `path` (`wal`, `backend`, `snap`, a path relative to the data dir, or empty
    /// for every path), each time with `probability`. At the end the rule is removed and a
    /// member that stopped on the error is restarted on the healthy disk.
    DiskEio {
        /// Node selector.
        node: String,
        /// `write`, `fsync` or `read`.
        op: String,
        /// Which files (see above).
        #[serde(default)]
        path: String,
        /// Chance in [0, 1] that a matching operation fails.
        #[serde(default = "always")]
        probability: f64,
    },
    /// The node's disk fills up: `free_bytes` beyond what it holds now, then writes fail with
    /// ENOSPC (the disk, not the backend quota). At the end the capacity is unlimited again and
    /// a member that stopped on the error is restarted.
    DiskFull {
        /// Node selector.
        node: String,
        /// Bytes still free when the fault starts.
        #[serde(default)]
        free_bytes: u64,
    },
    /// Reads under `path` (as for `disk-eio`) return one flipped bit with `probability` (the
    /// stored bytes are intact: corruption on the read path). At the end the rule is removed
    /// and a member that stopped on what it read is restarted.
    Bitflip {
        /// Node selector.
        node: String,
        /// Which files.
        #[serde(default)]
        path: String,
        /// Chance in [0, 1] per read.
        #[serde(default = "always")]
        probability: f64,
    },
    /// The node's syncs report success without making anything durable (a drive with a
    /// volatile write cache that lies); a crash inside the window loses what they "synced".
    /// With `power_loss_at_end`, the window ends with that crash (every unsynced write lost)
    /// and an immediate restart.
    LyingFsync {
        /// Node selector.
        node: String,
        /// Lose power when the window ends.
        #[serde(default)]
        power_loss_at_end: bool,
    },
    /// A fixed one-way latency on the link between two nodes (both directions); back to the
    /// default at the end.
    LinkLatency {
        /// Node selector of one end.
        a: String,
        /// Node selector of the other end.
        b: String,
        /// Latency, ms.
        latency_ms: u64,
    },
    /// Freeze the node's network and disk syncs (SIGSTOP seen from outside).
    Pause {
        /// Node selector.
        node: String,
    },
    /// The node's watch streams send nothing for the window (the server's `watch-send`
    /// failpoint, etcd's `beforeSendWatchResponse` sleep): their queues fill and their
    /// watchers fall back to catching up from the history, as under a client reading slowly.
    WatchSendStall {
        /// Node selector.
        node: String,
    },
    /// The node stops at its next compaction, after the compaction's deletions and before
    /// its finished mark is committed (the server's `compact-before-set-finished` failpoint,
    /// etcd's `compactBeforeSetFinishedCompact` panic). At the end the failpoint is disarmed
    /// and a member that has stopped (for this or any other reason) is restarted.
    CrashInCompaction {
        /// Node selector.
        node: String,
    },
    /// The node's wall clock steps by `skew_ms` and its oscillator runs `drift_ppm` fast
    /// (negative: slow) for the window; both are undone at its end.
    Clock {
        /// Node selector.
        node: String,
        /// Wall-clock step, ms.
        skew_ms: i64,
        /// Rate error, ppm.
        drift_ppm: i64,
    },
    /// Release change: restart the member on its disk as another etcd release (one step of a
    /// rolling upgrade or downgrade); it stays on that release (the window's end undoes
    /// nothing).
    RestartAs {
        /// Node selector.
        node: String,
        /// The release, e.g. `3.6.0` (one of `etcd-server`'s emulated releases).
        release: String,
    },
    /// Operator: an HTTP GET of a health endpoint on the node (`/readyz?verbose`), as curl or
    /// a kubelet probe would; the status and body are in the operator log as `health`.
    ProbeHealth {
        /// Node selector (`minority`: the member currently cut off from every other member).
        node: String,
        /// Path and query, e.g. `/readyz?exclude=linearizable_read`.
        path: String,
    },
    /// Operator: `Maintenance.Downgrade` as `etcdctl downgrade validate|enable X.Y | cancel`
    /// (the answer, or etcd's refusal, is in the operator log as `downgrade-<action>`).
    Downgrade {
        /// `validate`, `enable` or `cancel`.
        action: String,
        /// Target `X.Y` (ignored by `cancel`).
        #[serde(default)]
        version: String,
    },
    /// Operator: compact at `behind` revisions before the current one (recorded).
    Compact {
        /// How far behind the current revision.
        behind: i64,
    },
    /// Operator: defragment the node's backend.
    Defrag {
        /// Node selector.
        node: String,
    },
    /// Operator: etcd's NOSPACE runbook (compact, defragment every member, disarm).
    RecoverNospace,
    /// Operator: remove the member and add a new, empty one in its place.
    ReplaceMember {
        /// Node selector of the member to replace.
        node: String,
    },
    /// Operator: add a learner that stays cut off from every other host for the window, and
    /// try to promote it every 500 ms from the start (refused until it has caught up).
    AddLearnerCutOff,
}

/// Every kind a schedule can name: (kind, fields, what it does, whether and how real mode
/// applies it), for `etcd-sim faults` and the README's table. `node` fields take `leader`, `follower` or `mN`.
pub const FAULT_KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "isolate",
        "`node`",
        "cut every link of the node",
        "yes (proxies)",
    ),
    (
        "partition-oneway",
        "`node`",
        "the node cannot send to the other members; it still hears them",
        "yes (proxies)",
    ),
    (
        "partition-minority",
        "`nodes`",
        "the listed members on one side, the rest on the other",
        "yes (proxies)",
    ),
    (
        "flaky-links",
        "`probability`, `latency_ms`",
        "member links lose writes (retransmission delays) and gain latency",
        "yes (proxies)",
    ),
    (
        "link-latency",
        "`a`, `b`, `latency_ms`",
        "fixed one-way latency on one link, both directions",
        "yes (proxies)",
    ),
    (
        "crash",
        "`node`, `model` (`torn-4k`, `torn-512`, `lose-all`, `keep-all`)",
        "power loss (or a kill): what survives of unsynced writes; restart at the end",
        "`keep-all` only (`kill -9`)",
    ),
    (
        "crash-all",
        "",
        "every member loses power at the same instant; all restart at the end",
        "no (power loss)",
    ),
    (
        "pause",
        "`node`",
        "freeze the node's network and disk syncs (SIGSTOP seen from outside)",
        "yes (SIGSTOP, SIGCONT)",
    ),
    (
        "watch-send-stall",
        "`node`",
        "the node's watch streams send nothing (a server failpoint, etcd's `beforeSendWatchResponse`): their queues fill and their watchers catch up from the history",
        "no (a failpoint: real etcd needs a gofail build)",
    ),
    (
        "crash-in-compaction",
        "`node`",
        "the node stops at its next compaction, before the compaction's finished mark is committed (a server failpoint, etcd's `compactBeforeSetFinishedCompact` panic); restart at the end",
        "no (a failpoint: real etcd needs a gofail build)",
    ),
    (
        "clock",
        "`node`, `skew_ms`, `drift_ppm`",
        "the node's wall clock steps and its oscillator drifts",
        "no",
    ),
    (
        "slow-fsync",
        "`node`, `p50_ms`, `p99_ms`, `path`",
        "log-normal fdatasync latency: every file's, or only `path`'s (`wal`, `backend`)",
        "no",
    ),
    (
        "disk-eio",
        "`node`, `op` (`write`, `fsync`, `read`), `path`, `probability`",
        "EIO on those operations; a member stopped by it restarts at the end",
        "no",
    ),
    (
        "disk-full",
        "`node`, `free_bytes`",
        "the disk fills (ENOSPC), distinct from the backend quota",
        "no",
    ),
    (
        "bitflip",
        "`node`, `path`, `probability`",
        "reads return one flipped bit (stored bytes intact)",
        "no",
    ),
    (
        "lying-fsync",
        "`node`, `power_loss_at_end`",
        "syncs report success and make nothing durable",
        "no",
    ),
    (
        "restart-as",
        "`node`, `release`",
        "restart the member on its disk as another etcd release",
        "no",
    ),
    (
        "compact",
        "`behind`",
        "operator: compact `behind` revisions before the current one",
        "yes",
    ),
    (
        "defrag",
        "`node`",
        "operator: defragment the node's backend",
        "yes",
    ),
    (
        "recover-nospace",
        "",
        "operator: etcd's NOSPACE runbook (compact, defragment every member, disarm)",
        "yes",
    ),
    (
        "replace-member",
        "`node`",
        "operator: member remove, then member add of a new empty member",
        "no",
    ),
    (
        "add-learner-cut-off",
        "",
        "operator: add a learner kept cut off for the window; promotion retried",
        "no",
    ),
    (
        "downgrade",
        "`action` (`validate`, `enable`, `cancel`), `version`",
        "operator: Maintenance.Downgrade as etcdctl 3.6 sends it",
        "yes",
    ),
    (
        "probe-health",
        "`node` (or `minority`), `path`",
        "operator: an HTTP GET of a health endpoint, as a kubelet probe",
        "yes",
    ),
];

/// The fault kinds as a Markdown table (`etcd-sim faults`).
pub fn fault_kinds_table() -> String {
    let mut out = String::from(
        "| kind | fields | what it does | real mode (`--real`) |\n|---|---|---|---|\n",
    );
    for (kind, fields, about, real) in FAULT_KINDS {
        out.push_str(&format!("| `{kind}` | {fields} | {about} | {real} |\n"));
    }
    out
}

fn always() -> f64 {
    1.0
}

/// What a crash keeps of unsynced writes (the simulator's [`CrashModel`] by name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashSurvival {
    /// Power loss, a torn prefix at 4 KiB sectors.
    #[default]
    #[serde(rename = "torn-4k")]
    Torn4k,
    /// Power loss, a torn prefix at 512-byte sectors.
    Torn512,
    /// Power loss, every unsynced write lost.
    LoseAll,
    /// A process kill: the page cache survives.
    KeepAll,
}

impl CrashSurvival {
    fn model(self) -> CrashModel {
        match self {
            CrashSurvival::Torn4k => CrashModel::TornPrefix { sector: 4096 },
            CrashSurvival::Torn512 => CrashModel::TornPrefix { sector: 512 },
            CrashSurvival::LoseAll => CrashModel::LoseAll,
            CrashSurvival::KeepAll => CrashModel::KeepAll,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CrashSurvival::Torn4k => "power loss (torn unsynced writes)",
            CrashSurvival::Torn512 => "power loss (unsynced writes torn at 512 B)",
            CrashSurvival::LoseAll => "power loss (every unsynced write lost)",
            CrashSurvival::KeepAll => "kill (page cache kept)",
        }
    }
}

/// The disk path a schedule's `path` names on a member: `wal`, `backend`, `snap`, a path
/// relative to the data dir, or everything.
fn disk_path(path: &str) -> std::path::PathBuf {
    let data = Path::new(sim::DATA_DIR);
    match path {
        "" | "/" => std::path::PathBuf::new(),
        "wal" => data.join("member").join("wal"),
        "backend" => data.join("member").join("snap").join("db"),
        "snap" => data.join("member").join("snap"),
        other => data.join(other.trim_start_matches('/')),
    }
}

fn disk_op(op: &str) -> anyhow::Result<DiskFault> {
    match op {
        "write" => Ok(DiskFault::WriteEio),
        "fsync" => Ok(DiskFault::FsyncEio),
        "read" => Ok(DiskFault::ReadEio),
        other => bail!("op must be write, fsync or read, got {other:?}"),
    }
}

impl FaultKind {
    /// The name a schedule file gives this kind (`disk-eio`).
    pub fn kind_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_default()
    }

    /// The same fault at half its intensity (loss and error probabilities, latencies, clock
    /// skew and drift), or `None` when it has no intensity or is already as mild as it gets.
    pub fn milder(&self) -> Option<FaultKind> {
        let half_p = |p: f64| (p >= 0.02).then_some(p / 2.0);
        let half_ms = |ms: u64| (ms >= 2).then_some(ms / 2);
        let mut f = self.clone();
        let changed = match &mut f {
            FaultKind::FlakyLinks {
                probability,
                latency_ms,
            } => {
                let (p, l) = (half_p(*probability), half_ms(*latency_ms));
                *probability = p.unwrap_or(*probability);
                *latency_ms = l.unwrap_or(*latency_ms);
                p.is_some() || l.is_some()
            }
            FaultKind::LinkLatency { latency_ms, .. } => {
                half_ms(*latency_ms).map(|l| *latency_ms = l).is_some()
            }
            FaultKind::SlowFsync { p50_ms, p99_ms, .. } => {
                match (half_ms(*p50_ms), half_ms(*p99_ms)) {
                    (Some(a), Some(b)) => {
                        (*p50_ms, *p99_ms) = (a, b);
                        true
                    }
                    _ => false,
                }
            }
            FaultKind::DiskEio { probability, .. } | FaultKind::Bitflip { probability, .. } => {
                half_p(*probability).map(|p| *probability = p).is_some()
            }
            FaultKind::Clock {
                skew_ms, drift_ppm, ..
            } => {
                let changed = skew_ms.abs() >= 2 || drift_ppm.abs() >= 2;
                *skew_ms /= 2;
                *drift_ppm /= 2;
                changed
            }
            _ => false,
        };
        changed.then_some(f)
    }
}

/// One entry of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// Start, ms after the workload starts.
    pub at_ms: u64,
    /// How long it lasts, ms.
    pub duration_ms: u64,
    /// The fault.
    pub fault: FaultKind,
}

/// A fault schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSchedule {
    /// Entries, in start order.
    pub faults: Vec<ScheduledFault>,
}

/// A fault as it was applied, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedFault {
    /// Simulated ms since the start of the simulation.
    pub start_ms: u64,
    /// When it was undone (ms since start).
    pub end_ms: u64,
    /// What, with node selectors resolved (e.g. `isolate m2 (leader)`).
    pub what: String,
    /// The schedule kind (`isolate`, `disk-eio`, ...).
    #[serde(default)]
    pub kind: String,
}

impl FaultSchedule {
    /// Reads a schedule from a JSON file, checking it.
    pub fn load(path: &Path, members: usize) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read fault schedule {}", path.display()))?;
        let s: FaultSchedule = serde_json::from_str(&text)
            .with_context(|| format!("parse fault schedule {}", path.display()))?;
        s.validate(members)
            .with_context(|| format!("fault schedule {}", path.display()))?;
        Ok(s)
    }

    /// Checks node names and numbers.
    pub fn validate(&self, members: usize) -> anyhow::Result<()> {
        let check = |n: &str| -> anyhow::Result<()> {
            match n {
                "leader" | "follower" => Ok(()),
                m if m
                    .strip_prefix('m')
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i < members) =>
                {
                    Ok(())
                }
                other => bail!(
                    "unknown node {other:?}: use leader, follower or m0..m{}",
                    members.saturating_sub(1)
                ),
            }
        };
        for (i, f) in self.faults.iter().enumerate() {
            let r = match &f.fault {
                FaultKind::Isolate { node }
                | FaultKind::PartitionOneway { node }
                | FaultKind::Crash { node, .. }
                | FaultKind::DiskFull { node, .. }
                | FaultKind::LyingFsync { node, .. }
                | FaultKind::Pause { node }
                | FaultKind::WatchSendStall { node }
                | FaultKind::CrashInCompaction { node }
                | FaultKind::Defrag { node }
                | FaultKind::ReplaceMember { node } => check(node),
                FaultKind::Clock {
                    node, drift_ppm, ..
                } => check(node).and_then(|_| {
                    if drift_ppm.abs() >= 500_000 {
                        bail!("drift_ppm must be within ±500000")
                    }
                    Ok(())
                }),
                FaultKind::Compact { behind } => {
                    if *behind < 0 {
                        bail!("behind must be ≥ 0")
                    }
                    Ok(())
                }
                FaultKind::RecoverNospace | FaultKind::AddLearnerCutOff => Ok(()),
                FaultKind::ProbeHealth { node, path } => {
                    if !path.starts_with('/') {
                        bail!("path must start with /, got {path:?}")
                    }
                    if node == "minority" {
                        Ok(())
                    } else {
                        check(node)
                    }
                }
                FaultKind::Downgrade { action, .. } => match action.as_str() {
                    "validate" | "enable" | "cancel" => Ok(()),
                    other => {
                        bail!("downgrade action must be validate, enable or cancel, got {other:?}")
                    }
                },
                FaultKind::RestartAs { node, release } => check(node).and_then(|_| {
                    etcd_server::etcdserver::version::Release::parse(release)
                        .map(|_| ())
                        .map_err(|e| anyhow::anyhow!("{e}"))
                }),
                FaultKind::SlowFsync {
                    node,
                    p50_ms,
                    p99_ms,
                    ..
                } => check(node).and_then(|_| {
                    if p99_ms < p50_ms {
                        bail!("p99_ms must be ≥ p50_ms")
                    }
                    Ok(())
                }),
                FaultKind::PartitionMinority { nodes } => {
                    if nodes.is_empty() || nodes.len() * 2 >= members {
                        bail!("a minority needs 1..{} nodes", members.div_ceil(2) - 1)
                    }
                    nodes.iter().try_for_each(|n| check(n))
                }
                FaultKind::FlakyLinks { probability, .. } => check_probability(*probability),
                FaultKind::CrashAll => Ok(()),
                FaultKind::DiskEio {
                    node,
                    op,
                    probability,
                    ..
                } => check(node)
                    .and_then(|_| disk_op(op).map(|_| ()))
                    .and_then(|_| check_probability(*probability)),
                FaultKind::Bitflip {
                    node, probability, ..
                } => check(node).and_then(|_| check_probability(*probability)),
                FaultKind::LinkLatency { a, b, .. } => check(a).and_then(|_| check(b)),
            };
            r.with_context(|| format!("entry {i}"))?;
        }
        Ok(())
    }

    /// The schedule's end (ms after the workload starts).
    pub fn end_ms(&self) -> u64 {
        self.faults
            .iter()
            .map(|f| f.at_ms + f.duration_ms)
            .max()
            .unwrap_or(0)
    }
}

fn check_probability(p: f64) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&p) {
        bail!("probability must be in [0, 1]")
    }
    Ok(())
}

/// `count` non-overlapping windows of `min..max` ms inside `[from, until)` ms, separated by at
/// least `gap` ms, drawn from `rng`.
pub fn windows(
    rng: &mut ChaCha8Rng,
    count: usize,
    from: u64,
    until: u64,
    dur: (u64, u64),
    gap: u64,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let slot = (until.saturating_sub(from)) / count.max(1) as u64;
    for i in 0..count as u64 {
        let d = rng
            .gen_range(dur.0..=dur.1)
            .min(slot.saturating_sub(gap))
            .max(1);
        let latest = slot.saturating_sub(d + gap).max(1);
        let at = from + i * slot + rng.gen_range(0..latest);
        out.push((at, d));
    }
    out
}

/// The one-way latency a link gets back when a latency fault ends: the simulator's minimum
/// (turmoil cannot return a link to its drawn latency).
const DEFAULT_LINK_LATENCY_MS: u64 = 1;

/// A disk rule switched on for a window: off at its end, and a member that stopped on it
/// restarted on the healthy disk.
fn disk_rule_window(node: String, rule: FaultRule) -> (Vec<Fault>, Vec<Fault>) {
    (
        vec![Fault::DiskFault {
            node: node.clone(),
            rule: rule.clone(),
        }],
        vec![
            Fault::RemoveDiskFault {
                node: node.clone(),
                rule,
            },
            Fault::Revive(node),
        ],
    )
}

/// How a schedule's `path` reads in the report.
fn shown_path(path: &str) -> &str {
    if path.is_empty() || path == "/" {
        "every file"
    } else {
        path
    }
}

/// What the runner keeps to undo a fault.
#[derive(Debug, Clone)]
pub struct Active {
    undo: Vec<Fault>,
    index: usize,
}

pub(crate) fn resolve(
    s: &dyn Cluster,
    sel: &str,
    rng: &mut ChaCha8Rng,
    avoid: &[String],
) -> String {
    // A retired member (replaced, removed) is no leader, follower or minority any more.
    let names = s.active_members();
    let leader = s.leader();
    match sel {
        "leader" => leader.unwrap_or_else(|| names[0].clone()),
        "minority" => names
            .iter()
            .find(|n| {
                names
                    .iter()
                    .filter(|o| o != n)
                    .all(|o| s.is_blocked(n, o) && s.is_blocked(o, n))
            })
            .cloned()
            .unwrap_or_else(|| names[0].clone()),
        "follower" => {
            let fs: Vec<&String> = names
                .iter()
                .filter(|n| Some(*n) != leader.as_ref() && !avoid.contains(n))
                .collect();
            if fs.is_empty() {
                names[0].clone()
            } else {
                fs[rng.gen_range(0..fs.len())].clone()
            }
        }
        other => other.to_string(),
    }
}

pub(crate) fn label(sel: &str, node: &str) -> String {
    if sel == node {
        node.to_string()
    } else {
        format!("{node} ({sel})")
    }
}

/// Applies entry `index` of a schedule now; returns what it was and how to undo it.
pub fn apply(
    s: &mut dyn Cluster,
    f: &ScheduledFault,
    index: usize,
    rng: &mut ChaCha8Rng,
    ctx: &mut crate::operator::OpContext,
) -> anyhow::Result<(String, Active)> {
    let names = s.member_names();
    let others = |n: &str| -> Vec<String> { names.iter().filter(|m| *m != n).cloned().collect() };
    let (what, faults, undo) = match &f.fault {
        FaultKind::Isolate { node } => {
            let n = resolve(s, node, rng, &[]);
            (
                format!("isolate {}", label(node, &n)),
                vec![Fault::Isolate(n)],
                vec![Fault::Heal],
            )
        }
        FaultKind::PartitionOneway { node } => {
            let n = resolve(s, node, rng, &[]);
            (
                format!(
                    "one-way partition: {} cannot send to the others",
                    label(node, &n)
                ),
                vec![Fault::PartitionOneway {
                    from: vec![n.clone()],
                    to: others(&n),
                }],
                vec![Fault::Heal],
            )
        }
        FaultKind::PartitionMinority { nodes } => {
            let mut side = Vec::new();
            for sel in nodes {
                let n = resolve(s, sel, rng, &side);
                side.push(n);
            }
            let rest: Vec<String> = names
                .iter()
                .filter(|m| !side.contains(m))
                .cloned()
                .collect();
            (
                format!("partition {} | {}", side.join(","), rest.join(",")),
                vec![Fault::Partition { a: side, b: rest }],
                vec![Fault::Heal],
            )
        }
        FaultKind::FlakyLinks {
            probability,
            latency_ms,
        } => {
            let mut fs = Vec::new();
            let mut undo = vec![Fault::Heal];
            for a in &names {
                for b in &names {
                    if a == b {
                        continue;
                    }
                    fs.push(Fault::LinkLoss {
                        from: a.clone(),
                        to: b.clone(),
                        probability: *probability,
                    });
                    if a < b {
                        fs.push(Fault::LinkLatency {
                            a: a.clone(),
                            b: b.clone(),
                            latency: Duration::from_millis(*latency_ms),
                        });
                        undo.push(Fault::LinkLatency {
                            a: a.clone(),
                            b: b.clone(),
                            latency: Duration::from_millis(DEFAULT_LINK_LATENCY_MS),
                        });
                    }
                }
            }
            (
                format!("flaky member links: loss {probability}, latency {latency_ms} ms"),
                fs,
                undo,
            )
        }
        FaultKind::Crash { node, model } => {
            let n = resolve(s, node, rng, &[]);
            (
                format!("{} of {}", model.describe(), label(node, &n)),
                vec![Fault::Crash {
                    node: n.clone(),
                    model: model.model(),
                }],
                vec![Fault::Restart(n)],
            )
        }
        FaultKind::DiskEio {
            node,
            op,
            path,
            probability,
        } => {
            let n = resolve(s, node, rng, &[]);
            let rule = FaultRule {
                fault: disk_op(op)?,
                prefix: disk_path(path),
                probability: *probability,
            };
            let what = format!(
                "EIO on {op} of {} on {} (probability {probability})",
                shown_path(path),
                label(node, &n)
            );
            let (on, off) = disk_rule_window(n, rule);
            (what, on, off)
        }
        FaultKind::DiskFull { node, free_bytes } => {
            let n = resolve(s, node, rng, &[]);
            let used = s.disk_used(&n).unwrap_or(0);
            (
                format!(
                    "disk of {} full after {free_bytes} more bytes ({used} used)",
                    label(node, &n)
                ),
                vec![Fault::DiskCapacity {
                    node: n.clone(),
                    bytes: Some(used + free_bytes),
                }],
                vec![
                    Fault::DiskCapacity {
                        node: n.clone(),
                        bytes: None,
                    },
                    Fault::Revive(n),
                ],
            )
        }
        FaultKind::Bitflip {
            node,
            path,
            probability,
        } => {
            let n = resolve(s, node, rng, &[]);
            let rule = FaultRule {
                fault: DiskFault::ReadBitFlip,
                prefix: disk_path(path),
                probability: *probability,
            };
            let what = format!(
                "bit flips reading {} on {} (probability {probability})",
                shown_path(path),
                label(node, &n)
            );
            let (on, off) = disk_rule_window(n, rule);
            (what, on, off)
        }
        FaultKind::LyingFsync {
            node,
            power_loss_at_end,
        } => {
            let n = resolve(s, node, rng, &[]);
            let rule = FaultRule::always(DiskFault::SyncLies, "");
            let mut undo = vec![Fault::RemoveDiskFault {
                node: n.clone(),
                rule: rule.clone(),
            }];
            if *power_loss_at_end {
                undo.push(Fault::Crash {
                    node: n.clone(),
                    model: CrashModel::LoseAll,
                });
                undo.push(Fault::Restart(n.clone()));
            }
            let then = if *power_loss_at_end {
                ", then power loss"
            } else {
                ""
            };
            (
                format!("fsync lies on {}{then}", label(node, &n)),
                vec![Fault::DiskFault { node: n, rule }],
                undo,
            )
        }
        FaultKind::LinkLatency { a, b, latency_ms } => {
            let x = resolve(s, a, rng, &[]);
            let y = resolve(s, b, rng, std::slice::from_ref(&x));
            let latency = |ms| Fault::LinkLatency {
                a: x.clone(),
                b: y.clone(),
                latency: Duration::from_millis(ms),
            };
            (
                format!(
                    "latency {latency_ms} ms between {} and {}",
                    label(a, &x),
                    label(b, &y)
                ),
                vec![latency(*latency_ms)],
                vec![latency(DEFAULT_LINK_LATENCY_MS)],
            )
        }
        FaultKind::CrashAll => (
            "power loss of every member".to_string(),
            names
                .iter()
                .map(|n| Fault::Crash {
                    node: n.clone(),
                    model: CrashModel::power_loss(),
                })
                .collect(),
            names.iter().map(|n| Fault::Restart(n.clone())).collect(),
        ),
        FaultKind::SlowFsync {
            node,
            p50_ms,
            p99_ms,
            path,
        } => {
            let n = resolve(s, node, rng, &[]);
            let model = LatencyModel::LogNormal {
                p50: Duration::from_millis(*p50_ms),
                p99: Duration::from_millis(*p99_ms),
            };
            let (on, off) = if path.is_empty() {
                (
                    Fault::DiskLatency {
                        node: n.clone(),
                        model,
                    },
                    Fault::DiskLatency {
                        node: n.clone(),
                        model: LatencyModel::healthy(),
                    },
                )
            } else {
                let prefix = disk_path(path);
                (
                    Fault::PathLatency {
                        node: n.clone(),
                        prefix: prefix.clone(),
                        model: Some(model),
                    },
                    Fault::PathLatency {
                        node: n.clone(),
                        prefix,
                        model: None,
                    },
                )
            };
            let files = if path.is_empty() {
                String::new()
            } else {
                format!(" of {path}")
            };
            (
                format!(
                    "slow fdatasync{files} on {}: p50 {p50_ms} ms, p99 {p99_ms} ms",
                    label(node, &n)
                ),
                vec![on],
                vec![off],
            )
        }
        FaultKind::Pause { node } => {
            let n = resolve(s, node, rng, &[]);
            (
                format!("pause {}", label(node, &n)),
                vec![Fault::Pause(n.clone())],
                vec![Fault::Resume(n)],
            )
        }
        FaultKind::WatchSendStall { node } => {
            let n = resolve(s, node, rng, &[]);
            let stall = |stalled| Fault::WatchSendStall {
                node: n.clone(),
                stalled,
            };
            (
                format!("stall watch sends on {}", label(node, &n)),
                vec![stall(true)],
                vec![stall(false)],
            )
        }
        FaultKind::CrashInCompaction { node } => {
            let n = resolve(s, node, rng, &[]);
            let arm = |armed| Fault::CrashInCompaction {
                node: n.clone(),
                armed,
            };
            (
                format!("stop {} in its next compaction", label(node, &n)),
                vec![arm(true)],
                vec![arm(false), Fault::Revive(n.clone())],
            )
        }
        FaultKind::Clock {
            node,
            skew_ms,
            drift_ppm,
        } => {
            let n = resolve(s, node, rng, &[]);
            let clock = |skew_ms, drift_ppm| Fault::Clock {
                node: n.clone(),
                clock: NodeClock { skew_ms, drift_ppm },
            };
            (
                format!(
                    "clock of {}: step {skew_ms} ms, drift {drift_ppm} ppm",
                    label(node, &n)
                ),
                vec![clock(*skew_ms, *drift_ppm)],
                vec![clock(0, 0)],
            )
        }
        FaultKind::RestartAs { node, release } => {
            // A `follower` of a roll is one not yet on the release.
            let done: Vec<String> = names
                .iter()
                .filter(|m| s.release_of(m).as_deref() == Some(release.as_str()))
                .cloned()
                .collect();
            let n = resolve(s, node, rng, &done);
            (
                format!("restart {} as etcd {release}", label(node, &n)),
                vec![Fault::RestartAs {
                    node: n,
                    release: release.clone(),
                }],
                Vec::new(),
            )
        }
        FaultKind::Compact { .. }
        | FaultKind::Downgrade { .. }
        | FaultKind::ProbeHealth { .. }
        | FaultKind::Defrag { .. }
        | FaultKind::RecoverNospace
        | FaultKind::ReplaceMember { .. }
        | FaultKind::AddLearnerCutOff => crate::operator::start(s, f, index, rng, ctx)?,
    };
    for fault in faults {
        s.apply(fault)
            .with_context(|| format!("apply fault {index}: {what}"))?;
    }
    Ok((what, Active { undo, index }))
}

/// Undoes an applied fault.
pub fn undo(s: &mut dyn Cluster, a: Active) -> anyhow::Result<usize> {
    for f in a.undo {
        s.apply(f)
            .with_context(|| format!("undo fault {}", a.index))?;
    }
    Ok(a.index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn milder_faults_halve_their_intensity_and_stop_at_none() {
        let f = FaultKind::FlakyLinks {
            probability: 0.2,
            latency_ms: 40,
        };
        assert_eq!(
            f.milder(),
            Some(FaultKind::FlakyLinks {
                probability: 0.1,
                latency_ms: 20
            })
        );
        let mut g = FaultKind::SlowFsync {
            node: "leader".into(),
            p50_ms: 1300,
            p99_ms: 2000,
            path: String::new(),
        };
        let mut steps = 0;
        while let Some(m) = g.milder() {
            g = m;
            steps += 1;
            assert!(steps < 20, "never stops: {g:?}");
        }
        assert!(steps > 5, "{steps}");
        assert_eq!(FaultKind::CrashAll.milder(), None);
    }

    #[test]
    fn schedules_are_data() {
        let s = FaultSchedule {
            faults: vec![
                ScheduledFault {
                    at_ms: 1000,
                    duration_ms: 2000,
                    fault: FaultKind::SlowFsync {
                        node: "leader".into(),
                        p50_ms: 1300,
                        p99_ms: 2000,
                        path: String::new(),
                    },
                },
                ScheduledFault {
                    at_ms: 5000,
                    duration_ms: 100,
                    fault: FaultKind::CrashAll,
                },
            ],
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""kind":"slow-fsync""#), "{text}");
        let back: FaultSchedule = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert!(s.validate(3).is_ok());
        assert_eq!(s.end_ms(), 5100);
        let bad = FaultSchedule {
            faults: vec![ScheduledFault {
                at_ms: 0,
                duration_ms: 1,
                fault: FaultKind::PartitionMinority {
                    nodes: vec!["m0".into(), "m1".into()],
                },
            }],
        };
        assert!(bad.validate(3).is_err());
    }

    #[test]
    fn every_kind_of_the_table_is_a_kind_a_schedule_can_name() {
        for (kind, _, _, _) in FAULT_KINDS {
            let text = format!(r#"{{"kind": "{kind}"}}"#);
            let err = serde_json::from_str::<FaultKind>(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{kind}: {err}");
        }
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&fault_kinds_table()),
            "README's fault table is not `etcd-sim faults`'s output; regenerate it"
        );
    }

    #[test]
    fn every_disk_and_link_fault_can_be_written_in_a_schedule_file() {
        let text = r#"{"faults": [
            {"at_ms": 100, "duration_ms": 1000, "fault": {"kind": "disk-eio", "node": "leader", "op": "fsync", "path": "wal"}},
            {"at_ms": 200, "duration_ms": 1000, "fault": {"kind": "disk-eio", "node": "m1", "op": "write", "probability": 0.5}},
            {"at_ms": 300, "duration_ms": 1000, "fault": {"kind": "disk-full", "node": "follower", "free_bytes": 4096}},
            {"at_ms": 400, "duration_ms": 1000, "fault": {"kind": "bitflip", "node": "m2", "path": "backend"}},
            {"at_ms": 500, "duration_ms": 1000, "fault": {"kind": "lying-fsync", "node": "m0"}},
            {"at_ms": 600, "duration_ms": 1000, "fault": {"kind": "link-latency", "a": "m0", "b": "m1", "latency_ms": 40}},
            {"at_ms": 700, "duration_ms": 1000, "fault": {"kind": "crash", "node": "m1", "model": "lose-all"}},
            {"at_ms": 800, "duration_ms": 1000, "fault": {"kind": "crash", "node": "m2"}},
            {"at_ms": 900, "duration_ms": 1000, "fault": {"kind": "slow-fsync", "node": "m0", "p50_ms": 100, "p99_ms": 400, "path": "backend"}}
        ]}"#;
        let s: FaultSchedule = serde_json::from_str(text).expect("parses");
        s.validate(3).expect("valid");
        assert_eq!(
            s.faults[6].fault,
            FaultKind::Crash {
                node: "m1".into(),
                model: CrashSurvival::LoseAll
            }
        );
        assert_eq!(
            s.faults[7].fault,
            FaultKind::Crash {
                node: "m2".into(),
                model: CrashSurvival::Torn4k
            }
        );
        let back: FaultSchedule =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("round trip");
        assert_eq!(back, s);
        for bad in [
            r#"{"kind": "disk-eio", "node": "m0", "op": "trim"}"#,
            r#"{"kind": "bitflip", "node": "m0", "probability": 2.0}"#,
            r#"{"kind": "link-latency", "a": "m0", "b": "m9", "latency_ms": 1}"#,
        ] {
            let entry =
                format!(r#"{{"faults": [{{"at_ms": 0, "duration_ms": 1, "fault": {bad}}}]}}"#);
            let s: FaultSchedule = serde_json::from_str(&entry).expect("parses");
            assert!(s.validate(3).is_err(), "{bad} must be refused");
        }
        assert_eq!(
            disk_path("wal"),
            Path::new(sim::DATA_DIR).join("member").join("wal")
        );
        assert_eq!(disk_path(""), std::path::PathBuf::new());
    }

    #[test]
    fn windows_do_not_overlap_and_follow_the_seed() {
        let draw = |seed| {
            windows(
                &mut ChaCha8Rng::seed_from_u64(seed),
                3,
                1000,
                14000,
                (1000, 3000),
                1500,
            )
        };
        let w = draw(1);
        assert_eq!(w, draw(1));
        assert_ne!(w, draw(2));
        for pair in w.windows(2) {
            assert!(pair[0].0 + pair[0].1 < pair[1].0, "{w:?}");
        }
        assert!(
            w.iter().all(|(at, d)| *at >= 1000 && at + d <= 14000),
            "{w:?}"
        );
    }
}
