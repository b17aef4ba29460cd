//! Versions, as etcd's `server/etcdserver/version`: the release this member emulates (server
//! version), the cluster version the leader decides and proposes through raft, and the
//! storage version each member keeps in `meta/storageVersion`.
//!
//! Owns: the decision rules (which cluster version the members' server versions allow, per
//! the leader's release line), the storage version a cluster version implies, and the start-up
//! refusals of data a release must not open.
//!
//! Must never: lower the cluster version without an enabled downgrade on a 3.6+ leader, or let
//! a member start on data whose cluster or storage version is above its own release.

mod downgrade;
mod migrate;
mod monitor;
mod release;
mod schema;

pub(crate) use downgrade::{downgrade, monitor_downgrade};
pub use migrate::{migrate, MigrateArgs, MigrateError};
pub(crate) use monitor::{monitor_cluster_version, versions_handler};
pub use release::{Release, Version, VersionError, DEFAULT_RELEASE, KNOWN_RELEASES};
pub use schema::VersionState;
pub(crate) use schema::{
    load as load_versions, set_cluster_version, set_downgrade, sync_storage_version,
};
use thiserror::Error;

/// The oldest cluster version etcd proposes when nothing better is known (`MinClusterVersion`).
pub const MIN_CLUSTER_VERSION: Version = Version::minor_line(3, 0);

/// What `/version` answers (etcd's `version.Versions`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Versions {
    /// The member's release.
    pub etcdserver: String,
    /// The cluster version (`not_decided` before the leader decided one).
    pub etcdcluster: String,
    /// The storage version (`unknown` when the data has none); 3.5 releases omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// Why a member refuses to start on its data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VersionCheckError {
    /// The data's cluster version is above this release (etcd's MustDetectDowngrade).
    #[error("invalid downgrade; server version is lower than determined cluster version (current-server-version {server}, determined-cluster-version {cluster}, data {file})")]
    ServerBelowCluster {
        /// This release.
        server: Version,
        /// The data's cluster version.
        cluster: Version,
        /// The database file.
        file: String,
    },
    /// The data's storage version is one this release does not know (schema.Validate).
    #[error("Failed to validate schema: cannot create migration plan: version {version:?} is not supported (data {file})")]
    UnsupportedStorage {
        /// The storage version, as etcd prints it (`3.7.0`).
        version: String,
        /// The database file.
        file: String,
    },
    /// A version key holds bytes that are no version.
    #[error("{file}: {key} holds {value:?}, which is not a version")]
    Corrupt {
        /// The database file.
        file: String,
        /// `meta/storageVersion` or `cluster/clusterVersion`.
        key: &'static str,
        /// What it holds.
        value: String,
    },
}

/// The cluster version the leader should propose, or `None` to leave it as it is.
///
/// `members` are the members' server versions (`None`: not reachable). A 3.6+ leader only
/// raises the cluster version (to the members' lowest server version, cut to major.minor),
/// except to a downgrade target. A 3.5 leader follows 3.5's `IsValidVersionChange`: the lowest
/// member version even when it is one minor below, without any downgrade enabled.
pub fn decide_cluster_version(
    leader: Release,
    current: Option<Version>,
    members: &[Option<Version>],
    downgrade_target: Option<Version>,
) -> Option<Version> {
    let lowest = members
        .iter()
        .copied()
        .collect::<Option<Vec<Version>>>()
        .and_then(|v| v.into_iter().min())
        .map(Version::line);
    let Some(current) = current.map(Version::line) else {
        return Some(lowest.unwrap_or(MIN_CLUSTER_VERSION));
    };
    let lowest = lowest?;
    if !leader.is_3_5() {
        if let Some(target) = downgrade_target.map(Version::line) {
            // etcd logs "Cannot downgrade from ..." and changes nothing when invalid.
            let valid = is_one_minor_below(current, target) && is_one_minor_below(lowest, target);
            return (target != current && valid).then_some(target);
        }
    }
    let up = lowest.major == current.major && lowest > current;
    let down = leader.is_3_5() && is_one_minor_below(current, lowest);
    (up || down).then_some(lowest)
}

/// `to` is exactly one minor below `from` (etcd's isValidDowngrade).
pub fn is_one_minor_below(from: Version, to: Version) -> bool {
    from.major == to.major && from.minor == to.minor + 1
}

/// The storage version a 3.6+ member keeps for a cluster version: its major.minor from 3.6 on;
/// none (the key deleted, as 3.5 data has it) below.
pub fn storage_version_for(cluster: Version) -> Option<Version> {
    let line = cluster.line();
    (line >= Version::minor_line(3, 6)).then_some(line)
}

/// Checks at start-up that `release` may open data with these versions.
pub fn check_data_versions(
    release: Release,
    cluster: Option<Version>,
    storage: Option<Version>,
    downgrade_target: Option<Version>,
    file: &str,
) -> Result<(), VersionCheckError> {
    let server = release.version().line();
    // 3.6 validates the schema when it opens the backend, before membership is recovered.
    if let Some(storage) = storage.filter(|_| release.writes_storage_version()) {
        if storage.line() > server {
            return Err(VersionCheckError::UnsupportedStorage {
                version: storage.line().to_string(),
                file: file.to_string(),
            });
        }
    }
    if let Some(cluster) = cluster.map(Version::line) {
        // 3.5 lets a member of the target release join while a downgrade is enabled.
        let allowed_by_downgrade =
            release.is_3_5() && downgrade_target.map(Version::line) == Some(server);
        if server < cluster && !allowed_by_downgrade {
            return Err(VersionCheckError::ServerBelowCluster {
                server,
                cluster,
                file: file.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect(s)
    }
    fn r(s: &str) -> Release {
        Release::parse(s).expect(s)
    }

    #[test]
    fn cluster_version_follows_the_lowest_member_and_only_rises_on_3_6() {
        let all = |vs: &[&str]| vs.iter().map(|s| Some(v(s))).collect::<Vec<_>>();
        // First decision: the lowest server version, cut.
        let d = decide_cluster_version(r("3.6.0"), None, &all(&["3.6.0", "3.5.20"]), None);
        assert_eq!(d, Some(v("3.5")));
        // A rolling upgrade: stays until the last member runs 3.6.
        let mixed = all(&["3.6.0", "3.6.0", "3.5.20"]);
        assert_eq!(
            decide_cluster_version(r("3.6.0"), Some(v("3.5")), &mixed, None),
            None
        );
        let up = all(&["3.6.0", "3.6.0", "3.6.0"]);
        assert_eq!(
            decide_cluster_version(r("3.6.0"), Some(v("3.5")), &up, None),
            Some(v("3.6"))
        );
        // An unreachable member: no decision.
        let partial = vec![Some(v("3.6.0")), None];
        assert_eq!(
            decide_cluster_version(r("3.6.0"), Some(v("3.5")), &partial, None),
            None
        );
        // A 3.6 leader never lowers without a downgrade; a 3.5 leader does by one minor.
        assert_eq!(
            decide_cluster_version(r("3.6.0"), Some(v("3.6")), &mixed, None),
            None
        );
        assert_eq!(
            decide_cluster_version(r("3.5.20"), Some(v("3.6")), &mixed, None),
            Some(v("3.5"))
        );
        // A downgrade target is adopted at once, before any binary changes.
        assert_eq!(
            decide_cluster_version(r("3.6.0"), Some(v("3.6")), &up, Some(v("3.5"))),
            Some(v("3.5"))
        );
        assert_eq!(
            decide_cluster_version(r("3.6.0"), Some(v("3.5")), &up, Some(v("3.5"))),
            None
        );
    }

    #[test]
    fn storage_version_and_start_up_checks() {
        assert_eq!(storage_version_for(v("3.5")), None);
        assert_eq!(storage_version_for(v("3.6.0")), Some(v("3.6")));
        let f = "member/snap/db";
        assert!(check_data_versions(r("3.6.0"), Some(v("3.5")), None, None, f).is_ok());
        let e =
            check_data_versions(r("3.5.20"), Some(v("3.6")), Some(v("3.6")), None, f).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "invalid downgrade; server version is lower than determined cluster version"
            ),
            "{e}"
        );
        assert!(
            check_data_versions(r("3.5.20"), Some(v("3.6")), None, Some(v("3.5")), f).is_ok(),
            "3.5 joins a cluster downgrading to 3.5"
        );
        let e =
            check_data_versions(r("3.6.0"), Some(v("3.6")), Some(v("3.7")), None, f).unwrap_err();
        assert!(
            e.to_string().contains("version \"3.7.0\" is not supported"),
            "{e}"
        );
    }
}
