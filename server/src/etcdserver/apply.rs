//! Applying committed raft entries (etcd's `apply.go`): KV requests to the MVCC store, lease
//! grants, revokes and checkpoints to the lessor, member attributes to the member table.
//!
//! Owns: decoding an entry's `InternalRaftRequest`, running it, recording the consistent index
//! in the same backend batch, and handing each applied revision's events to the lessor (key
//! attachments) and the watch hub.
//!
//! Must never: let a clock or an RNG change replicated state (the only clock reads set the
//! leader's local lease expiry and checkpoint schedule), or panic on an entry's bytes. Lock order: store, then lessor,
//! then the watch hub or the member table.

use super::request::{ApplyResult, InternalRaftRequest, Op, OpResponse};
use super::version::{
    load_versions, set_cluster_version, set_downgrade, sync_storage_version, Release, Version,
    VersionState,
};
use super::ServerError;
use crate::alarm::{
    alarm_name, no_space, Alarms, ACTION_ACTIVATE, ACTION_DEACTIVATE, CORRUPT, NOSPACE,
};
use crate::lease::Lessor;
use crate::membership::{save_member, Cluster};
use crate::mvcc::watchable::WatchHub;
use crate::mvcc::Store;
use etcd_api::etcdserverpb as pb;
use prost::Message as _;
use raft::eraftpb::Entry;
use std::sync::{Arc, Mutex};

use super::raft_node::lock;

/// Applies entries to the shared store, lessor and member table.
#[derive(Clone)]
pub struct Applier {
    /// The member's clock (only the leader's lease expiry reads it).
    pub clock: Arc<dyn crate::seam::Clock>,
    /// The store, shared with the API's reads.
    pub store: Arc<Mutex<Store>>,
    /// Leases.
    pub lessor: Arc<Mutex<Lessor>>,
    /// The member table, shared with the API.
    pub cluster: Arc<Mutex<Cluster>>,
    /// Watchers, told about each applied revision's events.
    pub hub: Arc<WatchHub>,
    /// Active alarms (a NOSPACE alarm caps the applier).
    pub alarms: Arc<Mutex<Alarms>>,
    /// Cluster and storage versions, shared with the API and the version monitor.
    pub versions: Arc<Mutex<VersionState>>,
    /// The release this member emulates (decides whether it keeps a storage version).
    pub release: Release,
    /// Set when the next apply round must end with a snapshot (a cluster version lowered by a
    /// downgrade: the WAL after it then holds no entry of the newer version).
    pub force_snapshot: Arc<std::sync::atomic::AtomicBool>,
    /// The member's disk: a backend commit waits out its syncs' latency here.
    pub disk: Arc<dyn crate::seam::Disk>,
    /// Where backend commit durations go.
    pub metrics: Arc<super::ServerMetrics>,
    /// Test defect `consistent-index-before-apply` (etcd 13766): see [`Applier::apply_entry`].
    pub index_before_apply: bool,
    /// Test defect `strip-txn-ranges-without-waiter` (etcd 18667): see [`Applier::apply_entry`].
    pub strip_ranges_without_waiter: bool,
    /// The member's test failpoints (`compact-before-set-finished` stops it in a compaction).
    pub failpoints: Arc<crate::failpoints::Failpoints>,
}

impl Applier {
    /// Applies one normal entry; returns the proposer's request id and result, if any.
    /// `awaited` tells whether a client of this member waits for request `id`'s answer.
    pub fn apply_entry(
        &self,
        e: &Entry,
        awaited: impl Fn(u64) -> bool,
    ) -> Result<Option<(u64, ApplyResult)>, ServerError> {
        let mut store = lock(&self.store);
        if e.data.is_empty() {
            store.set_consistent_index(e.index, e.term);
            return Ok(None);
        }
        let mut req = match InternalRaftRequest::decode(&e.data[..]) {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "cannot decode raft entry; skipping");
                store.set_consistent_index(e.index, e.term);
                return Ok(None);
            }
        };
        if self.index_before_apply {
            // etcd 13766: the index goes in before the writes, and a backend commit lands in
            // between (in etcd, the backend goroutine's periodic commit through its pre-commit
            // hook; here at every entry, so the window is open whenever a crash comes).
            store.set_consistent_index(e.index, e.term);
            store.commit(true)?;
        }
        if self.strip_ranges_without_waiter && !awaited(req.id) {
            // etcd 18667: no one here needs the answer, so the reads "need not" run, and
            // with them goes the check that refuses a read at a compacted or future revision.
            if let Some(Op::Txn(t)) = &mut req.op {
                remove_needless_range_reqs(t);
            }
        }
        let result = match req.op {
            None => Err(tonic::Status::invalid_argument("etcdserver: empty request")),
            Some(op) => self.apply_op(&mut store, op),
        };
        if matches!(result, Ok(OpResponse::Compaction(_)))
            && self.failpoints.fire_compact_before_set_finished()
        {
            // The batch holding the finished mark (and, in a fixed member, the whole
            // compaction) is never committed: the next start finds what a kill here leaves.
            return Err(ServerError::Failpoint("compactBeforeSetFinishedCompact"));
        }
        let events = store.take_events();
        if !events.is_empty() {
            lock(&self.lessor).observe(&events);
            self.hub.notify(store.current_revision(), &events);
        }
        store.set_consistent_index(e.index, e.term);
        Ok(Some((req.id, result)))
    }

    fn apply_op(&self, store: &mut Store, op: Op) -> ApplyResult {
        let kv = |e: crate::mvcc::MvccError| e.to_status();
        let header = |store: &Store| {
            Some(pb::ResponseHeader {
                revision: store.current_revision(),
                ..Default::default()
            })
        };
        if lock(&self.alarms).has(CORRUPT) && refused_when_corrupt(&op) {
            return Err(crate::alarm::corrupt());
        }
        if lock(&self.alarms).has(NOSPACE) && writes_data(&op) {
            return Err(no_space());
        }
        match op {
            Op::Put(r) => store.put(&r).map(OpResponse::Put).map_err(kv),
            Op::DeleteRange(r) => store
                .delete_range(&r)
                .map(OpResponse::DeleteRange)
                .map_err(kv),
            Op::Txn(r) => store.txn(&r).map(OpResponse::Txn).map_err(kv),
            Op::Compaction(r) => store.compact(&r).map(OpResponse::Compaction).map_err(kv),
            Op::LeaseGrant(r) => {
                let now = self.clock.now();
                let ttl = lock(&self.lessor)
                    .grant(store.backend_mut(), r.id, r.ttl, now)
                    .map_err(|e| e.to_status())?;
                Ok(OpResponse::LeaseGrant(pb::LeaseGrantResponse {
                    header: header(store),
                    id: r.id,
                    ttl,
                    error: String::new(),
                }))
            }
            Op::LeaseRevoke(r) => {
                let keys = lock(&self.lessor)
                    .keys_of(r.id)
                    .map_err(|e| e.to_status())?;
                if !keys.is_empty() {
                    // All of the lease's keys go in one revision, as one txn.
                    let deletes = keys
                        .into_iter()
                        .map(|key| pb::RequestOp {
                            request: Some(pb::request_op::Request::RequestDeleteRange(
                                pb::DeleteRangeRequest {
                                    key,
                                    range_end: Vec::new(),
                                    prev_kv: false,
                                },
                            )),
                        })
                        .collect();
                    let txn = pb::TxnRequest {
                        compare: Vec::new(),
                        success: deletes,
                        failure: Vec::new(),
                    };
                    store.txn(&txn).map_err(kv)?;
                }
                lock(&self.lessor).remove(store.backend_mut(), r.id);
                Ok(OpResponse::LeaseRevoke(pb::LeaseRevokeResponse {
                    header: header(store),
                }))
            }
            Op::LeaseCheckpoint(r) => {
                let now = self.clock.now();
                let mut lessor = lock(&self.lessor);
                for cp in r.checkpoints {
                    lessor.checkpoint(store.backend_mut(), cp.id, cp.remaining_ttl, now);
                }
                Ok(OpResponse::LeaseCheckpoint)
            }
            Op::Alarm(r) => {
                let mut alarms = lock(&self.alarms);
                let changed = match r.action {
                    ACTION_ACTIVATE => alarms.activate(store.backend_mut(), r.member_id, r.alarm),
                    ACTION_DEACTIVATE => {
                        alarms.deactivate(store.backend_mut(), r.member_id, r.alarm)
                    }
                    _ => false,
                };
                if changed {
                    tracing::warn!(
                        member = %format!("{:x}", r.member_id),
                        alarm = alarm_name(r.alarm),
                        action = if r.action == ACTION_ACTIVATE { "activate" } else { "deactivate" },
                        "alarm changed"
                    );
                }
                let alarms = if changed {
                    vec![pb::AlarmMember {
                        member_id: r.member_id,
                        alarm: r.alarm,
                    }]
                } else {
                    Vec::new()
                };
                Ok(OpResponse::Alarm(pb::AlarmResponse {
                    header: header(store),
                    alarms,
                }))
            }
            Op::MemberUpdate(u) => {
                let mut cluster = lock(&self.cluster);
                match cluster.members.iter_mut().find(|m| m.id == u.member_id) {
                    Some(m) => {
                        m.peer_urls = u.peer_urls;
                        save_member(store.backend_mut(), m);
                        Ok(OpResponse::Members(cluster.members.clone()))
                    }
                    None => Err(tonic::Status::not_found("etcdserver: member not found")),
                }
            }
            Op::MemberAttrSet(a) => {
                let mut cluster = lock(&self.cluster);
                match cluster.set_attributes(&a) {
                    Some(m) => {
                        save_member(store.backend_mut(), m);
                        Ok(OpResponse::MemberAttrSet)
                    }
                    None => Err(tonic::Status::not_found("etcdserver: member not found")),
                }
            }
            Op::ClusterVersionSet(r) => {
                // A version no release writes is skipped (logged), never a panic.
                let version = Version::parse(&r.ver).map_err(|e| {
                    tracing::error!(ver = %r.ver, error = %e, "cannot apply cluster version");
                    tonic::Status::invalid_argument(format!("etcdserver: {e}"))
                })?;
                let mut versions = lock(&self.versions);
                match versions.cluster {
                    Some(from) => {
                        tracing::info!(from = %from.major_minor(), to = %version.major_minor(), "updated cluster version")
                    }
                    None => {
                        tracing::info!(cluster_version = %version.major_minor(), "set initial cluster version")
                    }
                }
                // etcd 3.6's applierMembership.ClusterVersionSet (3.5 does not force one).
                let lowered = versions.cluster.filter(|prev| version.line() < *prev);
                if let Some(prev) = lowered.filter(|_| !self.release.is_3_5()) {
                    tracing::info!(prev_cluster_version = %prev, new_cluster_version = %version.line(), "Cluster version downgrade detected, forcing snapshot");
                    self.force_snapshot
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                set_cluster_version(store.backend_mut(), &mut versions, self.release, version);
                Ok(OpResponse::ClusterVersionSet)
            }
            Op::DowngradeInfoSet(r) => {
                let target = if r.enabled {
                    let target = Version::parse(&r.ver).map_err(|e| {
                        tracing::error!(ver = %r.ver, error = %e, "cannot apply downgrade target");
                        tonic::Status::invalid_argument(format!("etcdserver: {e}"))
                    })?;
                    Some(target.line())
                } else {
                    None
                };
                let mut versions = lock(&self.versions);
                set_downgrade(store.backend_mut(), &mut versions, target);
                Ok(OpResponse::DowngradeInfoSet)
            }
        }
    }

    /// Records an entry as applied without running anything.
    pub fn mark_applied(&self, index: u64, term: u64) -> Result<(), ServerError> {
        lock(&self.store).set_consistent_index(index, term);
        Ok(())
    }

    /// Commits the backend batch (always when `force`, else when the batch limit is reached).
    pub async fn commit(&self, force: bool) -> Result<(), ServerError> {
        let started = tokio::time::Instant::now();
        let committed = lock(&self.store).commit(force)?;
        self.settle_commit(committed, started).await;
        Ok(())
    }

    /// The periodic batch commit (in the background in real mode; see `Store::commit_batch`).
    pub async fn commit_batch(&self, force: bool) -> Result<(), ServerError> {
        let started = tokio::time::Instant::now();
        let committed = lock(&self.store).commit_batch(force)?;
        self.settle_commit(committed, started).await;
        Ok(())
    }

    /// After an inline commit: its syncs' latency (the simulator's; nothing in real mode,
    /// where the sync took it) and `etcd_disk_backend_commit_duration_seconds`. A commit the
    /// offload thread runs is not timed.
    async fn settle_commit(&self, committed: bool, started: tokio::time::Instant) {
        if committed {
            self.disk.settle_syncs().await;
            self.metrics.observe_backend_commit(started.elapsed());
        }
    }

    /// Replaces the store's state with a snapshot's; returns the store's consistent index
    /// afterwards (at least `index`). Leases are reloaded from it; watchers catch up.
    pub fn restore(&self, data: &[u8], index: u64, term: u64) -> Result<u64, ServerError> {
        let mut store = lock(&self.store);
        store.restore_snapshot(data, index, term)?;
        store.commit(true)?;
        let mut lessor = lock(&self.lessor);
        let primary = lessor.is_primary();
        let checkpointing = lessor.checkpointing();
        *lessor = Lessor::load(&store, lessor.min_ttl())?;
        lessor.set_checkpointing(checkpointing);
        *lock(&self.alarms) =
            Alarms::load(store.backend()).map_err(crate::mvcc::MvccError::from)?;
        let mut versions = load_versions(store.backend())
            .map_err(|e| ServerError::Inconsistent(format!("snapshot: {e}")))?;
        sync_storage_version(store.backend_mut(), &mut versions, self.release);
        *lock(&self.versions) = versions;
        if primary {
            lessor.promote(self.clock.now(), std::time::Duration::ZERO);
        }
        self.hub.unsync_all();
        Ok(store.consistent_index())
    }
}

/// etcd's `removeNeedlessRangeReqs` (the test defect `strip-txn-ranges-without-waiter`): a
/// txn's top-level range requests, in both branches, dropped.
fn remove_needless_range_reqs(t: &mut pb::TxnRequest) {
    let is_range =
        |op: &pb::RequestOp| matches!(op.request, Some(pb::request_op::Request::RequestRange(_)));
    t.success.retain(|op| !is_range(op));
    t.failure.retain(|op| !is_range(op));
}

/// What a CORRUPT alarm refuses on every member, whichever member it names (etcd's
/// applierV3Corrupt): the key-value operations, compaction, lease grants and revokes.
fn refused_when_corrupt(op: &Op) -> bool {
    matches!(
        op,
        Op::Put(_)
            | Op::DeleteRange(_)
            | Op::Txn(_)
            | Op::Compaction(_)
            | Op::LeaseGrant(_)
            | Op::LeaseRevoke(_)
    )
}

/// What a NOSPACE alarm refuses (etcd's applierV3Capped): puts, txns that put, lease grants.
fn writes_data(op: &Op) -> bool {
    fn has_put(ops: &[pb::RequestOp]) -> bool {
        ops.iter().any(|o| match &o.request {
            Some(pb::request_op::Request::RequestPut(_)) => true,
            Some(pb::request_op::Request::RequestTxn(t)) => {
                has_put(&t.success) || has_put(&t.failure)
            }
            _ => false,
        })
    }
    match op {
        Op::Put(_) | Op::LeaseGrant(_) => true,
        Op::Txn(t) => has_put(&t.success) || has_put(&t.failure),
        _ => false,
    }
}
