//! etcd-sim: the scenario harness and the `etcd-sim` CLI (DESIGN.md §7).
//!
//! Modules:
//! - [`workload`]: the etcd and kubernetes traffic profiles and watchers on simulated clients.
//! - [`exec`]: requests in the checker's etcd vocabulary executed through `etcd-client`.
//! - [`history`]: what clients observed (records, watch logs) and the checker's history.
//! - [`nemesis`]: fault schedules as data, applied through the simulator's fault API.
//! - [`catalogue`]: the named scenarios with their expectations.
//! - [`cluster`]: what the harness asks of a world, for the simulation and real processes.
//! - [`driver`]: stepping a cluster and observing its leaders.
//! - [`timeline`]: the phases of a run: first leader, traffic, faults, liveness, final reads.
//! - [`runner`]: one scenario on one seed, in either world.
//! - [`real`]: real mode: member processes (ours or real etcd) on loopback behind proxies.
//! - [`checks`]: linearizability, serializable reads, watch guarantees.
//! - [`disk_sweep`]: the disk latency sweep scenario (table and SVG plot).
//! - [`report`]: `summary.json`, the verdict, report directories, tables.
//! - [`cli`]: `list`, `run`, `replay`, `sweep`.
//! - [`bugs`]: the known-bug catalogue (`etcd-sim bugs`) and `etcd-sim hunt`.
//! - [`shrink`]: `etcd-sim shrink`: a failing run cut down to the smallest that fails alike.
//! - [`qualify`]: `etcd-sim qualify`: release qualification in shards, and their merge.
//! - [`plot`], [`progress`]: charts (plotters) and progress bars (indicatif).
//! - [`bench`], [`stats`]: the real-mode load generator and latency statistics.

pub mod bench;
pub mod bugs;
pub mod catalogue;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod disk_sweep;
pub mod downgrade;
pub mod driver;
pub mod exec;
pub mod history;
pub mod nemesis;
pub mod operator;
mod parallel;
pub mod plot;
pub mod progress;
pub mod qualify;
pub mod real;
pub mod report;
pub mod runner;
pub mod shrink;
pub mod signature;
pub mod stats;
pub mod timeline;
pub mod workload;
