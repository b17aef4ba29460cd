//! Feature gates (`--feature-gates=Name=true,...`), with etcd 3.6's gates, stages and defaults.
//!
//! Owns: parsing and validating the flag, and answering whether a gate is on.
//!
//! Must never: accept a gate name etcd does not know (etcd refuses to start), or change at run
//! time.

use std::collections::BTreeMap;

/// Maturity of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Off by default, may change.
    Alpha,
    /// On by default.
    Beta,
    /// Kept for compatibility.
    Deprecated,
}

/// etcd 3.6's feature gates: name, stage, default.
pub const GATES: [(&str, Stage, bool); 7] = [
    ("StopGRPCServiceOnDefrag", Stage::Alpha, false),
    ("InitialCorruptCheck", Stage::Alpha, false),
    ("CompactHashCheck", Stage::Alpha, false),
    ("TxnModeWriteWithSharedBuffer", Stage::Beta, true),
    ("LeaseCheckpoint", Stage::Alpha, false),
    ("LeaseCheckpointPersist", Stage::Deprecated, false),
    ("SetMemberLocalAddr", Stage::Alpha, false),
];

/// The gates in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGates {
    enabled: BTreeMap<&'static str, bool>,
}

impl Default for FeatureGates {
    fn default() -> Self {
        FeatureGates {
            enabled: GATES.iter().map(|(n, _, d)| (*n, *d)).collect(),
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
                .ok_or_else(|| format!("missing bool value for feature gate {item:?}"))?;
            let key = GATES
                .iter()
                .map(|(n, _, _)| *n)
                .find(|n| *n == name.trim())
                .ok_or_else(|| format!("unrecognized feature gate: {}", name.trim()))?;
            let on = value.trim().parse::<bool>().map_err(|_| {
                format!(
                    "invalid value of {key}={}, want true or false",
                    value.trim()
                )
            })?;
            g.enabled.insert(key, on);
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
        assert!(FeatureGates::parse("LeaseCheckpoint").is_err());
        assert!(FeatureGates::parse("LeaseCheckpoint=yes").is_err());
    }
}
