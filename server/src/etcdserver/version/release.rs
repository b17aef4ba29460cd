//! The etcd releases a member can emulate, and what each one does differently where upgrades
//! and downgrades can tell.
//!
//! Owns: parsing versions as etcd writes them (`3.5.20`, `3.6.0-rc.2`, and the `X.Y` / `X.Y.Z`
//! cluster versions), their order (a release candidate sorts before its release), the list of
//! releases `--emulate-release` accepts, and each release's behaviour switches.
//!
//! Must never: change with a client request, or be read from anywhere but the flags: a member
//! is one release from start to exit; an upgrade is a restart on the same disk.

use std::fmt;
use thiserror::Error;

/// The releases `--emulate-release` accepts. 3.7.0 stands for "a release newer than you".
pub const KNOWN_RELEASES: &[&str] = &["3.5.19", "3.5.20", "3.6.0-rc.2", "3.6.0", "3.7.0"];

/// What `--emulate-release` defaults to: the newest etcd release modelled (3.7.0 is the
/// hypothetical future one, chosen only on purpose).
pub const DEFAULT_RELEASE: &str = "3.6.0";

/// A version string that is not one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VersionError {
    /// Not `X.Y`, `X.Y.Z` or `X.Y.Z-rc.N`.
    #[error("invalid version {0:?} (want X.Y.Z, e.g. 3.5.20 or 3.6.0-rc.2)")]
    Malformed(String),
    /// A well-formed release this server cannot emulate.
    #[error("--emulate-release={0}: not an emulated release (known: {known})", known = KNOWN_RELEASES.join(", "))]
    UnknownRelease(String),
}

/// A version as etcd's semver: major.minor.patch and an optional release-candidate number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// `-rc.N`.
    pub rc: Option<u64>,
}

impl Version {
    /// `major.minor.0`.
    pub const fn minor_line(major: u64, minor: u64) -> Version {
        Version {
            major,
            minor,
            patch: 0,
            rc: None,
        }
    }

    /// Parses `X.Y`, `X.Y.Z` or `X.Y.Z-rc.N` (`X.Y` means `X.Y.0`, as etcd's downgrade target).
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let bad = || VersionError::Malformed(s.to_string());
        let (core, rc) = match s.split_once('-') {
            Some((core, pre)) => {
                let n = pre.strip_prefix("rc.").ok_or_else(bad)?;
                (core, Some(n.parse::<u64>().map_err(|_| bad())?))
            }
            None => (s, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let num = |p: &str| p.parse::<u64>().map_err(|_| bad());
        match parts.as_slice() {
            [major, minor] if rc.is_none() => Ok(Version::minor_line(num(major)?, num(minor)?)),
            [major, minor, patch] => Ok(Version {
                major: num(major)?,
                minor: num(minor)?,
                patch: num(patch)?,
                rc,
            }),
            _ => Err(bad()),
        }
    }

    /// The version cut to major.minor (etcd's cluster and storage versions).
    pub const fn line(self) -> Version {
        Version::minor_line(self.major, self.minor)
    }

    /// `X.Y`, as etcdctl's downgrade messages print a cluster version.
    pub fn major_minor(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The order key: a release candidate sorts before its release.
    fn key(self) -> (u64, u64, u64, bool, u64) {
        (
            self.major,
            self.minor,
            self.patch,
            self.rc.is_none(),
            self.rc.unwrap_or(0),
        )
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(rc) = self.rc {
            write!(f, "-rc.{rc}")?;
        }
        Ok(())
    }
}

/// The release a member emulates, with the behaviour that differs between releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release(Version);

impl Release {
    /// One of [`KNOWN_RELEASES`].
    pub fn parse(s: &str) -> Result<Release, VersionError> {
        let v = Version::parse(s)?;
        if !KNOWN_RELEASES.contains(&s) {
            return Err(VersionError::UnknownRelease(s.to_string()));
        }
        Ok(Release(v))
    }

    /// The default release.
    pub fn default_release() -> Release {
        Release::parse(DEFAULT_RELEASE).unwrap_or(Release(Version::minor_line(3, 6)))
    }

    /// The server version (`/version` etcdserver, Status.version).
    pub fn version(self) -> Version {
        self.0
    }

    /// True on the 3.5 line: the v2 store holds membership and the cluster version, the
    /// backend has a copy; no `storageVersion` key; `--enable-v2` exists, `--feature-gates`
    /// does not.
    pub fn is_3_5(self) -> bool {
        self.0.line() == Version::minor_line(3, 5)
    }

    /// Whether this release takes `--feature-gates` (3.6 and later, release candidates too).
    pub fn has_feature_gates(self) -> bool {
        self.0.line() >= Version::minor_line(3, 6)
    }

    /// Whether this release writes `meta/storageVersion` (3.6 and later).
    pub fn writes_storage_version(self) -> bool {
        self.has_feature_gates()
    }

    /// etcd issue 19557: 3.5.1–3.5.19 promote a learner in the v2 store but never write the
    /// promotion to the backend (the backend save refuses to overwrite an existing member).
    pub fn drops_learner_promotion_in_backend(self) -> bool {
        self.is_3_5() && (1..=19).contains(&self.0.patch)
    }

    /// 3.6.0-rc.3 and later repair 19557's damage at bootstrap (`SyncLearnerPromotionIfNeeded`:
    /// a voter in the v2 snapshot that the backend holds as a learner is promoted back).
    pub fn repairs_learner_promotion(self) -> bool {
        let first_fixed = Version {
            major: 3,
            minor: 6,
            patch: 0,
            rc: Some(3),
        };
        self.0 >= first_fixed
    }

    /// `--snapshot-count`'s default: 100 000 in 3.5, 10 000 from 3.6 on.
    pub fn default_snapshot_count(self) -> u64 {
        if self.is_3_5() {
            100_000
        } else {
            10_000
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect(s)
    }

    #[test]
    fn versions_parse_and_order_as_etcds_semver() {
        assert_eq!(v("3.5").to_string(), "3.5.0");
        assert_eq!(v("3.6.0-rc.2").to_string(), "3.6.0-rc.2");
        assert!(v("3.5.19") < v("3.5.20"));
        assert!(v("3.5.20") < v("3.6.0-rc.2"));
        assert!(v("3.6.0-rc.2") < v("3.6.0-rc.3"));
        assert!(v("3.6.0-rc.3") < v("3.6.0"));
        assert_eq!(v("3.6.0-rc.2").line(), v("3.6"));
        assert_eq!(v("3.6.0").major_minor(), "3.6");
        for bad in [
            "",
            "3",
            "3.x",
            "3.5.1.2",
            "3.6-rc.1",
            "3.6.0-beta.1",
            "v3.5.0",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn releases_and_their_behaviour() {
        let r = |s| Release::parse(s).expect(s);
        assert!(r("3.5.19").drops_learner_promotion_in_backend());
        assert!(!r("3.5.20").drops_learner_promotion_in_backend());
        assert!(!r("3.6.0-rc.2").repairs_learner_promotion());
        assert!(r("3.6.0").repairs_learner_promotion());
        assert!(r("3.6.0-rc.2").has_feature_gates() && !r("3.5.20").has_feature_gates());
        assert_eq!(r("3.5.20").default_snapshot_count(), 100_000);
        assert_eq!(r("3.6.0").default_snapshot_count(), 10_000);
        assert_eq!(Release::default_release().to_string(), "3.6.0");
        let e = Release::parse("3.4.23").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--emulate-release=3.4.23: not an emulated release (known: 3.5.19, 3.5.20, 3.6.0-rc.2, 3.6.0, 3.7.0)"
        );
    }
}
