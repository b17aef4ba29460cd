//! The leader's cluster-version monitor (etcd's `monitorClusterVersions`) and the `/version`
//! endpoint it reads on every member's peer URL.
//!
//! Owns: asking each member for its server version (HTTP GET `<peer URL>/version`, as etcd's
//! `getMembersVersions`), deciding with [`super::decide_cluster_version`] and proposing the
//! change through raft (`ClusterVersionSet`).
//!
//! Must never: propose from a follower, or decide while a member's version is unknown (an
//! unreachable member blocks the change, as in etcd).

use super::{decide_cluster_version, Version, Versions};
use crate::etcdserver::request::{ClusterVersionSetRequest, Op};
use crate::etcdserver::EtcdServer;
use axum::extract::State;
use axum::Json;
use std::time::Duration;

/// etcd's monitorVersionInterval (rafthttp.ConnWriteTimeout − 1 s).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(4);

/// How often the monitor looks whether this member became leader (etcd also wakes on the first
/// commit of a term).
const LEADERSHIP_POLL: Duration = Duration::from_millis(500);

/// `/version` (client and peer URLs): this member's versions.
pub(crate) async fn versions_handler(State(server): State<EtcdServer>) -> Json<Versions> {
    Json(server.versions())
}

/// Runs for the member's lifetime: on becoming leader and every [`MONITOR_INTERVAL`] while
/// leading, decides the cluster version and proposes a change.
pub(crate) async fn monitor_cluster_version(server: EtcdServer) {
    let mut was_leader = false;
    let mut last_run: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(LEADERSHIP_POLL).await;
        let leading = server.status().is_leader;
        let now = tokio::time::Instant::now();
        let due = leading
            && (!was_leader || last_run.is_none_or(|t| now.duration_since(t) >= MONITOR_INTERVAL));
        was_leader = leading;
        if !due {
            continue;
        }
        last_run = Some(now);
        update_cluster_version_if_needed(&server).await;
    }
}

/// One round of etcd's UpdateClusterVersionIfNeeded.
async fn update_cluster_version_if_needed(server: &EtcdServer) {
    let versions = member_server_versions(server).await;
    let current = server.cluster_version();
    let target = server.downgrade_target();
    let Some(next) = decide_cluster_version(server.release(), current, &versions, target) else {
        return;
    };
    match current {
        None => {
            tracing::info!(cluster_version = %next.major_minor(), "setting up initial cluster version using v3 API")
        }
        Some(from) => {
            tracing::info!(from = %from.major_minor(), to = %next.major_minor(), "updating cluster version using v3 API")
        }
    }
    let req = ClusterVersionSetRequest {
        ver: next.line().to_string(),
    };
    match server.propose(Op::ClusterVersionSet(req)).await {
        Ok(_) => {
            tracing::info!(cluster_version = %next.major_minor(), "cluster version is updated")
        }
        Err(e) => tracing::warn!(error = %e.message(), "failed to update cluster version"),
    }
}

/// Every member's server version, in member order (`None`: could not be asked; etcd's
/// getMembersVersions). This member answers for itself without a request.
pub(crate) async fn member_server_versions(server: &EtcdServer) -> Vec<Option<Version>> {
    let members = server.cluster().members;
    let timeout = server.config().request_timeout();
    let mut versions = Vec::with_capacity(members.len());
    for m in &members {
        let v = if m.id == server.member_id() {
            Some(server.release().version())
        } else {
            peer_server_version(server, &m.peer_urls, timeout).await
        };
        if v.is_none() {
            tracing::warn!(remote_member_id = %format!("{:x}", m.id), "failed to get version");
        }
        versions.push(v);
    }
    versions
}

/// A peer's server version from its `/version`, trying each peer URL in turn.
async fn peer_server_version(
    server: &EtcdServer,
    peer_urls: &[String],
    timeout: Duration,
) -> Option<Version> {
    for url in peer_urls {
        match tokio::time::timeout(timeout, get_versions(server, url)).await {
            Ok(Ok(v)) => return Version::parse(&v.etcdserver).ok(),
            Ok(Err(e)) => {
                tracing::debug!(peer_url = %url, error = %e, "failed to reach the peer URL")
            }
            Err(_) => tracing::debug!(peer_url = %url, "failed to reach the peer URL (timeout)"),
        }
    }
    None
}

/// `<url>/version` over the seam's network.
async fn get_versions(server: &EtcdServer, url: &str) -> Result<Versions, String> {
    let hostport = crate::config::url_host_port("peer URL", url).map_err(|e| e.to_string())?;
    let (code, body) = crate::seam::http_get(&*server.net(), &hostport, "/version").await?;
    if !(200..300).contains(&code) {
        return Err(format!("GET /version: {code}"));
    }
    serde_json::from_slice::<Versions>(&body)
        .map_err(|e| format!("failed to unmarshal response: {e}"))
}
