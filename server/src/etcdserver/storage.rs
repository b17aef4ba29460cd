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
    /// The snapshot sent to a lagging follower: the backend as it is now, labelled with the
    /// backend's own applied index and the configuration as of now (a member added after the
    /// last local snapshot must find itself in it, or raft refuses to restore it).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index == 0 {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "cannot build a snapshot ({what}); retrying later");
            raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
        };
        let (data, index) = {
            let store = super::lock(&self.store);
            let data = store
                .snapshot_data()
                .map_err(|e| unavailable("backend", &e))?;
            (data, store.consistent_index())
        };
        if index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let term = self.mem.term(index).map_err(|e| unavailable("term", &e))?;
        let mut conf_state = self.mem.initial_state()?.conf_state;
        conf_state.voters.sort_unstable();
        conf_state.learners.sort_unstable();
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        Ok(snap)
    }
}
