//! Versions this server reports: server, cluster and storage version.
//!
//! Owns: the release this binary emulates. Emulated release lines (3.5.x, 3.6.x) chosen at
//! start, cluster-version negotiation and downgrade arrive with the release-lines issue; until
//! then the server is a 3.6.0 release in a 3.6 cluster.
//!
//! Must never: be changed by a client request.

/// The release (`/version` etcdserver, Maintenance.Status version).
pub const SERVER_VERSION: &str = "3.6.0";
/// The cluster version (`/version` etcdcluster).
pub const CLUSTER_VERSION: &str = "3.6.0";
/// The storage version (`meta/storageVersion`, written by 3.6+).
pub const STORAGE_VERSION: &str = "3.6.0";
