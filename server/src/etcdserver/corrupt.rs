//! Corruption checks across members, as etcd's `server/etcdserver/corrupt.go`: members compare
//! hashes of their key spaces at the same revision, and a mismatch becomes a CORRUPT alarm
//! (which `/readyz`'s `data_corruption` reports and under which every member refuses writes).
//!
//! Owns:
//! - the peer endpoint `GET /members/hashkv` (a JSON body `{"revision":N}`, the
//!   `X-Etcd-Cluster-ID` check, etcd's answers and status codes) and asking every peer through
//!   it ([`peer_hashes`]);
//! - the start-up check (gate `InitialCorruptCheck`): an initialized member compares its hash
//!   at its current revision with every reachable peer's before it serves; a mismatch at the
//!   same compaction stops it with `<id> found data inconsistency with peers`;
//! - the leader's compaction hash check (gate `CompactHashCheck`, every
//!   `--compact-hash-check-time`): the hashes every member keeps at its latest compactions,
//!   compared at the same compaction; the members outside the majority hash get the alarm
//!   (3.6; 3.5 raises it for member 0);
//! - the leader's periodic check (`--corrupt-check-time`): its hash and its followers' at its
//!   current revision, after a linearizable read.
//!
//! Must never: raise an alarm except through raft, hold the store lock across an await, or
//! fail on what a peer answers (an unreachable or slow peer is skipped, as in etcd).

use super::request::Op;
use super::ServerError;
use crate::alarm::{ACTION_ACTIVATE, CORRUPT};
use crate::etcdserver::EtcdServer;
use crate::mvcc::{KeyValueHash, MvccError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::etcdserverpb as pb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// etcd's PeerHashKVPath, on the peer URLs.
pub(crate) const PEER_HASHKV_PATH: &str = "/members/hashkv";

/// The header naming the sender's cluster (rafthttp's).
const CLUSTER_ID_HEADER: &str = "x-etcd-cluster-id";

/// How often the leader loops look whether this member leads.
const LEADERSHIP_POLL: Duration = Duration::from_millis(500);

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `pb.HashKVRequest` as Go's encoding/json writes it.
#[derive(Serialize, Deserialize, Default)]
struct HashKvRequest {
    #[serde(default, skip_serializing_if = "is_zero")]
    revision: i64,
}

/// The header of a peer's hash answer: only the revision.
#[derive(Serialize, Deserialize, Default, Debug, Clone, Copy)]
struct HashHeader {
    #[serde(default, skip_serializing_if = "is_zero")]
    revision: i64,
}

/// `pb.HashKVResponse` as Go's encoding/json writes it (3.5 has no `hash_revision`).
#[derive(Serialize, Deserialize, Default, Debug, Clone, Copy)]
struct HashKvResponse {
    #[serde(default)]
    header: HashHeader,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    hash: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    compact_revision: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    hash_revision: i64,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Why a peer gave no hash.
#[derive(Debug, Clone, thiserror::Error)]
enum PeerHashError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("cluster ID mismatch")]
    ClusterIdMismatch,
    #[error("{0}")]
    Other(String),
}

/// One peer's answer.
struct PeerHash {
    id: u64,
    endpoints: Vec<String>,
    result: Result<HashKvResponse, PeerHashError>,
}

/// `GET /members/hashkv` on the peer URLs.
pub(crate) async fn serve_hashkv(
    State(server): State<EtcdServer>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let plain = |code: StatusCode, text: &str| (code, format!("{text}\n")).into_response();
    if method != Method::GET {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        resp.headers_mut()
            .insert(axum::http::header::ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    let cluster_id = format!("{:x}", server.cluster_id());
    if let Some(sent) = headers.get(CLUSTER_ID_HEADER) {
        if sent.as_bytes() != cluster_id.as_bytes() {
            return plain(StatusCode::PRECONDITION_FAILED, "cluster ID mismatch");
        }
    }
    let Ok(req) = serde_json::from_slice::<HashKvRequest>(&body) else {
        tracing::warn!("failed to unmarshal request");
        return plain(StatusCode::BAD_REQUEST, "error unmarshalling request");
    };
    let found = server.store().hash_by_rev(req.revision);
    let (h, current) = match found {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(requested_revision = req.revision, error = %e, "failed to get hashKV");
            return plain(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let resp = HashKvResponse {
        header: HashHeader { revision: current },
        hash: h.hash,
        compact_revision: h.compact_revision,
        hash_revision: if server.release().is_3_5() {
            0
        } else {
            h.revision
        },
    };
    let mut out = axum::Json(resp).into_response();
    if let Ok(v) = HeaderValue::from_str(&cluster_id) {
        out.headers_mut().insert(CLUSTER_ID_HEADER, v);
    }
    out
}

/// Every other member's hash at `rev`, each member's peer URLs tried in turn (etcd's
/// getPeerHashKVs).
async fn peer_hashes(server: &EtcdServer, rev: i64) -> Vec<PeerHash> {
    let members = server.cluster().members;
    let timeout = server.config().request_timeout();
    let cluster_id = format!("{:x}", server.cluster_id());
    let body = serde_json::to_vec(&HashKvRequest { revision: rev }).unwrap_or_default();
    let mut out = Vec::new();
    for m in members.iter().filter(|m| m.id != server.member_id()) {
        let mut result = Err(PeerHashError::Other("no peer URL".into()));
        for url in &m.peer_urls {
            let asked = tokio::time::timeout(
                timeout,
                hash_of_peer(server, url, &cluster_id, body.clone()),
            )
            .await
            .unwrap_or_else(|_| Err(PeerHashError::Other(format!("{url}: timed out"))));
            match asked {
                Err(PeerHashError::Other(e)) => {
                    tracing::warn!(
                        local_member_id = %format!("{:x}", server.member_id()),
                        requested_revision = rev,
                        remote_peer_endpoint = %url,
                        error = %e,
                        "failed hash kv request"
                    );
                    result = Err(PeerHashError::Other(e));
                }
                other => {
                    result = other;
                    break;
                }
            }
        }
        out.push(PeerHash {
            id: m.id,
            endpoints: m.peer_urls.clone(),
            result,
        });
    }
    out
}

/// One peer URL's `/members/hashkv` answer (etcd's HashByRev client).
async fn hash_of_peer(
    server: &EtcdServer,
    url: &str,
    cluster_id: &str,
    body: Vec<u8>,
) -> Result<HashKvResponse, PeerHashError> {
    let hostport = crate::config::url_host_port("peer URL", url)
        .map_err(|e| PeerHashError::Other(e.to_string()))?;
    let headers = [
        ("content-type", "application/json"),
        (CLUSTER_ID_HEADER, cluster_id),
    ];
    let (code, body) = crate::seam::http_request(
        &*server.net(),
        &hostport,
        Method::GET,
        PEER_HASHKV_PATH,
        &headers,
        body,
    )
    .await
    .map_err(PeerHashError::Other)?;
    let text = String::from_utf8_lossy(&body);
    match code {
        200 => serde_json::from_slice(&body)
            .map_err(|e| PeerHashError::Other(format!("failed to unmarshal response: {e}"))),
        400 if text.contains(&MvccError::Compacted.to_string()) => Err(PeerHashError::Compacted),
        400 if text.contains(&MvccError::FutureRev.to_string()) => Err(PeerHashError::FutureRev),
        412 if text.contains("cluster ID mismatch") => Err(PeerHashError::ClusterIdMismatch),
        _ => Err(PeerHashError::Other(format!("unknown error: {text}"))),
    }
}

/// The start-up check (etcd's InitialCheck), for a member that has data: its hash at its
/// current revision against every reachable peer's.
pub(crate) async fn initial_check(server: &EtcdServer) -> Result<(), ServerError> {
    let id = format!("{:x}", server.member_id());
    tracing::info!(local_member_id = %id, timeout = ?server.config().request_timeout(), "starting initial corruption check");
    let local = server.store().hash_by_rev(0);
    let (h, _) = local
        .map_err(|e| ServerError::DataInconsistency(format!("{id} failed to fetch hash ({e})")))?;
    let mut mismatches = 0;
    for p in peer_hashes(server, h.revision).await {
        let peer = format!("{:x}", p.id);
        match p.result {
            Ok(r) if r.hash != h.hash && r.compact_revision == h.compact_revision => {
                tracing::warn!(
                    local_member_id = %id, local_member_revision = h.revision,
                    local_member_compact_revision = h.compact_revision, local_member_hash = h.hash,
                    remote_peer_id = %peer, remote_peer_endpoints = ?p.endpoints,
                    remote_peer_revision = r.header.revision,
                    remote_peer_compact_revision = r.compact_revision, remote_peer_hash = r.hash,
                    "found different hash values from remote peer"
                );
                mismatches += 1;
            }
            Ok(r) if r.hash != h.hash => tracing::warn!(
                local_member_id = %id, local_member_compact_revision = h.compact_revision,
                remote_peer_id = %peer, remote_peer_compact_revision = r.compact_revision,
                "found different compact revision values from remote peer"
            ),
            Ok(_) => {}
            Err(PeerHashError::FutureRev) => tracing::warn!(
                local_member_id = %id, remote_peer_id = %peer,
                "cannot fetch hash from slow remote peer"
            ),
            Err(PeerHashError::Compacted) => tracing::warn!(
                local_member_id = %id, remote_peer_id = %peer,
                "cannot fetch hash from remote peer; local member is behind"
            ),
            Err(PeerHashError::ClusterIdMismatch) => tracing::warn!(
                local_member_id = %id, remote_peer_id = %peer, "cluster ID mismatch"
            ),
            Err(PeerHashError::Other(_)) => {}
        }
    }
    if mismatches > 0 {
        return Err(ServerError::DataInconsistency(format!(
            "{id} found data inconsistency with peers"
        )));
    }
    tracing::info!(local_member_id = %id, "initial corruption checking passed; no corruption");
    Ok(())
}

/// Raises the CORRUPT alarm for `member` (0: unknown) through raft, in the background.
fn trigger_corrupt_alarm(server: &EtcdServer, member: u64) {
    let s = server.clone();
    tokio::spawn(async move {
        let req = pb::AlarmRequest {
            action: ACTION_ACTIVATE,
            member_id: member,
            alarm: CORRUPT,
        };
        if let Err(e) = s.propose(Op::Alarm(req)).await {
            tracing::warn!(error = %e.message(), "failed to raise the CORRUPT alarm");
        }
    });
}

/// Runs for the member's lifetime: while it leads, the compaction hash check every
/// `--compact-hash-check-time` (gate `CompactHashCheck`) and the periodic check every
/// `--corrupt-check-time` (when given).
pub(crate) async fn monitor(server: EtcdServer) {
    let cfg = server.config();
    let compact_every = cfg
        .feature_enabled("CompactHashCheck")
        .then_some(cfg.compact_hash_check_time);
    let periodic_every = cfg.corrupt_check_time;
    if compact_every.is_none() && periodic_every.is_none() {
        return;
    }
    if let Some(interval) = periodic_every {
        tracing::info!(local_member_id = %format!("{:x}", server.member_id()), ?interval, "enabled corruption checking");
    }
    let mut latest_checked = 0;
    let start = tokio::time::Instant::now();
    let (mut next_compact, mut next_periodic) = (start, start);
    loop {
        tokio::time::sleep(LEADERSHIP_POLL).await;
        let now = tokio::time::Instant::now();
        let leading = server.status().is_leader;
        if let Some(every) = compact_every {
            if now >= next_compact + every {
                next_compact = now;
                if leading {
                    compact_hash_check(&server, &mut latest_checked).await;
                }
            }
        }
        if let Some(every) = periodic_every {
            if now >= next_periodic + every {
                next_periodic = now;
                if leading {
                    periodic_check(&server).await;
                }
            }
        }
    }
}

/// The leader's compaction hash check (etcd's CompactHashCheck): the newest compaction hash
/// not yet checked that every peer can answer decides.
async fn compact_hash_check(server: &EtcdServer, latest_checked: &mut i64) {
    let leader = format!("{:x}", server.member_id());
    tracing::info!(local_member_id = %leader, timeout = ?server.config().request_timeout(), "starting compact hash check");
    let hashes: Vec<KeyValueHash> = server
        .store()
        .compaction_hashes()
        .into_iter()
        .filter(|h| h.revision > *latest_checked)
        .collect();
    let mut checked = 0;
    for h in hashes {
        checked += 1;
        let peers = peer_hashes(server, h.revision).await;
        if peers.is_empty() {
            continue;
        }
        if check_peer_hashes(server, h, &peers, latest_checked) {
            break;
        }
    }
    tracing::info!(
        number_of_hashes_checked = checked,
        "finished compaction hash check"
    );
}

/// Compares the peers' hashes at compaction `h`; true when this revision decided the check.
fn check_peer_hashes(
    server: &EtcdServer,
    h: KeyValueHash,
    peers: &[PeerHash],
    latest_checked: &mut i64,
) -> bool {
    let leader_id = server.member_id();
    let leader = format!("{leader_id:x}");
    let mut groups: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    groups.entry(h.hash).or_default().push(leader_id);
    let mut peers_checked = 0;
    for p in peers {
        let skipped = match &p.result {
            Ok(r) if r.compact_revision == h.compact_revision => {
                if server.release().is_3_5() && r.hash != h.hash {
                    tracing::error!(
                        revision = h.revision, leader_compact_revision = h.compact_revision,
                        leader_hash = h.hash, follower_compact_revision = r.compact_revision,
                        follower_hash = r.hash, follower_peer_id = %format!("{:x}", p.id),
                        "failed compaction hash check"
                    );
                    trigger_corrupt_alarm(server, 0);
                    return true;
                }
                groups.entry(r.hash).or_default().push(p.id);
                peers_checked += 1;
                None
            }
            Ok(r) => Some(format!(
                "the peer's CompactRevision {} doesn't match leader's CompactRevision {}",
                r.compact_revision, h.compact_revision
            )),
            Err(_) => Some("no response".to_string()),
        };
        if let Some(reason) = skipped {
            tracing::warn!(number_of_peers = peers.len(), leader_id = %leader, peer_id = %format!("{:x}", p.id), %reason, "Skipped peer's hash");
        }
    }
    if groups.len() == 1 {
        if peers_checked == peers.len() {
            tracing::info!(
                number_of_peers_checked = peers_checked,
                revision = h.revision,
                compact_revision = h.compact_revision,
                "successfully checked hash on whole cluster"
            );
            *latest_checked = h.revision;
            return true;
        }
        tracing::warn!(
            number_of_peers_checked = peers_checked,
            number_of_peers = peers.len(),
            revision = h.revision,
            compact_revision = h.compact_revision,
            "skipped revision in compaction hash check; was not able to check all peers"
        );
        return false;
    }
    // A mismatch: the members outside a quorum-sized group of equal hashes are corrupt.
    let members = peers.len() + 1;
    let quorum = members / 2 + 1;
    let majority = groups
        .iter()
        .find(|(_, ids)| ids.len() >= quorum)
        .map(|(hash, _)| *hash);
    let Some(majority) = majority else {
        tracing::error!(
            leader_id = %leader, leader_revision = h.revision,
            leader_compact_revision = h.compact_revision, leader_hash = h.hash,
            "Detected compaction hash mismatch but cannot identify the corrupted members, so intentionally set the memberID as 0"
        );
        trigger_corrupt_alarm(server, 0);
        return true;
    };
    for (hash, ids) in groups.iter().filter(|(hash, _)| **hash != majority) {
        let peer_ids: Vec<String> = ids.iter().map(|id| format!("{id:x}")).collect();
        tracing::error!(
            leader_id = %leader, leader_revision = h.revision,
            leader_compact_revision = h.compact_revision, leader_hash = h.hash,
            peer_hash = hash, peer_ids = ?peer_ids, quorum_exist = true,
            "Detected compaction hash mismatch"
        );
        for id in ids {
            trigger_corrupt_alarm(server, *id);
        }
    }
    true
}

/// The leader's periodic check (etcd's PeriodicCheck): at most one alarm per run.
async fn periodic_check(server: &EtcdServer) {
    let Ok((h, _)) = server.store().hash_by_rev(0) else {
        return;
    };
    let peers = peer_hashes(server, h.revision).await;
    if let Err(e) = server.linearizable_read().await {
        tracing::warn!(error = %e.message(), "failed to check hash KV");
        return;
    }
    let Ok((h2, rev2)) = server.store().hash_by_rev(0) else {
        return;
    };
    // 3.5 raises every alarm for member 0.
    let alarm_for = |id: u64| if server.release().is_3_5() { 0 } else { id };
    if h2.hash != h.hash && h2.revision == h.revision && h2.compact_revision == h.compact_revision {
        tracing::warn!(
            revision_1 = h.revision,
            compact_revision_1 = h.compact_revision,
            hash_1 = h.hash,
            revision_2 = h2.revision,
            compact_revision_2 = h2.compact_revision,
            hash_2 = h2.hash,
            "found hash mismatch"
        );
        trigger_corrupt_alarm(server, alarm_for(server.member_id()));
        return;
    }
    let mut checked = 0;
    for p in &peers {
        let Ok(r) = &p.result else { continue };
        checked += 1;
        let follower = format!("{:x}", p.id);
        let problem = if r.header.revision > rev2 {
            Some("revision from follower must be less than or equal to leader's")
        } else if r.compact_revision > h2.compact_revision {
            Some("compact revision from follower must be less than or equal to leader's")
        } else if r.compact_revision == h.compact_revision && r.hash != h.hash {
            Some("same compact revision then hashes must match")
        } else {
            None
        };
        if let Some(problem) = problem {
            tracing::warn!(
                leader_revision = rev2, follower_revision = r.header.revision,
                leader_compact_revision = h2.compact_revision,
                follower_compact_revision = r.compact_revision, leader_hash = h.hash,
                follower_hash = r.hash, follower_peer_id = %follower, "{problem}"
            );
            trigger_corrupt_alarm(server, alarm_for(p.id));
            return;
        }
    }
    tracing::info!(
        number_of_peers_checked = checked,
        "finished peer corruption check"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_answers_are_written_as_gos_encoding_json_writes_them() {
        let full = HashKvResponse {
            header: HashHeader { revision: 9 },
            hash: 7,
            compact_revision: 3,
            hash_revision: 5,
        };
        assert_eq!(
            serde_json::to_string(&full).expect("json"),
            r#"{"header":{"revision":9},"hash":7,"compact_revision":3,"hash_revision":5}"#
        );
        let empty: HashKvResponse = serde_json::from_str("{}").expect("empty answer");
        assert_eq!((empty.hash, empty.header.revision), (0, 0));
        assert_eq!(
            serde_json::to_string(&HashKvRequest { revision: 0 }).expect("json"),
            "{}"
        );
    }
}
