//! etcd-sim: the scenario harness and the `etcd-sim` CLI (DESIGN.md §7).
//!
//! Modules:
//! - [`workload`]: the etcd and kubernetes traffic profiles and watchers on simulated clients.
//! - [`exec`]: requests in the checker's etcd vocabulary executed through `etcd-client`.
//! - [`history`]: what clients observed (records, watch logs) and the checker's history.
//! - [`nemesis`]: fault schedules as data, applied through the simulator's fault API.
//! - [`catalogue`]: the named scenarios with their expectations.
//! - [`runner`]: one scenario on one seed: timeline, liveness, collection.
//! - [`checks`]: linearizability, serializable reads, watch guarantees.
//! - [`disk_sweep`]: the disk latency sweep scenario (table and SVG plot).
//! - [`report`]: `summary.json`, the verdict, report directories, tables.
//! - [`cli`]: `list`, `run`, `replay`, `sweep`.
//! - [`bugs`]: the known-bug catalogue (`etcd-sim bugs`) and `etcd-sim hunt`.
//! - [`bench`], [`stats`]: the real-mode load generator and latency statistics.
//! - [`smoke`]: the real-mode smoke job (`etcd-sim smoke`): a local 3-member cluster on
//!   loopback under a checked workload.

pub mod bench;
pub mod bugs;
pub mod catalogue;
pub mod checks;
pub mod cli;
pub mod disk_sweep;
pub mod downgrade;
pub mod exec;
pub mod history;
pub mod nemesis;
pub mod operator;
pub mod report;
pub mod runner;
pub mod signature;
pub mod smoke;
pub mod stats;
pub mod workload;
