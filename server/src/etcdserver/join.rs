//! Joining an existing cluster (`--initial-cluster-state existing`): learn this member's id and
//! the member table from a running member before starting, as etcd does over its peer URLs.
//!
//! Owns: asking the other members named in `--initial-cluster` (on their peer URLs, which also
//! serve the Cluster service) for their member list, and finding ourselves in it by our
//! advertised peer URLs. The list is the member's own table, as etcd's peer `/members`
//! handler serves it, not a linearizable read (which would need the quorum this member
//! completes).
//!
//! Must never: invent an id: a member that was not added with `member add` first is refused.

use super::ServerError;
use crate::config::{split_urls, url_host_port, Config, InitialMember};
use crate::membership::{Cluster, Member};
use crate::rafthttp::channel_to;
use crate::seam::World;
use etcd_api::etcdserverpb as pb;
use std::time::Duration;

/// How long to keep trying the other members.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster as a running member reports it, and our id in it.
pub async fn fetch_cluster(
    cfg: &Config,
    world: &World,
    initial: &[InitialMember],
) -> Result<(Cluster, u64), ServerError> {
    let mine = split_urls(&cfg.initial_advertise_peer_urls);
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut last_error = String::from("no other member in --initial-cluster");
    loop {
        for m in initial.iter().filter(|m| m.name != cfg.name) {
            for url in &m.peer_urls {
                match ask(world, url).await {
                    Ok(resp) => {
                        let members: Vec<Member> = resp
                            .members
                            .iter()
                            .map(|p| Member {
                                id: p.id,
                                name: p.name.clone(),
                                peer_urls: p.peer_ur_ls.clone(),
                                client_urls: p.client_ur_ls.clone(),
                                is_learner: p.is_learner,
                            })
                            .collect();
                        let me = members
                            .iter()
                            .find(|x| x.peer_urls.iter().any(|u| mine.contains(u)))
                            .map(|x| x.id)
                            .ok_or_else(|| {
                                ServerError::Inconsistent(format!(
                                    "member with peer URLs {mine:?} is not in the cluster; \
                                     add it first with `etcdctl member add`"
                                ))
                            })?;
                        let cluster_id = resp.header.map(|h| h.cluster_id).unwrap_or_default();
                        let mut members = members;
                        members.sort_by_key(|x| x.id);
                        return Ok((
                            Cluster {
                                cluster_id,
                                members,
                                removed: Default::default(),
                            },
                            me,
                        ));
                    }
                    Err(e) => last_error = format!("{url}: {e}"),
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ServerError::Inconsistent(format!(
                "cannot fetch the cluster's members to join it: {last_error}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ask(world: &World, peer_url: &str) -> Result<pb::MemberListResponse, String> {
    let addr = url_host_port("--initial-cluster", peer_url).map_err(|e| e.to_string())?;
    let ch = channel_to(world.net.clone(), &addr)?;
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = http::uri::PathAndQuery::from_static("/etcdserverpb.Cluster/MemberList");
    // etcd's peer `/members` handler answers from the member's own table, without a
    // linearizable read: a member added to a one-member cluster makes a quorum of two that
    // cannot read anything until this member has joined.
    let req = tonic::Request::new(pb::MemberListRequest {
        linearizable: false,
    });
    grpc.unary(req, path, tonic_prost::ProstCodec::default())
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.message().to_string())
}
