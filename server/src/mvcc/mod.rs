//! MVCC: the multi-version key-value store over the backend, like etcd's
//! `server/storage/mvcc` plus the KV part of its applier (`apply.go`/`txn.go`).
//!
//! Owns: revisions `(main, sub)`; the `key` bucket (etcd's 17-byte revision keys, `t` suffix for
//! tombstones, `mvccpb.KeyValue` values); the in-memory key index with generations (rebuilt
//! from the `key` bucket on open); Range/Put/DeleteRange/Txn/Compact with etcd's semantics and
//! errors; compaction marks in `meta`; HashKV; the raft snapshot of the backend.
//!
//! Must never: read a clock or an RNG or iterate a hash map while applying (every member must
//! reach byte-identical state from the same entries), partly apply a failing request, or panic
//! on a request or on stored bytes. Request validation that etcd does before proposing lives in
//! [`validate`]; lease existence is checked only through an installed [`LeaseChecker`].

mod compact;
pub mod consts;
mod error;
mod exec;
pub mod history;
mod key_index;
mod ops;
mod revision;
mod store;
mod txn;
pub mod validate;
pub mod watchable;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_persist;
#[cfg(test)]
mod tests_txn;
#[cfg(test)]
mod tests_watch;

pub use crate::backend::BackendOptions;
pub use error::{messages, MvccError};
pub use revision::{is_tombstone, Revision};
pub use store::{KeyValueHash, Store, StoreDefects};
pub use txn::is_txn_readonly;
pub use validate::{validate_delete, validate_put, validate_range, validate_txn};

/// Answers whether a lease exists (installed by the lease module; see
/// [`Store::set_lease_checker`]).
pub type LeaseChecker = dyn Fn(i64) -> bool + Send + Sync;
