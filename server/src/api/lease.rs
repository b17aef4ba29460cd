//! etcd's Lease service: grant, revoke, keep-alive, time-to-live, list.
//!
//! Owns: choosing lease ids, proposing grants and revokes, and answering renewals (clearing a
//! checkpointed remaining TTL through raft first, as etcd does) and TTL queries on the leader — a follower forwards those to the leader's peer URL, since only the
//! leader's clock decides expiry.
//!
//! Must never: renew or report a TTL from a follower's own (non-authoritative) clock.

use crate::config::url_host_port;
use crate::etcdserver::request::{LeaseCheckpoint, LeaseCheckpointRequest, Op, OpResponse};
use crate::etcdserver::{lock, EtcdServer};
use crate::rafthttp::channel_to;
use etcd_api::etcdserverpb as pb;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// The Lease service (cheap to clone: keep-alive streams share the leader connection).
#[derive(Clone)]
pub struct LeaseApi {
    server: EtcdServer,
    leader: Arc<Mutex<Option<(u64, Channel)>>>,
}

impl LeaseApi {
    /// A Lease service over `server`.
    pub fn new(server: EtcdServer) -> Self {
        LeaseApi {
            server,
            leader: Arc::new(Mutex::new(None)),
        }
    }

    /// A channel to the current leader's client URL, or None if this member leads.
    fn leader_channel(&self) -> Result<Option<Channel>, Status> {
        let st = self.server.status();
        if st.leader == 0 {
            return Err(Status::unavailable("etcdserver: no leader"));
        }
        if st.leader == self.server.member_id() {
            return Ok(None);
        }
        let mut cached = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, ch)) = cached.as_ref() {
            if *id == st.leader {
                return Ok(Some(ch.clone()));
            }
        }
        let cluster = self.server.cluster();
        // Forwarded over the leader's peer URL (its peer port serves the Lease service too), as
        // etcd forwards renewals to the leader's peer handler: known from the start.
        let url = cluster
            .member(st.leader)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or_else(|| Status::unavailable("etcdserver: leader not in the member table"))?;
        let addr = url_host_port("leader peer URL", &url)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let ch = channel_to(self.server.net(), &addr).map_err(Status::unavailable)?;
        *cached = Some((st.leader, ch.clone()));
        Ok(Some(ch))
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        let rev = self.server.store().current_revision();
        Some(self.server.header(rev))
    }

    /// Renews on the leader (here or forwarded); TTL 0 when the lease does not exist.
    async fn renew(&self, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
        match self.leader_channel()? {
            None => {
                if lock(&self.server.lessor()).must_clear_checkpoint(id) {
                    // etcd's Renew: a checkpointed remaining TTL is cleared through raft first,
                    // so that a later leader does not restart the lease from it.
                    let clear = LeaseCheckpointRequest {
                        checkpoints: vec![LeaseCheckpoint {
                            id,
                            remaining_ttl: 0,
                        }],
                    };
                    if let Err(e) = self.server.propose(Op::LeaseCheckpoint(clear)).await {
                        tracing::debug!(lease = %format!("{id:x}"), error = %e, "clearing a lease checkpoint failed");
                    }
                }
                let ttl = lock(&self.server.lessor())
                    .renew(id, self.server.now())
                    .unwrap_or(0);
                Ok(pb::LeaseKeepAliveResponse {
                    header: self.header(),
                    id,
                    ttl,
                })
            }
            Some(ch) => {
                let mut grpc = tonic::client::Grpc::new(ch);
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let req = Request::new(futures::stream::iter([pb::LeaseKeepAliveRequest { id }]));
                let path =
                    http::uri::PathAndQuery::from_static("/etcdserverpb.Lease/LeaseKeepAlive");
                let mut resp: Streaming<pb::LeaseKeepAliveResponse> = grpc
                    .streaming(req, path, tonic_prost::ProstCodec::default())
                    .await?
                    .into_inner();
                resp.message()
                    .await?
                    .ok_or_else(|| Status::unavailable("etcdserver: leader closed the keepalive"))
            }
        }
    }
}

fn unexpected() -> Status {
    Status::internal("etcdserver: unexpected response type")
}

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseApi {
    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let mut r = req.into_inner();
        self.server.check_quota(16)?;
        if r.id == 0 {
            r.id = self.server.new_lease_id();
        }
        match self.server.propose(Op::LeaseGrant(r)).await? {
            OpResponse::LeaseGrant(mut resp) => {
                let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or_default();
                resp.header = Some(self.server.header(rev));
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        match self
            .server
            .propose(Op::LeaseRevoke(req.into_inner()))
            .await?
        {
            OpResponse::LeaseRevoke(mut resp) => {
                let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or_default();
                resp.header = Some(self.server.header(rev));
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(r)) = incoming.next().await {
                let resp = api.renew(r.id).await;
                let stop = resp.is_err();
                if tx.send(resp).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        if let Some(ch) = self.leader_channel()? {
            let mut grpc = tonic::client::Grpc::new(ch);
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let path = http::uri::PathAndQuery::from_static("/etcdserverpb.Lease/LeaseTimeToLive");
            return grpc
                .unary(Request::new(r), path, tonic_prost::ProstCodec::default())
                .await;
        }
        let found = lock(&self.server.lessor()).time_to_live(r.id, self.server.now());
        let resp = match found {
            Some((ttl, granted, keys)) => pb::LeaseTimeToLiveResponse {
                header: self.header(),
                id: r.id,
                ttl,
                granted_ttl: granted,
                keys: if r.keys { keys } else { Vec::new() },
            },
            None => pb::LeaseTimeToLiveResponse {
                header: self.header(),
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let ids = lock(&self.server.lessor()).ids();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.header(),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}
