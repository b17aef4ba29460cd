//! The raft log storage raft-rs reads from: its in-memory log plus our latest snapshot.
//!
//! Owns: `NodeStorage`, which wraps raft-rs's `MemStorage` (entries since the last compaction,
//! hard state, conf state) and the newest snapshot's metadata. The data of a snapshot sent to
//! a lagging follower is the backend as it is at that moment (at or after the snapshot's
//! index), read on demand as etcd streams its db file, so no copy of the database is kept in
//! memory.
//!
//! Must never: write to disk; the WAL and the snapshotter are persisted by the raft loop before
//! anything reaches this storage.

use crate::mvcc::Store;
use raft::eraftpb::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::sync::{Arc, Mutex};

/// raft-rs storage: the in-memory log plus the latest snapshot's metadata.
pub struct NodeStorage {
    /// The in-memory log.
    pub mem: MemStorage,
    /// The newest snapshot this member has taken or received (metadata only).
    pub snapshot: Snapshot,
    /// The store whose content a sent snapshot carries.
    pub store: Arc<Mutex<Store>>,
}

impl Storage for NodeStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let meta = self.snapshot.get_metadata();
        if meta.index == 0 || meta.index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let data = match super::lock(&self.store).snapshot_data() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the backend for a snapshot; retrying later");
                return Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ));
            }
        };
        let mut snap = self.snapshot.clone();
        snap.set_data(data.into());
        Ok(snap)
    }
}
