//! etcd-sim: the scenario harness and the `etcd-sim` CLI.
//!
//! Modules:
//! - [`bench`]: the load generator (`etcd-sim bench`) against any etcd-compatible endpoints.
//! - [`smoke`]: the current main job: a local 3-member cluster of our server under a checked
//!   workload (replaced by the scenario catalogue once the simulator lands).
//! - [`stats`]: latency percentiles.

pub mod bench;
pub mod smoke;
pub mod stats;
