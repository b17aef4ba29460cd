//! The requests that travel through raft, and what applying one returns.
//!
//! Owns: the encoding of a client write as a raft entry (our `InternalRaftRequest`, with etcd's
//! field numbers for the operations it carries) and the typed apply result.
//!
//! Must never: apply anything itself; `apply.rs` does that.

use crate::membership::MemberAttributes;
use etcd_api::etcdserverpb as pb;

/// A write proposed through raft (etcd's `etcdserverpb.InternalRaftRequest`, the KV subset).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalRaftRequest {
    /// Request id, unique per proposing member; the waiter for the result is keyed by it.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The operation.
    #[prost(
        oneof = "Op",
        tags = "4, 5, 6, 7, 8, 9, 10, 11, 1100, 1101, 1300, 1302"
    )]
    pub op: Option<Op>,
}

/// The operations a raft entry can carry.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    /// KV.Put.
    #[prost(message, tag = "4")]
    Put(pb::PutRequest),
    /// KV.DeleteRange.
    #[prost(message, tag = "5")]
    DeleteRange(pb::DeleteRangeRequest),
    /// KV.Txn.
    #[prost(message, tag = "6")]
    Txn(pb::TxnRequest),
    /// KV.Compact.
    #[prost(message, tag = "7")]
    Compaction(pb::CompactionRequest),
    /// Lease.LeaseGrant (the id is chosen by the proposing member).
    #[prost(message, tag = "8")]
    LeaseGrant(pb::LeaseGrantRequest),
    /// Lease.LeaseRevoke (from a client, or from the leader when a lease expires).
    #[prost(message, tag = "9")]
    LeaseRevoke(pb::LeaseRevokeRequest),
    /// Maintenance.Alarm activate/deactivate.
    #[prost(message, tag = "10")]
    Alarm(pb::AlarmRequest),
    /// The leader's lease checkpoints (remaining TTLs), with the LeaseCheckpoint gate on.
    #[prost(message, tag = "11")]
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// A member publishes its name and client URLs (etcd's ClusterMemberAttrSet).
    #[prost(message, tag = "1100")]
    MemberAttrSet(MemberAttributes),
    /// Cluster.MemberUpdate: new peer URLs for a member (no raft configuration change).
    #[prost(message, tag = "1101")]
    MemberUpdate(MemberPeerUrls),
    /// The leader's new cluster version (etcd's ClusterVersionSet, same field number).
    #[prost(message, tag = "1300")]
    ClusterVersionSet(ClusterVersionSetRequest),
    /// A downgrade job enabled or cancelled (etcd's DowngradeInfoSet, same field number).
    #[prost(message, tag = "1302")]
    DowngradeInfoSet(DowngradeInfoSetRequest),
}

/// etcd's `membershippb.DowngradeInfoSetRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DowngradeInfoSetRequest {
    /// Whether a downgrade job is enabled.
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    /// Its target, `X.Y.0` (empty when cancelled).
    #[prost(string, tag = "2")]
    pub ver: String,
}

/// etcd's `membershippb.ClusterVersionSetRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterVersionSetRequest {
    /// The cluster version, `X.Y.0`.
    #[prost(string, tag = "1")]
    pub ver: String,
}

/// etcd's `LeaseCheckpointRequest` (etcd's raft_internal.proto, not in the client API; same field numbers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseCheckpointRequest {
    /// The checkpoints.
    #[prost(message, repeated, tag = "1")]
    pub checkpoints: Vec<LeaseCheckpoint>,
}

/// etcd's `LeaseCheckpoint`: a lease's remaining TTL as the leader saw it (0 clears it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseCheckpoint {
    /// The lease.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Remaining TTL in seconds.
    #[prost(int64, tag = "2")]
    pub remaining_ttl: i64,
}

/// A member's new peer URLs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberPeerUrls {
    /// The member.
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    /// Its peer URLs.
    #[prost(string, repeated, tag = "2")]
    pub peer_urls: Vec<String>,
}

/// The response of an applied operation (header revision set, other header fields not yet).
#[derive(Debug, Clone)]
pub enum OpResponse {
    /// KV.Put.
    Put(pb::PutResponse),
    /// KV.DeleteRange.
    DeleteRange(pb::DeleteRangeResponse),
    /// KV.Txn.
    Txn(pb::TxnResponse),
    /// KV.Compact.
    Compaction(pb::CompactionResponse),
    /// Lease.LeaseGrant.
    LeaseGrant(pb::LeaseGrantResponse),
    /// Lease.LeaseRevoke.
    LeaseRevoke(pb::LeaseRevokeResponse),
    /// Maintenance.Alarm.
    Alarm(pb::AlarmResponse),
    /// Lease checkpoints recorded (etcd's LeaseCheckpointResponse has only a header).
    LeaseCheckpoint,
    /// Member attributes recorded.
    MemberAttrSet,
    /// The cluster version recorded.
    ClusterVersionSet,
    /// The downgrade job recorded.
    DowngradeInfoSet,
    /// A membership change was applied; the members afterwards.
    Members(Vec<crate::membership::Member>),
}

/// What the proposer gets back: the response or etcd's gRPC error.
pub type ApplyResult = Result<OpResponse, tonic::Status>;
