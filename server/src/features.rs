//! Feature gates (`--feature-gates=Name=true,...`), with etcd 3.6's gates, stages and defaults.
//!
//! Owns: parsing and validating the flag, and answering whether a gate is on.
//!
//! Must never: accept a gate name etcd does not know (etcd refuses to start), or change at run
//! time.

use std::collections::BTreeMap;

/// Maturity of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Off by default, may change.
    Alpha,
    /// On by default.
    Beta,
}

impl Stage {
    /// The `stage` label of `etcd_server_feature_enabled` (etcd's PreRelease string).
    pub fn label(self) -> &'static str {
        match self {
            Stage::Alpha => "ALPHA",
            Stage::Beta => "BETA",
        }
    }
}

/// etcd v3.6.0's feature gates: name, stage, default (`server/features/etcd_features.go`;
/// LeaseCheckpointPersist is commented deprecated there but specified Alpha, false).
pub const GATES: [(&str, Stage, bool); 7] = [
    ("StopGRPCServiceOnDefrag", Stage::Alpha, false),
    ("InitialCorruptCheck", Stage::Alpha, false),
    ("CompactHashCheck", Stage::Alpha, false),
    ("TxnModeWriteWithSharedBuffer", Stage::Beta, true),
    ("LeaseCheckpoint", Stage::Alpha, false),
    ("LeaseCheckpointPersist", Stage::Alpha, false),
    ("SetMemberLocalAddr", Stage::Alpha, false),
];

/// The special gates etcd's featuregate package adds (they switch every alpha or beta gate).
pub const SPECIAL_GATES: [(&str, Stage, bool); 2] = [
    ("AllAlpha", Stage::Alpha, false),
    ("AllBeta", Stage::Beta, false),
];

/// etcd 3.5's experimental flags that 3.6 turned into gates (`ExperimentalFlagToFeatureMap`).
pub const EXPERIMENTAL_FLAGS: [(&str, &str); 6] = [
    (
        "experimental-stop-grpc-service-on-defrag",
        "StopGRPCServiceOnDefrag",
    ),
    ("experimental-initial-corrupt-check", "InitialCorruptCheck"),
    (
        "experimental-compact-hash-check-enabled",
        "CompactHashCheck",
    ),
    (
        "experimental-txn-mode-write-with-shared-buffer",
        "TxnModeWriteWithSharedBuffer",
    ),
    ("experimental-enable-lease-checkpoint", "LeaseCheckpoint"),
    (
        "experimental-enable-lease-checkpoint-persist",
        "LeaseCheckpointPersist",
    ),
];

/// Go's strconv.ParseBool.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The gates in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGates {
    enabled: BTreeMap<&'static str, bool>,
}

impl Default for FeatureGates {
    fn default() -> Self {
        FeatureGates {
            enabled: GATES
                .iter()
                .chain(SPECIAL_GATES.iter())
                .map(|(n, _, d)| (*n, *d))
                .collect(),
        }
    }
}

impl FeatureGates {
    /// Parses `Name=true,Other=false` over the defaults.
    pub fn parse(s: &str) -> Result<FeatureGates, String> {
        let mut g = FeatureGates::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("missing bool value for {item}"))?;
            let (name, value) = (name.trim(), value.trim());
            let key = GATES
                .iter()
                .chain(SPECIAL_GATES.iter())
                .map(|(n, _, _)| *n)
                .find(|n| *n == name)
                .ok_or_else(|| format!("unrecognized feature gate: {name}"))?;
            let on = parse_go_bool(value).ok_or_else(|| {
                format!(
                    "invalid value of {key}={value}, err: strconv.ParseBool: parsing {value:?}: invalid syntax"
                )
            })?;
            match key {
                "AllAlpha" | "AllBeta" => {
                    let stage = if key == "AllAlpha" {
                        Stage::Alpha
                    } else {
                        Stage::Beta
                    };
                    for (n, _, _) in GATES.iter().filter(|(_, st, _)| *st == stage) {
                        g.enabled.insert(n, on);
                    }
                    g.enabled.insert(key, on);
                }
                _ => {
                    g.enabled.insert(key, on);
                }
            }
        }
        Ok(g)
    }

    /// Whether `name` is on (unknown names are off).
    pub fn enabled(&self, name: &str) -> bool {
        self.enabled.get(name).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_errors() {
        let d = FeatureGates::default();
        assert!(d.enabled("TxnModeWriteWithSharedBuffer"));
        assert!(!d.enabled("LeaseCheckpoint"));
        let g = FeatureGates::parse("LeaseCheckpoint=true, TxnModeWriteWithSharedBuffer=false")
            .expect("valid");
        assert!(g.enabled("LeaseCheckpoint"));
        assert!(!g.enabled("TxnModeWriteWithSharedBuffer"));
        assert_eq!(
            FeatureGates::parse("Bogus=true").unwrap_err(),
            "unrecognized feature gate: Bogus"
        );
        assert_eq!(
            FeatureGates::parse("LeaseCheckpoint").unwrap_err(),
            "missing bool value for LeaseCheckpoint"
        );
        assert_eq!(
            FeatureGates::parse("LeaseCheckpoint=yes").unwrap_err(),
            "invalid value of LeaseCheckpoint=yes, err: strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        let all = FeatureGates::parse("AllAlpha=true").expect("valid");
        assert!(all.enabled("InitialCorruptCheck") && all.enabled("SetMemberLocalAddr"));
        assert!(FeatureGates::parse("LeaseCheckpoint=T")
            .expect("Go's bool spelling")
            .enabled("LeaseCheckpoint"));
    }
}
