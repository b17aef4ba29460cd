//! Where versions live in the backend (etcd's `server/storage/schema`): `cluster/clusterVersion`
//! and `meta/storageVersion`, read at start-up and written by the applier.
//!
//! Owns: the encoding (etcd's version strings, `3.6.0`) and the state the applier, the API and
//! the monitor share ([`VersionState`]).
//!
//! Must never: accept bytes that are no version as one: a damaged key is a start-up error
//! naming the file.

use super::{storage_version_for, Release, Version, VersionCheckError};
use crate::backend::{cluster, meta, Backend, Bucket};

/// The versions a member holds, shared by the applier, the API and the monitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersionState {
    /// The cluster version (`None`: not decided yet).
    pub cluster: Option<Version>,
    /// The storage version in `meta/storageVersion` (`None`: absent, as in 3.5 data).
    pub storage: Option<Version>,
    /// The enabled downgrade's target, if any.
    pub downgrade_target: Option<Version>,
}

fn read_version(
    backend: &Backend,
    bucket: Bucket,
    key: &'static [u8],
    name: &'static str,
) -> Result<Option<Version>, VersionCheckError> {
    let file = backend.path().display().to_string();
    let raw = backend
        .get(bucket, key)
        .map_err(|e| VersionCheckError::Corrupt {
            file: file.clone(),
            key: name,
            value: format!("unreadable: {e}"),
        })?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    Version::parse(&text)
        .map(Some)
        .map_err(|_| VersionCheckError::Corrupt {
            file,
            key: name,
            value: text,
        })
}

/// Reads the versions stored in `backend`.
pub fn load(backend: &Backend) -> Result<VersionState, VersionCheckError> {
    Ok(VersionState {
        cluster: read_version(
            backend,
            Bucket::Cluster,
            cluster::CLUSTER_VERSION,
            "cluster/clusterVersion",
        )?,
        storage: read_version(
            backend,
            Bucket::Meta,
            meta::STORAGE_VERSION,
            "meta/storageVersion",
        )?,
        downgrade_target: read_downgrade(backend)?,
    })
}

/// The downgrade job as etcd stores it in `cluster/downgrade`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DowngradeInfo {
    #[serde(rename = "target-version")]
    target_version: String,
    enabled: bool,
}

fn read_downgrade(backend: &Backend) -> Result<Option<Version>, VersionCheckError> {
    let file = backend.path().display().to_string();
    let corrupt = |value: String| VersionCheckError::Corrupt {
        file: file.clone(),
        key: "cluster/downgrade",
        value,
    };
    let raw = backend
        .get(Bucket::Cluster, cluster::DOWNGRADE)
        .map_err(|e| corrupt(format!("unreadable: {e}")))?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    let info: DowngradeInfo = serde_json::from_slice(&raw).map_err(|_| corrupt(text.clone()))?;
    if !info.enabled {
        return Ok(None);
    }
    Version::parse(&info.target_version)
        .map(|v| Some(v.line()))
        .map_err(|_| corrupt(text))
}

/// Records the downgrade job (`None`: none in flight).
pub fn set_downgrade(backend: &mut Backend, state: &mut VersionState, target: Option<Version>) {
    let info = DowngradeInfo {
        target_version: target.map(|v| v.to_string()).unwrap_or_default(),
        enabled: target.is_some(),
    };
    // A struct of a string and a bool always serializes.
    let json = serde_json::to_vec(&info).unwrap_or_default();
    backend.put(Bucket::Cluster, cluster::DOWNGRADE, &json);
    match target {
        Some(t) => tracing::info!(target_version = %t, "downgrade enabled"),
        None => tracing::info!("downgrade disabled"),
    }
    state.downgrade_target = target;
}

/// Records a new cluster version; a 3.6+ member moves its storage version with it (etcd's
/// UpdateStorageVersionIfNeeded: `storageVersion` written from 3.6 on, deleted below).
pub fn set_cluster_version(
    backend: &mut Backend,
    state: &mut VersionState,
    release: Release,
    version: Version,
) {
    let version = version.line();
    backend.put(
        Bucket::Cluster,
        cluster::CLUSTER_VERSION,
        version.to_string().as_bytes(),
    );
    state.cluster = Some(version);
    sync_storage_version(backend, state, release);
}

/// Moves `meta/storageVersion` to what the cluster version implies, on releases that keep one.
pub fn sync_storage_version(backend: &mut Backend, state: &mut VersionState, release: Release) {
    let Some(cluster) = state.cluster else {
        return;
    };
    if !release.writes_storage_version() {
        return;
    }
    let want = storage_version_for(cluster);
    if want == state.storage {
        return;
    }
    match want {
        Some(v) => backend.put(
            Bucket::Meta,
            meta::STORAGE_VERSION,
            v.to_string().as_bytes(),
        ),
        None => backend.delete(Bucket::Meta, meta::STORAGE_VERSION),
    }
    tracing::info!(
        new_storage_version = %want.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
        "updated storage version"
    );
    state.storage = want;
    if let Some(target) = state.downgrade_target {
        tracing::info!(target_version = %target, server_version = %release, "The server is ready to downgrade");
    }
}
