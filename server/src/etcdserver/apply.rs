//! Applying committed raft entries to the MVCC store (etcd's `apply.go`, KV part).
//!
//! Owns: decoding an entry's `InternalRaftRequest`, running it against the store, recording the
//! consistent index in the same backend batch, and the deterministic checks etcd makes at
//! apply time (e.g. a put's lease must exist).
//!
//! Must never: read a clock or an RNG (every member must reach the same state from the same
//! entries), or panic on an entry's bytes.

use super::request::{ApplyResult, InternalRaftRequest, Op, OpResponse};
use super::ServerError;
use crate::membership::{save_member, Cluster};
use crate::mvcc::watchable::WatchHub;
use crate::mvcc::Store;
use etcd_client::proto::PbTxnOpRequest;
use prost::Message as _;
use raft::eraftpb::Entry;
use std::sync::{Arc, Mutex};

use super::raft_node::lock;

/// Applies entries to the shared store and member table.
#[derive(Clone)]
pub struct Applier {
    /// The store, shared with the API's reads.
    pub store: Arc<Mutex<Store>>,
    /// The member table, shared with the API.
    pub cluster: Arc<Mutex<Cluster>>,
    /// Watchers, told about each applied revision's events.
    pub hub: Arc<WatchHub>,
}

impl Applier {
    /// Applies one normal entry; returns the proposer's request id and result, if any.
    pub fn apply_entry(&self, e: &Entry) -> Result<Option<(u64, ApplyResult)>, ServerError> {
        let mut store = lock(&self.store);
        if e.data.is_empty() {
            store.set_consistent_index(e.index, e.term);
            return Ok(None);
        }
        let req = match InternalRaftRequest::decode(&e.data[..]) {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "cannot decode raft entry; skipping");
                store.set_consistent_index(e.index, e.term);
                return Ok(None);
            }
        };
        let result = match req.op {
            None => Err(tonic::Status::invalid_argument("etcdserver: empty request")),
            Some(Op::MemberAttrSet(a)) => {
                let mut cluster = lock(&self.cluster);
                match cluster.set_attributes(&a) {
                    Some(m) => {
                        save_member(store.backend_mut(), m);
                        Ok(OpResponse::MemberAttrSet)
                    }
                    None => Err(tonic::Status::not_found("etcdserver: member not found")),
                }
            }
            Some(op) => apply_op(&mut store, op),
        };
        let events = store.take_events();
        if !events.is_empty() {
            self.hub.notify(store.current_revision(), &events);
        }
        store.set_consistent_index(e.index, e.term);
        Ok(Some((req.id, result)))
    }

    /// Records an entry as applied without running anything.
    pub fn mark_applied(&self, index: u64, term: u64) -> Result<(), ServerError> {
        lock(&self.store).set_consistent_index(index, term);
        Ok(())
    }

    /// Commits the backend batch (always when `force`, else when the batch limit is reached).
    pub fn commit(&self, force: bool) -> Result<(), ServerError> {
        Ok(lock(&self.store).commit(force)?)
    }

    /// Replaces the store's state with a snapshot's; returns the store's consistent index
    /// afterwards (at least `index`).
    pub fn restore(&self, data: &[u8], index: u64, term: u64) -> Result<u64, ServerError> {
        let mut store = lock(&self.store);
        store.restore_snapshot(data, index, term)?;
        store.commit(true)?;
        self.hub.unsync_all();
        Ok(store.consistent_index())
    }
}

fn apply_op(store: &mut Store, op: Op) -> ApplyResult {
    if lease_of(&op).is_some() {
        // Leases arrive with the lease issue; until then no lease exists.
        return Err(tonic::Status::not_found(
            "etcdserver: requested lease not found",
        ));
    }
    let r = match op {
        Op::Put(r) => store.put(&r).map(OpResponse::Put),
        Op::DeleteRange(r) => store.delete_range(&r).map(OpResponse::DeleteRange),
        Op::Txn(r) => store.txn(&r).map(OpResponse::Txn),
        Op::Compaction(r) => store.compact(&r).map(OpResponse::Compaction),
        Op::MemberAttrSet(_) => {
            return Err(tonic::Status::internal(
                "member attributes are not a KV request",
            ))
        }
    };
    r.map_err(|e| e.to_status())
}

/// The first non-zero lease a write names, if any (puts, and puts inside txns).
fn lease_of(op: &Op) -> Option<i64> {
    fn in_ops(ops: &[etcd_client::proto::PbTxnRequestOp]) -> Option<i64> {
        ops.iter().find_map(|o| match &o.request {
            Some(PbTxnOpRequest::RequestPut(p)) if p.lease != 0 => Some(p.lease),
            Some(PbTxnOpRequest::RequestTxn(t)) => {
                in_ops(&t.success).or_else(|| in_ops(&t.failure))
            }
            _ => None,
        })
    }
    match op {
        Op::Put(p) if p.lease != 0 => Some(p.lease),
        Op::Txn(t) => in_ops(&t.success).or_else(|| in_ops(&t.failure)),
        _ => None,
    }
}
