//! etcd-server: an etcd-compatible server built like etcd's own `server/`.
//!
//! Module map (mirrors etcd so etcd contributors find their way):
//! - [`seam`]: the only door to disk, network, clock and randomness (real or simulated).
//! - [`wal`], [`snap`]: the raft write-ahead log and snapshot files.
//! - [`backend`]: redb on the seam's disk, etcd's buckets as tables.
//! - [`mvcc`]: revisions, key index, Range/Put/DeleteRange/Txn/Compact semantics.

pub mod alarm;
pub mod api;
pub mod backend;
pub mod config;
pub mod defects;
pub mod etcdserver;
pub mod failpoints;
pub mod features;
pub mod fileutil;
pub mod lease;
pub mod membership;
pub mod mvcc;
pub mod rafthttp;
pub mod seam;
pub mod snap;
pub mod wal;

pub use config::Config;
pub use etcdserver::{start, EtcdServer, ServerError, ServerHandle};
