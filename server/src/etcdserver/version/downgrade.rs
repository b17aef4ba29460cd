//! Downgrade, as etcd's `Maintenance.Downgrade` (VALIDATE / ENABLE / CANCEL) and the leader's
//! downgrade monitor (etcd's `monitorDowngrade`).
//!
//! Owns: the checks and errors of each action with etcd's messages and gRPC codes (3.6's, and
//! 3.5's where they differ), the raft request that enables or cancels the job
//! (`DowngradeInfoSet`), and the end of the job: when every member runs the target release,
//! the leader logs `the cluster has been downgraded` and cancels it.
//!
//! Must never: enable a downgrade to anything but the cluster version's minor minus one, or
//! cancel a job while a member still runs the newer release.

use super::{is_one_minor_below, Version};
use crate::etcdserver::request::{DowngradeInfoSetRequest, Op};
use crate::etcdserver::EtcdServer;
use etcd_api::etcdserverpb as pb;
use tonic::Status;

fn wrong_format() -> Status {
    Status::invalid_argument("etcdserver: wrong downgrade target version format")
}

fn invalid_target() -> Status {
    Status::invalid_argument("etcdserver: invalid downgrade target version")
}

fn in_progress() -> Status {
    Status::failed_precondition("etcdserver: cluster has a downgrade job in progress")
}

fn no_inflight() -> Status {
    Status::failed_precondition("etcdserver: no inflight downgrade job")
}

/// `X.Y` or `X.Y.Z` cut to major.minor (etcd's convertToClusterVersion).
pub fn parse_target(s: &str) -> Result<Version, Status> {
    Version::parse(s)
        .ok()
        .filter(|v| v.rc.is_none())
        .map(Version::line)
        .ok_or_else(wrong_format)
}

/// The checks VALIDATE and ENABLE share: a decided cluster version, a target one minor below
/// it, no job in flight. Returns the cluster version.
fn validate(server: &EtcdServer, target: Version) -> Result<Version, Status> {
    let Some(cluster) = server.cluster_version() else {
        let msg = "etcdserver: cluster version not found during downgrade";
        // 3.5 maps this error to Unavailable, 3.6 to FailedPrecondition.
        return Err(if server.release().is_3_5() {
            Status::unavailable(msg)
        } else {
            Status::failed_precondition(msg)
        });
    };
    if !is_one_minor_below(cluster.line(), target) {
        return Err(invalid_target());
    }
    if server.downgrade_target().is_some() {
        return Err(in_progress());
    }
    Ok(cluster)
}

/// The version a response carries: `3.6` on 3.6+, the full `3.6.0` on 3.5.
fn response_version(server: &EtcdServer, cluster: Option<Version>) -> String {
    match cluster {
        None => String::new(),
        Some(v) if server.release().is_3_5() => v.line().to_string(),
        Some(v) => v.major_minor(),
    }
}

/// Maintenance.Downgrade.
pub async fn downgrade(
    server: &EtcdServer,
    r: pb::DowngradeRequest,
) -> Result<pb::DowngradeResponse, Status> {
    use pb::downgrade_request::DowngradeAction;
    let action = DowngradeAction::try_from(r.action)
        .map_err(|_| Status::unknown("etcdserver: unknown method"))?;
    match action {
        DowngradeAction::Validate => {
            let target = parse_target(&r.version)?;
            server.linearizable_read().await?;
            let cluster = validate(server, target)?;
            Ok(response(server, Some(cluster)))
        }
        DowngradeAction::Enable => {
            let target = parse_target(&r.version)?;
            server.linearizable_read().await?;
            let cluster = validate(server, target).inspect_err(|e| {
                tracing::warn!(error = %e.message(), "reject downgrade request");
            })?;
            let enable = DowngradeInfoSetRequest {
                enabled: true,
                ver: target.to_string(),
            };
            server.propose(Op::DowngradeInfoSet(enable)).await?;
            Ok(response(server, Some(cluster)))
        }
        DowngradeAction::Cancel => {
            server.linearizable_read().await?;
            let result = cancel(server).await;
            match result {
                Ok(()) => {}
                // 3.5 answers the error; 3.6 only logs it and reports success.
                Err(e) if server.release().is_3_5() => return Err(e),
                Err(e) => tracing::warn!(error = %e.message(), "failed to cancel downgrade"),
            }
            Ok(response(server, server.cluster_version()))
        }
    }
}

fn response(server: &EtcdServer, cluster: Option<Version>) -> pb::DowngradeResponse {
    let revision = server.store().current_revision();
    pb::DowngradeResponse {
        header: Some(server.header(revision)),
        version: response_version(server, cluster),
    }
}

async fn cancel(server: &EtcdServer) -> Result<(), Status> {
    if server.downgrade_target().is_none() {
        return Err(no_inflight());
    }
    let req = DowngradeInfoSetRequest {
        enabled: false,
        ver: String::new(),
    };
    server.propose(Op::DowngradeInfoSet(req)).await.map(|_| ())
}

/// The leader's downgrade monitor: every `--downgrade-check-time`, when a job is enabled and
/// every member's server version has the target's major.minor, the job is done.
pub(crate) async fn monitor_downgrade(server: EtcdServer) {
    let every = server.config().downgrade_check_time;
    loop {
        tokio::time::sleep(every).await;
        let Some(target) = server.downgrade_target() else {
            continue;
        };
        if !server.status().is_leader {
            continue;
        }
        let versions = super::monitor::member_server_versions(&server).await;
        let all_on_target = versions
            .iter()
            .all(|v| v.map(Version::line) == Some(target));
        if !all_on_target {
            continue;
        }
        tracing::info!(cluster_version = %target, "the cluster has been downgraded");
        if let Err(e) = cancel(&server).await {
            tracing::warn!(error = %e.message(), "failed to cancel downgrade");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_major_minor_versions() {
        assert_eq!(parse_target("3.5").ok(), Some(Version::minor_line(3, 5)));
        assert_eq!(parse_target("3.5.2").ok(), Some(Version::minor_line(3, 5)));
        for bad in ["", "three", "3.6.0-rc.1", "3"] {
            let e = parse_target(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert_eq!(
                e.message(),
                "etcdserver: wrong downgrade target version format"
            );
        }
    }
}
