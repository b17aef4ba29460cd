//! The etcd model: revisions, MVCC reads at past revisions, compaction, leases, and
//! transactions with nested operations; exact response matching including header revisions.
//!
//! Owns: etcd semantics for the checker. Must never depend on the server crate (its request and
//! response types are our own, in `types`), nor know about the search.

mod types;

pub use types::*;
