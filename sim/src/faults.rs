//! The fault dispatcher: what a scenario can do to the world at a simulated time, immediately
//! ([`Simulation::apply`] and the helpers) or on a schedule ([`Simulation::schedule`]).
//!
//! Owns: the [`Fault`] vocabulary and sending each fault to the module that models its source
//! of nondeterminism, each opening with its fault model and guarantees: the network
//! ([`crate::net`]: partitions, loss, pauses; turmoil link latency), processes
//! (`crate::process`: crash, restart, restart as a release, pause, revive), disks
//! ([`crate::disk`]: crash models, latency, injected faults, capacity) and clocks
//! ([`crate::clock`]: drift and wall-clock steps), and the server's own test failpoints
//! (`etcd_server::failpoints`, set on the running member). Each applied fault is recorded in the trace
//! (`target: sim::fault`) and in `faults_applied`.
//!
//! Must never: model a fault itself (that belongs to its source's module), draw randomness
//! outside the seeded streams, or act on a host it does not know.

use crate::clock::NodeClock;
use crate::disk::{CrashModel, FaultRule, LatencyModel};
use crate::{SimError, Simulation};
use std::fmt;
use std::time::Duration;

/// Something a scenario does to the world.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Both directions between every host of `a` and every host of `b` blocked.
    Partition {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
    },
    /// Bytes from `from` hosts to `to` hosts blocked; the other direction flows.
    PartitionOneway {
        /// Senders.
        from: Vec<String>,
        /// Receivers.
        to: Vec<String>,
    },
    /// Every link from and to the node blocked (members and clients alike).
    Isolate(String),
    /// The listed groups cannot reach each other; hosts in no group reach everyone.
    Split(Vec<Vec<String>>),
    /// Removes every partition, isolation and link loss (not pauses, latency or disk faults).
    Heal,
    /// Fixed one-way latency on the links between `a` and `b` (both directions).
    LinkLatency {
        /// One end.
        a: String,
        /// Other end.
        b: String,
        /// Latency.
        latency: Duration,
    },
    /// Each write from `from` to `to` is delayed by a retransmission timeout with this chance.
    LinkLoss {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// Chance in [0, 1].
        probability: f64,
    },
    /// The node's process dies; its disk keeps what `model` lets survive.
    Crash {
        /// The member.
        node: String,
        /// What survives of unsynced data.
        model: CrashModel,
    },
    /// The member's software starts again on the same disk (after a crash, or as a kill and
    /// restart if it is running: then its page cache survives).
    Restart(String),
    /// The member is restarted on the same disk as another etcd release (a rolling upgrade
    /// or downgrade step: `--emulate-release`); it keeps that release from then on.
    RestartAs {
        /// The member.
        node: String,
        /// The release, e.g. `3.6.0`.
        release: String,
    },
    /// Freezes the node's network and disk syncs.
    Pause(String),
    /// Undoes `Pause`.
    Resume(String),
    /// Sets the node's simulated wall clock.
    Clock {
        /// The node.
        node: String,
        /// Skew and drift.
        clock: NodeClock,
    },
    /// Sets the member's fsync latency model (slow fsync, or healthy again).
    DiskLatency {
        /// The member.
        node: String,
        /// The new model.
        model: LatencyModel,
    },
    /// Sets (`Some`) or removes (`None`) the sync latency of the member's files under
    /// `prefix` (e.g. only the backend's).
    PathLatency {
        /// The member.
        node: String,
        /// Path prefix.
        prefix: std::path::PathBuf,
        /// The model, or back to the disk's.
        model: Option<LatencyModel>,
    },
    /// Switches a disk fault on.
    DiskFault {
        /// The member.
        node: String,
        /// The rule.
        rule: FaultRule,
    },
    /// Switches off the member's disk fault rules equal to `rule`.
    RemoveDiskFault {
        /// The member.
        node: String,
        /// The rule to remove.
        rule: FaultRule,
    },
    /// Switches every disk fault of the member off.
    ClearDiskFaults(String),
    /// Restarts the member on its disk if its process has ended on its own (a fatal storage
    /// error, a refused start); a running member is left alone.
    Revive(String),
    /// Holds up (`stalled`) or releases the member's watch streams' sending: the server's
    /// `watch-send` failpoint (etcd's `beforeSendWatchResponse`). A member started meanwhile
    /// starts with it released.
    WatchSendStall {
        /// The member.
        node: String,
        /// Held up, or released.
        stalled: bool,
    },
    /// Arms (`armed`) or disarms the member's `compact-before-set-finished` failpoint: armed,
    /// its next compaction stops it before the compaction's finished mark is committed
    /// (etcd's `compactBeforeSetFinishedCompact` with `panic`). A member started meanwhile
    /// starts with it disarmed; [`Fault::Revive`] restarts a member that has stopped.
    CrashInCompaction {
        /// The member.
        node: String,
        /// Armed, or disarmed.
        armed: bool,
    },
    /// Sets the member's disk capacity (`None`: unlimited).
    DiskCapacity {
        /// The member.
        node: String,
        /// Bytes.
        bytes: Option<u64>,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Simulation {
    /// Applies `fault` now.
    pub fn apply(&mut self, fault: Fault) -> Result<(), SimError> {
        self.record_fault(fault.to_string());
        match fault {
            Fault::Partition { a, b } => {
                for x in &a {
                    for y in &b {
                        self.links().block(x, y);
                        self.links().block(y, x);
                    }
                }
            }
            Fault::PartitionOneway { from, to } => {
                for x in &from {
                    for y in &to {
                        self.links().block(x, y);
                    }
                }
            }
            Fault::Isolate(node) => self.links().isolate(&node),
            Fault::Split(groups) => {
                for (i, g) in groups.iter().enumerate() {
                    for h in groups.iter().skip(i + 1) {
                        for x in g {
                            for y in h {
                                self.links().block(x, y);
                                self.links().block(y, x);
                            }
                        }
                    }
                }
            }
            Fault::Heal => self.links().heal_all(),
            Fault::LinkLatency { a, b, latency } => {
                self.turmoil()
                    .set_link_latency(a.as_str(), b.as_str(), latency);
            }
            Fault::LinkLoss {
                from,
                to,
                probability,
            } => self.links().set_loss(&from, &to, probability),
            Fault::Crash { node, model } => self.crash_process(&node, model)?,
            Fault::Restart(node) => self.restart_process(&node)?,
            Fault::RestartAs { node, release } => self.restart_process_as(&node, &release)?,
            Fault::Pause(node) => self.pause_process(&node),
            Fault::Resume(node) => self.resume_process(&node),
            Fault::Clock { node, clock } => self.set_node_clock(&node, clock)?,
            Fault::DiskLatency { node, model } => self.disk(&node)?.set_latency(model),
            Fault::PathLatency {
                node,
                prefix,
                model,
            } => self.disk(&node)?.set_path_latency(&prefix, model),
            Fault::DiskFault { node, rule } => {
                self.disk(&node)?.inject(rule);
            }
            Fault::RemoveDiskFault { node, rule } => self.disk(&node)?.remove_rule(&rule),
            Fault::ClearDiskFaults(node) => self.disk(&node)?.clear_faults(),
            Fault::Revive(node) => self.revive_process(&node)?,
            Fault::WatchSendStall { node, stalled } => {
                if let Some(server) = self.server(&node) {
                    server.failpoints().stall_watch_sends(stalled);
                }
            }
            Fault::CrashInCompaction { node, armed } => {
                if let Some(server) = self.server(&node) {
                    server.failpoints().crash_in_compaction(armed);
                }
            }
            Fault::DiskCapacity { node, bytes } => self.disk(&node)?.set_capacity(bytes),
        }
        Ok(())
    }

    /// Symmetric partition between two groups of hosts.
    pub fn partition(&mut self, a: &[&str], b: &[&str]) -> Result<(), SimError> {
        self.apply(Fault::Partition {
            a: names(a),
            b: names(b),
        })
    }

    /// One-way partition: `from` cannot send to `to`.
    pub fn partition_oneway(&mut self, from: &[&str], to: &[&str]) -> Result<(), SimError> {
        self.apply(Fault::PartitionOneway {
            from: names(from),
            to: names(to),
        })
    }

    /// Cuts `node` off from every other host.
    pub fn isolate(&mut self, node: &str) -> Result<(), SimError> {
        self.apply(Fault::Isolate(node.into()))
    }

    /// Splits hosts into groups that cannot reach each other.
    pub fn split(&mut self, groups: &[&[&str]]) -> Result<(), SimError> {
        self.apply(Fault::Split(groups.iter().map(|g| names(g)).collect()))
    }

    /// Removes partitions, isolations and link loss.
    pub fn heal(&mut self) -> Result<(), SimError> {
        self.apply(Fault::Heal)
    }

    /// Power loss of one member (torn prefix, 4 KiB sectors).
    pub fn power_loss(&mut self, node: &str) -> Result<(), SimError> {
        self.apply(Fault::Crash {
            node: node.into(),
            model: CrashModel::power_loss(),
        })
    }

    /// Power loss of every member at the same simulated instant.
    pub fn power_loss_all(&mut self) -> Result<(), SimError> {
        for n in self.member_names() {
            self.power_loss(&n)?;
        }
        Ok(())
    }

    /// Restarts a member on its disk.
    pub fn restart(&mut self, node: &str) -> Result<(), SimError> {
        self.apply(Fault::Restart(node.into()))
    }

    /// Pauses a node (network and disk syncs).
    pub fn pause(&mut self, node: &str) -> Result<(), SimError> {
        self.apply(Fault::Pause(node.into()))
    }

    /// Resumes a paused node.
    pub fn resume(&mut self, node: &str) -> Result<(), SimError> {
        self.apply(Fault::Resume(node.into()))
    }

    /// Sets a member's fsync latency: e.g. `LatencyModel::slow(2 s)` for slow fsync,
    /// `LatencyModel::healthy()` to undo it.
    pub fn set_disk_latency(&mut self, node: &str, model: LatencyModel) -> Result<(), SimError> {
        self.apply(Fault::DiskLatency {
            node: node.into(),
            model,
        })
    }
}
