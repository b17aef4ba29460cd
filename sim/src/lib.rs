//! `sim`: the deterministic world around the real etcd-server (DESIGN.md §2–§4).
//!
//! Several members of one cluster run the unchanged `etcd_server::start` inside one process, on
//! turmoil hosts (`m0`, `m1`, ...: client URL `http://mN:2379`, peer URL `http://mN:2380`) with
//! simulated time, a simulated network ([`SimNetwork`] over turmoil TCP, so tonic and HTTP/2 run
//! for real) and a simulated disk per node ([`SimDisk`]: page cache vs durable bytes, fsync
//! latency from a per-node distribution, crashes that tear unsynced writes, directory-entry
//! durability, EIO/ENOSPC/bit flips). Client hosts run real tonic gRPC clients
//! ([`ClientCtx`]). Every random choice derives from one seed ([`Seeds`]: one `ChaCha8Rng`
//! stream per concern; tokio's own RNG is seeded by turmoil because the workspace builds with
//! `--cfg tokio_unstable`), and everything that happens is written to a JSON-lines [`Trace`]
//! stamped with simulated time, whose hash proves a replay identical.
//!
//! A scenario:
//! ```no_run
//! use sim::{SimConfig, Simulation, LatencyModel};
//! use std::time::Duration;
//! let mut s = Simulation::new(SimConfig::new(42, 3)).unwrap();
//! let leader = s.await_leader(Duration::from_secs(10)).unwrap();
//! s.set_disk_latency(&leader, LatencyModel::slow(Duration::from_secs(2))).unwrap();
//! s.run_for(Duration::from_secs(5)).unwrap();
//! println!("leader changes seen by {leader}: {}", s.leader_changes(&leader));
//! println!("trace_hash {}", s.trace_hash());
//! ```
//!
//! Owns: everything simulated. Must never: use the wall clock, `thread_rng`, std threads,
//! `spawn_blocking`, or iterate a std `HashMap` into output (`clippy.toml` enforces the first
//! four; the code uses `BTreeMap`s).

pub mod client;
pub mod clock;
pub mod demo;
pub mod disk;
mod error;
pub mod faults;
pub mod net;
mod process;
pub mod rng;
pub mod trace;
pub mod workload;
mod world;

pub use client::ClientCtx;
pub use clock::NodeClock;
pub use disk::{CrashModel, DiskFault, DiskStats, FaultId, FaultRule, LatencyModel, SimDisk};
pub use error::SimError;
pub use faults::Fault;
pub use net::{LinkFaults, SimNetwork};
pub use rng::Seeds;
pub use trace::Trace;
pub use world::{SimConfig, Simulation, CLIENT_PORT, DATA_DIR, PEER_PORT};
