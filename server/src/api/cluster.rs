//! etcd's Cluster service: member list, add (voter or learner), remove, update, promote.
//!
//! Owns: request checks etcd makes before proposing (peer URLs in use, learner limit, promote
//! only of a learner that is in sync with the leader, no removal that breaks the active quorum
//! under `--strict-reconfig-check`) and building membership changes as raft configuration
//! changes.
//!
//! Must never: change membership outside raft, or promote a learner that is behind.

use crate::config::url_host_port;
use crate::etcdserver::reconfig::may_remove_member;
use crate::etcdserver::request::{MemberPeerUrls, Op, OpResponse};
use crate::etcdserver::EtcdServer;
use crate::membership::{Member, MemberChange, MembershipError};
use crate::rafthttp::channel_to;
use etcd_api::etcdserverpb as pb;
use raft::eraftpb::{ConfChange, ConfChangeType};
use tonic::{Request, Response, Status};

/// etcd's readyPercent: a learner is promotable once its log matches 90 % of the leader's.
const LEARNER_READY_PERCENT: f64 = 0.9;

/// The Cluster service.
pub struct ClusterApi {
    server: EtcdServer,
}

impl ClusterApi {
    /// A Cluster service over `server`.
    pub fn new(server: EtcdServer) -> Self {
        ClusterApi { server }
    }

    /// etcd's ClusterServer header: cluster id, member id and term, no revision.
    fn header(&self) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            revision: 0,
            ..self.server.header(0)
        })
    }

    async fn change(
        &self,
        change: MemberChange,
        kind: ConfChangeType,
        node: u64,
    ) -> Result<Vec<pb::Member>, Status> {
        self.server
            .cluster()
            .validate_change(&change, self.server.config().max_learners as usize)
            .map_err(|e| e.to_status())?;
        let mut cc = ConfChange::default();
        cc.set_change_type(kind);
        cc.node_id = node;
        cc.context = serde_json::to_vec(&change)
            .map_err(|e| Status::internal(format!("encode member change: {e}")))?
            .into();
        match self.server.propose_conf_change(cc).await? {
            OpResponse::Members(ms) => Ok(ms.iter().map(Member::to_pb).collect()),
            _ => Err(Status::internal("etcdserver: unexpected response type")),
        }
    }

    /// etcd's isLearnerReady, on the leader.
    fn learner_ready(&self, id: u64) -> Result<(), Status> {
        let st = self.server.status();
        let matched = |who: u64| st.progress.iter().find(|(i, _)| *i == who).map(|(_, m)| *m);
        let leader = matched(st.leader).unwrap_or(0);
        let learner = matched(id).unwrap_or(0);
        if (learner as f64) < (leader as f64) * LEARNER_READY_PERCENT {
            return Err(MembershipError::LearnerNotReady.to_status());
        }
        Ok(())
    }

    /// Forwards a request to the leader's client URL (only the leader knows learners' progress
    /// and which peers are connected).
    async fn forward<Q, R>(&self, r: Q, path: &'static str) -> Result<Response<R>, Status>
    where
        Q: prost::Message + Send + 'static,
        R: prost::Message + Default + Send + 'static,
    {
        let st = self.server.status();
        let url = self
            .server
            .cluster()
            .member(st.leader)
            .and_then(|m| m.client_urls.first().cloned())
            .ok_or_else(|| Status::unavailable("etcdserver: no leader"))?;
        let addr = url_host_port("leader client URL", &url)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let ch = channel_to(self.server.net(), &addr).map_err(Status::unavailable)?;
        let mut grpc = tonic::client::Grpc::new(ch);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(path);
        grpc.unary(Request::new(r), path, tonic_prost::ProstCodec::default())
            .await
    }

    /// etcd's strict reconfiguration check for a removal, decided on the leader (a follower
    /// forwards); `Ok(None)` to go on here, `Ok(Some(response))` when the leader answered.
    async fn strict_remove_check(
        &self,
        r: &pb::MemberRemoveRequest,
    ) -> Result<Option<Response<pb::MemberRemoveResponse>>, Status> {
        if !self.server.config().strict_reconfig_check {
            return Ok(None);
        }
        let st = self.server.status();
        if st.leader == 0 {
            return Err(Status::unavailable("etcdserver: no leader"));
        }
        if !st.is_leader {
            let path = "/etcdserverpb.Cluster/MemberRemove";
            return self.forward(*r, path).await.map(Some);
        }
        may_remove_member(
            &self.server.cluster(),
            &st.contacts,
            self.server.now(),
            self.server.member_id(),
            r.id,
        )
        .map_err(|e| e.to_status())?;
        Ok(None)
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterApi {
    async fn member_add(
        &self,
        r: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = r.into_inner();
        if r.peer_ur_ls.is_empty() {
            return Err(Status::invalid_argument(
                "etcdserver: member peer URLs are not provided",
            ));
        }
        for u in &r.peer_ur_ls {
            url_host_port("peer URL", u).map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let member = Member {
            id: self.server.new_member_id(),
            name: String::new(),
            peer_urls: r.peer_ur_ls.clone(),
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let kind = if r.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let id = member.id;
        let members = self
            .change(MemberChange::Add(member.clone()), kind, id)
            .await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: self.header(),
            member: Some(member.to_pb()),
            members,
        }))
    }

    async fn member_remove(
        &self,
        r: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let r = r.into_inner();
        if let Some(answered) = self.strict_remove_check(&r).await? {
            return Ok(answered);
        }
        let id = r.id;
        let members = self
            .change(MemberChange::Remove(id), ConfChangeType::RemoveNode, id)
            .await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.header(),
            members,
        }))
    }

    async fn member_update(
        &self,
        r: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let r = r.into_inner();
        if self.server.cluster().member(r.id).is_none() {
            return Err(MembershipError::NotFound.to_status());
        }
        let op = Op::MemberUpdate(MemberPeerUrls {
            member_id: r.id,
            peer_urls: r.peer_ur_ls,
        });
        match self.server.propose(op).await? {
            OpResponse::Members(ms) => Ok(Response::new(pb::MemberUpdateResponse {
                header: self.header(),
                members: ms.iter().map(Member::to_pb).collect(),
            })),
            _ => Err(Status::internal("etcdserver: unexpected response type")),
        }
    }

    async fn member_list(
        &self,
        r: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if r.into_inner().linearizable {
            self.server.linearizable_read().await?;
        }
        let cluster = self.server.cluster();
        Ok(Response::new(pb::MemberListResponse {
            header: self.header(),
            members: cluster.members.iter().map(|m| m.to_pb()).collect(),
        }))
    }

    async fn member_promote(
        &self,
        r: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let r = r.into_inner();
        let st = self.server.status();
        if st.leader == 0 {
            return Err(Status::unavailable("etcdserver: no leader"));
        }
        if !st.is_leader {
            return self.forward(r, "/etcdserverpb.Cluster/MemberPromote").await;
        }
        self.server
            .cluster()
            .validate_change(&MemberChange::Promote(r.id), usize::MAX)
            .map_err(|e| e.to_status())?;
        self.learner_ready(r.id)?;
        let members = self
            .change(MemberChange::Promote(r.id), ConfChangeType::AddNode, r.id)
            .await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.header(),
            members,
        }))
    }
}
