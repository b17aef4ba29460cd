//! The etcd server: bootstrap from the data dir, the raft loop, and the handle the API uses.
//!
//! Owns: `EtcdServer` (propose a write and wait for its result, wait for a linearizable read
//! point, build response headers) and `start`, which recovers or bootstraps a member and spawns
//! its tasks.
//!
//! Must never: answer a write before it is applied, or a linearizable read before ReadIndex.

mod apply;
mod bootstrap;
mod conf_change;
mod corrupt;
mod join;
mod raft_node;
pub(crate) mod reconfig;
pub mod request;
mod status;
mod storage;
mod v2store;
pub mod version;

pub use bootstrap::{start, ServerHandle};
use etcd_api::etcdserverpb as pb;
pub use raft_node::lock;
pub use status::{RaftStatus, ServerMetrics, FSYNC_BUCKETS};

use crate::alarm::Alarms;
use crate::config::{Config, ConfigError};
use crate::lease::Lessor;
use crate::membership::Cluster;
use crate::mvcc::watchable::WatchHub;
use crate::mvcc::Store;
use prost::Message as _;
use raft_node::{Proposal, ProposalKind, ReadWaiter};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use request::{ApplyResult, InternalRaftRequest, Op, OpResponse};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Why a member cannot start or had to stop.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Bad flags.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The write-ahead log.
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    /// Snapshot files.
    #[error(transparent)]
    Snap(#[from] crate::snap::SnapError),
    /// More learners than `--max-learners` at bootstrap (etcd's ValidateMaxLearnerConfig).
    #[error("membership: too many learner members in cluster ({learners} learners, --max-learners={max})")]
    TooManyLearners {
        /// Learners in the member table.
        learners: usize,
        /// The flag.
        max: u64,
    },
    /// The data's cluster or storage version forbids this release to open it.
    #[error(transparent)]
    Version(#[from] version::VersionCheckError),
    /// The MVCC store or its backend.
    #[error("mvcc: {0}")]
    Mvcc(#[from] crate::mvcc::MvccError),
    /// raft-rs refused something (a bug or corrupt state).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// An I/O error with what we were doing.
    #[error("{context}: {source}")]
    Io {
        /// What failed.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// On-disk state that contradicts itself.
    #[error("data dir is inconsistent: {0}")]
    Inconsistent(String),
    /// The raft log lost entries this member had acknowledged (etcd's raft panics with the
    /// same message).
    #[error("{0}")]
    LogLost(String),
    /// The start-up corruption check found this member's data different from its peers'
    /// (`<id> found data inconsistency with peers`).
    #[error("{0}")]
    DataInconsistency(String),
    /// A test failpoint that stops the member fired (see [`crate::failpoints`]).
    #[error("failpoint {0} fired: the member stops")]
    Failpoint(&'static str),
}

/// Outcome of handing a proposal to the raft loop.
pub enum ProposeOutcome {
    /// Applied; the result of the operation.
    Applied(ApplyResult),
    /// raft refused it (no leader, or leadership in transfer): nothing was appended.
    Dropped,
}

/// The handle the API services hold.
#[derive(Clone)]
pub struct EtcdServer {
    inner: Arc<Shared>,
}

struct Shared {
    cfg: Config,
    member_id: u64,
    cluster: Arc<Mutex<Cluster>>,
    store: Arc<Mutex<Store>>,
    hub: Arc<WatchHub>,
    lessor: Arc<Mutex<Lessor>>,
    alarms: Arc<Mutex<Alarms>>,
    versions: Arc<Mutex<version::VersionState>>,
    release: version::Release,
    transfers: mpsc::Sender<u64>,
    status: Arc<Mutex<RaftStatus>>,
    metrics: Arc<ServerMetrics>,
    failpoints: Arc<crate::failpoints::Failpoints>,
    proposals: mpsc::Sender<Proposal>,
    reads: mpsc::Sender<ReadWaiter>,
    request_ids: Mutex<ChaCha8Rng>,
    net: Arc<dyn crate::seam::Network>,
    clock: Arc<dyn crate::seam::Clock>,
}

fn timed_out() -> tonic::Status {
    tonic::Status::unavailable("etcdserver: request timed out")
}

fn stopped() -> tonic::Status {
    tonic::Status::unavailable("etcdserver: server stopped")
}

impl EtcdServer {
    /// The flags this member runs with.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.inner.member_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        lock(&self.inner.cluster).cluster_id
    }

    /// The release this member emulates.
    pub fn release(&self) -> version::Release {
        self.inner.release
    }

    /// The cluster version this member has applied (`None`: not decided yet).
    pub fn cluster_version(&self) -> Option<version::Version> {
        lock(&self.inner.versions).cluster
    }

    /// The storage version in this member's backend (`None`: absent, as in 3.5 data).
    pub fn storage_version(&self) -> Option<version::Version> {
        lock(&self.inner.versions).storage
    }

    /// The target of an enabled downgrade.
    pub fn downgrade_target(&self) -> Option<version::Version> {
        lock(&self.inner.versions).downgrade_target
    }

    /// What `/version` answers: the release, the cluster version (`not_decided` before the
    /// leader decided one) and, on 3.6+, the storage version (`unknown` when absent).
    pub fn versions(&self) -> version::Versions {
        let state = *lock(&self.inner.versions);
        version::Versions {
            etcdserver: self.inner.release.to_string(),
            etcdcluster: state
                .cluster
                .map(|v| v.to_string())
                .unwrap_or_else(|| "not_decided".into()),
            storage: self.inner.release.writes_storage_version().then(|| {
                state
                    .storage
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "unknown".into())
            }),
        }
    }

    /// The cluster as this member knows it.
    pub fn cluster(&self) -> Cluster {
        lock(&self.inner.cluster).clone()
    }

    /// The raft loop's latest status.
    pub fn status(&self) -> RaftStatus {
        lock(&self.inner.status).clone()
    }

    /// Metrics.
    pub fn metrics(&self) -> &ServerMetrics {
        &self.inner.metrics
    }

    /// The member's test failpoints (off unless a simulator sets them).
    pub fn failpoints(&self) -> &crate::failpoints::Failpoints {
        &self.inner.failpoints
    }

    /// The MVCC store (held briefly: the apply loop needs it too).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    /// Now, on this member's clock (lease expiry is measured on it).
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// The network this member talks through (for forwarding to the leader).
    pub fn net(&self) -> Arc<dyn crate::seam::Network> {
        self.inner.net.clone()
    }

    /// A fresh member id for `member add` (random, non-zero, not in use).
    pub fn new_member_id(&self) -> u64 {
        loop {
            let id = self.request_id();
            if id != 0 && self.cluster().member(id).is_none() {
                return id;
            }
        }
    }

    /// Whether this member is a learner (learners serve only serializable reads).
    pub fn is_learner(&self) -> bool {
        self.cluster()
            .member(self.inner.member_id)
            .is_some_and(|m| m.is_learner)
    }

    /// A fresh lease id (etcd: from the request id generator, positive, non-zero).
    pub fn new_lease_id(&self) -> i64 {
        loop {
            let id = (self.request_id() & ((1 << 63) - 1)) as i64;
            if id != 0 {
                return id;
            }
        }
    }

    /// The lessor (held briefly; lock it after the store when both are needed).
    pub fn lessor(&self) -> Arc<Mutex<Lessor>> {
        self.inner.lessor.clone()
    }

    /// Active alarms.
    pub fn alarms(&self) -> Alarms {
        lock(&self.inner.alarms).clone()
    }

    /// `--quota-backend-bytes` (0 means etcd's default, 2 GiB).
    pub fn quota_bytes(&self) -> i64 {
        match self.inner.cfg.quota_backend_bytes {
            0 => 2 * 1024 * 1024 * 1024,
            q => q as i64,
        }
    }

    /// etcd's quota check before a write that adds data: over the quota, the member raises a
    /// NOSPACE alarm through raft and the write is refused.
    pub fn check_quota(&self, cost: usize) -> Result<(), tonic::Status> {
        if lock(&self.inner.alarms).has(crate::alarm::NOSPACE) {
            return Err(crate::alarm::no_space());
        }
        let size = self.store().db_size();
        if size + cost as i64 <= self.quota_bytes() {
            return Ok(());
        }
        let s = self.clone();
        tokio::spawn(async move {
            let req = pb::AlarmRequest {
                action: crate::alarm::ACTION_ACTIVATE,
                member_id: s.member_id(),
                alarm: crate::alarm::NOSPACE,
            };
            if let Err(e) = s.propose(Op::Alarm(req)).await {
                tracing::warn!(error = %e, "cannot raise the NOSPACE alarm");
            }
        });
        Err(crate::alarm::no_space())
    }

    /// Asks raft to hand leadership to `target` (etcd's MoveLeader); waits until it has or the
    /// request times out.
    pub async fn move_leader(&self, target: u64) -> Result<(), tonic::Status> {
        self.inner
            .transfers
            .send(target)
            .await
            .map_err(|_| stopped())?;
        let deadline = Instant::now() + self.inner.cfg.request_timeout();
        while Instant::now() < deadline {
            if self.status().leader == target {
                return Ok(());
            }
            tokio::time::sleep(self.inner.cfg.heartbeat()).await;
        }
        Err(tonic::Status::deadline_exceeded(
            "etcdserver: leadership transfer timeout",
        ))
    }

    /// The watch registry.
    pub fn watch_hub(&self) -> Arc<WatchHub> {
        self.inner.hub.clone()
    }

    /// A response header with this member's ids, the current term and `revision`.
    pub fn header(&self, revision: i64) -> pb::ResponseHeader {
        let st = self.status();
        pb::ResponseHeader {
            cluster_id: lock(&self.inner.cluster).cluster_id,
            member_id: self.inner.member_id,
            revision,
            raft_term: st.term,
        }
    }

    /// Proposes a write through raft and waits until it is applied (etcd's
    /// processInternalRaftRequestOnce). Times out after etcd's request timeout.
    pub async fn propose(&self, op: Op) -> Result<OpResponse, tonic::Status> {
        let id = self.request_id();
        let data = InternalRaftRequest { id, op: Some(op) }.encode_to_vec();
        if data.len() as u64 > self.inner.cfg.max_request_bytes {
            return Err(tonic::Status::invalid_argument(
                "etcdserver: request is too large",
            ));
        }
        self.submit(id, ProposalKind::Normal(data)).await
    }

    /// Proposes a membership change (its `id` is set here) and waits until it is applied.
    pub async fn propose_conf_change(
        &self,
        mut cc: raft::eraftpb::ConfChange,
    ) -> Result<OpResponse, tonic::Status> {
        cc.id = self.request_id();
        self.submit(cc.id, ProposalKind::ConfChange(cc)).await
    }

    fn request_id(&self) -> u64 {
        lock(&self.inner.request_ids).gen::<u64>()
    }

    async fn submit(&self, id: u64, kind: ProposalKind) -> Result<OpResponse, tonic::Status> {
        let deadline = Instant::now() + self.inner.cfg.request_timeout();
        loop {
            let (reply, rx) = oneshot::channel();
            let p = Proposal {
                id,
                kind: kind.clone(),
                reply,
            };
            self.inner.proposals.send(p).await.map_err(|_| stopped())?;
            match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => return Err(timed_out()),
                Ok(Err(_)) => return Err(stopped()),
                Ok(Ok(ProposeOutcome::Applied(r))) => return r,
                Ok(Ok(ProposeOutcome::Dropped)) => {
                    // No leader yet: wait a heartbeat and try again, as etcd's proposal
                    // blocks until a leader exists or the request times out.
                    let next = Instant::now() + self.inner.cfg.heartbeat();
                    if next >= deadline {
                        return Err(if self.status().leader == 0 {
                            tonic::Status::unavailable("etcdserver: no leader")
                        } else {
                            timed_out()
                        });
                    }
                    tokio::time::sleep_until(next).await;
                }
            }
        }
    }

    /// Waits until this member has applied everything committed when the call was made
    /// (ReadIndex), so a local read is linearizable.
    pub async fn linearizable_read(&self) -> Result<(), tonic::Status> {
        let (tx, rx) = oneshot::channel();
        self.inner.reads.send(tx).await.map_err(|_| stopped())?;
        let deadline = Instant::now() + self.inner.cfg.request_timeout();
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(timed_out()),
            Ok(Err(_)) => Err(stopped()),
            Ok(Ok(())) => Ok(()),
        }
    }
}
