//! etcd's Cluster service: MemberList now; membership changes arrive with the membership issue.
//!
//! Owns: answering with the member table as this member knows it.
//!
//! Must never: change membership outside raft.

use crate::etcdserver::EtcdServer;
use etcd_client::proto::{
    PbClusterService, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

/// The Cluster service.
pub struct ClusterApi {
    server: EtcdServer,
}

impl ClusterApi {
    /// A Cluster service over `server`.
    pub fn new(server: EtcdServer) -> Self {
        ClusterApi { server }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "etcdserver: {what} is not supported by this server yet (static membership only)"
    ))
}

#[tonic::async_trait]
impl PbClusterService for ClusterApi {
    async fn member_add(
        &self,
        _r: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(not_yet("member add"))
    }
    async fn member_remove(
        &self,
        _r: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(not_yet("member remove"))
    }
    async fn member_update(
        &self,
        _r: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(not_yet("member update"))
    }
    async fn member_list(
        &self,
        r: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        if r.into_inner().linearizable {
            self.server.linearizable_read().await?;
        }
        let cluster = self.server.cluster();
        let rev = self.server.store().current_revision();
        Ok(Response::new(PbMemberListResponse {
            header: Some(self.server.header(rev)),
            members: cluster.members.iter().map(|m| m.to_pb()).collect(),
        }))
    }
    async fn member_promote(
        &self,
        _r: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(not_yet("member promote"))
    }
}
