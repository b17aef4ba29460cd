//! Cluster membership: member and cluster ids, names and URLs.
//!
//! Owns: the member table of the cluster and the id derivation etcd uses (SHA-1 of the sorted
//! peer URLs and the cluster token for a member; SHA-1 of the sorted member ids for the
//! cluster), so a cluster started with the same flags as an etcd cluster gets the same ids.
//!
//! Must never: decide membership changes on its own; changes arrive through raft.

use crate::backend::{Backend, BackendError, Bucket};
use crate::config::{Config, ConfigError, InitialMember};
use etcd_api::etcdserverpb as pb;
use serde::{Deserialize, Serialize};

/// One member as the cluster knows it (serialized with etcd's JSON field names, as etcd stores
/// members in the `members` bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft id.
    pub id: u64,
    /// `--name` (empty until the member has published its attributes).
    #[serde(default)]
    pub name: String,
    /// Peer URLs.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Client URLs (published by the member itself through raft when it starts).
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    /// Whether the member is a non-voting learner.
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

/// A membership change carried by a raft configuration change (as JSON in its context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// A new member (voter or learner).
    Add(Member),
    /// A learner becomes a voter.
    Promote(u64),
    /// A member leaves.
    Remove(u64),
}

/// Why a membership change is refused, with etcd's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Unknown member.
    #[error("etcdserver: member not found")]
    NotFound,
    /// Id in use.
    #[error("etcdserver: member ID already exist")]
    IdExists,
    /// Peer URL in use.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// `--max-learners` reached.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// Promote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// Promote of a learner that is behind.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
}

impl MembershipError {
    /// etcd's gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            MembershipError::NotFound => tonic::Status::not_found(self.to_string()),
            _ => tonic::Status::failed_precondition(self.to_string()),
        }
    }
}

/// What a member publishes about itself through raft when it starts (etcd's
/// `ClusterMemberAttrSetRequest`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberAttributes {
    /// The member.
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    /// Its `--name`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Its `--advertise-client-urls`.
    #[prost(string, repeated, tag = "3")]
    pub client_urls: Vec<String>,
}

fn member_key(id: u64) -> Vec<u8> {
    format!("{id:016x}").into_bytes()
}

/// Writes a member into the `members` bucket (in the current backend batch).
pub fn save_member(backend: &mut Backend, m: &Member) {
    // Serializing plain strings and integers cannot fail.
    let json = serde_json::to_vec(m).unwrap_or_default();
    backend.put(Bucket::Members, &member_key(m.id), &json);
}

/// Records a removed member in `members_removed` and drops it from `members`.
pub fn save_removed(backend: &mut Backend, id: u64) {
    backend.delete(Bucket::Members, &member_key(id));
    backend.put(Bucket::MembersRemoved, &member_key(id), b"removed");
}

/// Reads the ids in `members_removed`.
pub fn load_removed(backend: &Backend) -> Result<std::collections::BTreeSet<u64>, BackendError> {
    let mut out = std::collections::BTreeSet::new();
    backend.for_each(Bucket::MembersRemoved, b"", None, |k, _| {
        if let Some(id) = std::str::from_utf8(k)
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            out.insert(id);
        }
        true
    })?;
    Ok(out)
}

/// Reads every member from the `members` bucket, in id order.
pub fn load_members(backend: &Backend) -> Result<Vec<Member>, BackendError> {
    let mut out = Vec::new();
    let mut bad = None;
    backend.for_each(Bucket::Members, b"", None, |k, v| {
        match serde_json::from_slice::<Member>(v) {
            Ok(m) => out.push(m),
            Err(e) => bad = Some(format!("{}: {e}", String::from_utf8_lossy(k))),
        }
        bad.is_none()
    })?;
    match bad {
        Some(detail) => Err(BackendError::Corrupt {
            path: backend.path().to_path_buf(),
            op: "read members bucket",
            detail,
        }),
        None => Ok(out),
    }
}

impl Member {
    /// The etcd API form.
    pub fn to_pb(&self) -> pb::Member {
        pb::Member {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// The member table plus the cluster id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Cluster id.
    pub cluster_id: u64,
    /// Members in id order.
    pub members: Vec<Member>,
    /// Ids of members removed from the cluster (they may never come back).
    #[serde(default)]
    pub removed: std::collections::BTreeSet<u64>,
}

/// etcd's computeMemberId for a member of a new cluster.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut b = urls.concat().into_bytes();
    b.extend_from_slice(token.as_bytes());
    first_u64(&b)
}

/// etcd's RaftCluster.genID: SHA-1 over the sorted member ids.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let b: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_u64(&b)
}

fn first_u64(b: &[u8]) -> u64 {
    let digest = sha1_smol::Sha1::from(b).digest().bytes();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

impl Cluster {
    /// The static initial cluster described by the flags; our own client URLs filled in.
    pub fn from_config(cfg: &Config) -> Result<(Cluster, u64), ConfigError> {
        let initial: Vec<InitialMember> = cfg.validate()?;
        let mut members: Vec<Member> = initial
            .iter()
            .map(|m| Member {
                id: member_id(&m.peer_urls, &cfg.initial_cluster_token),
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect();
        members.sort_by_key(|m| m.id);
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let mut self_id = 0;
        for m in &mut members {
            if m.name == cfg.name {
                m.client_urls = crate::config::split_urls(&cfg.advertise_client_urls);
                self_id = m.id;
            }
        }
        Ok((
            Cluster {
                cluster_id: cluster_id(&ids),
                members,
                removed: Default::default(),
            },
            self_id,
        ))
    }

    /// A member by id.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Applies published attributes; `None` if the member is unknown.
    pub fn set_attributes(&mut self, a: &MemberAttributes) -> Option<&Member> {
        let m = self.members.iter_mut().find(|m| m.id == a.member_id)?;
        m.name = a.name.clone();
        m.client_urls = a.client_urls.clone();
        Some(m)
    }

    /// Number of learners.
    pub fn learner_count(&self) -> usize {
        self.members.iter().filter(|m| m.is_learner).count()
    }

    /// Learner ids.
    pub fn learner_ids(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// etcd's ValidateConfigurationChange, on the replicated member table (so every member
    /// decides alike): what the change may not do.
    pub fn validate_change(
        &self,
        change: &MemberChange,
        max_learners: usize,
    ) -> Result<(), MembershipError> {
        match change {
            MemberChange::Add(m) => {
                if self.member(m.id).is_some() || self.removed.contains(&m.id) {
                    return Err(MembershipError::IdExists);
                }
                if self
                    .members
                    .iter()
                    .any(|x| x.peer_urls.iter().any(|u| m.peer_urls.contains(u)))
                {
                    return Err(MembershipError::PeerUrlExists);
                }
                if m.is_learner && self.learner_count() >= max_learners {
                    return Err(MembershipError::TooManyLearners);
                }
            }
            MemberChange::Promote(id) => match self.member(*id) {
                None => return Err(MembershipError::NotFound),
                Some(m) if !m.is_learner => return Err(MembershipError::NotLearner),
                Some(_) => {}
            },
            MemberChange::Remove(id) => {
                if self.member(*id).is_none() {
                    return Err(MembershipError::NotFound);
                }
            }
        }
        Ok(())
    }

    /// Applies a validated change.
    pub fn apply_change(&mut self, change: &MemberChange) {
        match change {
            MemberChange::Add(m) => {
                self.members.push(m.clone());
                self.members.sort_by_key(|m| m.id);
            }
            MemberChange::Promote(id) => {
                if let Some(m) = self.members.iter_mut().find(|m| m.id == *id) {
                    m.is_learner = false;
                }
            }
            MemberChange::Remove(id) => {
                self.members.retain(|m| m.id != *id);
                self.removed.insert(*id);
            }
        }
    }

    /// Voting member ids.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_depend_on_urls_and_token() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "etcd-cluster");
        assert_eq!(
            a,
            member_id(&["http://127.0.0.1:2380".into()], "etcd-cluster")
        );
        assert_ne!(
            a,
            member_id(&["http://127.0.0.1:2381".into()], "etcd-cluster")
        );
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "other"));
        // etcd's well-known id for a default single-member cluster (http://localhost:2380,
        // token etcd-cluster) is 8e9e05c52164694d; its cluster id is cdf818194e3a8c32.
        let d = member_id(&["http://localhost:2380".into()], "etcd-cluster");
        assert_eq!(format!("{d:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[d])), "cdf818194e3a8c32");
    }
}
