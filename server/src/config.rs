//! Server configuration with etcd's flag names.
//!
//! Owns: parsing and validating the flags `etcd-server` takes (the subset of etcd's that this
//! server implements), with etcd's defaults, and deriving the static initial cluster from them.
//!
//! Must never: touch the disk or the network; it only describes what to start.

use clap::Parser;
use std::time::Duration;
use thiserror::Error;

/// A configuration problem found before anything starts (exit code 2 in the binary).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--initial-cluster` entry is not `name=url`.
    #[error("--initial-cluster: invalid entry {0:?} (want name=http://host:port)")]
    BadClusterEntry(String),
    /// This member's `--name` is not in `--initial-cluster`.
    #[error("--initial-cluster has no entry for --name {0:?}")]
    NameNotInCluster(String),
    /// A URL we cannot use.
    #[error("{flag}: invalid URL {url:?}: {reason}")]
    BadUrl {
        /// The flag that carried it.
        flag: &'static str,
        /// The URL.
        url: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Election timeout must be at least 5 heartbeats (etcd's rule).
    #[error("--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]")]
    ElectionTooShort {
        /// ms
        election: u64,
        /// ms
        heartbeat: u64,
    },
    /// Zero where a positive number is needed.
    #[error("{0} must be greater than 0")]
    NotPositive(&'static str),
    /// `--feature-gates` names an unknown gate or has a bad value.
    #[error("--feature-gates: {0}")]
    FeatureGates(String),
    /// `--unsafe-test-defects` names an unknown defect.
    #[error("--unsafe-test-defects: {0}")]
    Defects(String),
    /// `--emulate-release` names no emulated release.
    #[error(transparent)]
    Release(#[from] crate::etcdserver::version::VersionError),
    /// A flag the emulated release does not have (Go's flag package's words, as etcd exits).
    #[error("flag provided but not defined: -{flag} (etcd {release} has no --{flag})")]
    FlagNotDefined {
        /// The flag, without dashes.
        flag: &'static str,
        /// The emulated release.
        release: String,
    },
    /// An old experimental flag and the feature gate that replaced it, both given (etcd 3.6's
    /// SetFeatureGatesFromExperimentalFlags).
    #[error("cannot specify both flags: --{flag}={flag_value} and --feature-gates={gate}={gate_value} at the same time, please just use --feature-gates={gate}={gate_value}")]
    GateAndExperimentalFlag {
        /// The experimental flag, without dashes.
        flag: &'static str,
        /// Its value.
        flag_value: bool,
        /// The gate.
        gate: &'static str,
        /// The gate's value after `--feature-gates`.
        gate_value: bool,
    },
    /// `--initial-cluster-state` other than new/existing.
    #[error("--initial-cluster-state must be 'new' or 'existing', got {0:?}")]
    BadClusterState(String),
}

/// etcd's flags, with etcd's names and defaults.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "etcd-server",
    version,
    about = "An etcd-compatible server (etcd v3 API)",
    args_override_self = true
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory.
    #[arg(long = "data-dir", default_value = "")]
    pub data_dir: String,
    /// URLs to listen on for client traffic.
    #[arg(long = "listen-client-urls", default_value = "http://localhost:2379")]
    pub listen_client_urls: String,
    /// Client URLs advertised to the rest of the cluster.
    #[arg(
        long = "advertise-client-urls",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(long = "listen-peer-urls", default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,
    /// This member's peer URLs advertised to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping: name=url,name=url.
    #[arg(
        long = "initial-cluster",
        default_value = "default=http://localhost:2380"
    )]
    pub initial_cluster: String,
    /// 'new' or 'existing'.
    #[arg(long = "initial-cluster-state", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token, mixed into the cluster and member ids.
    #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long = "heartbeat-interval", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long = "election-timeout", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot to disk (default: 100000 on a
    /// 3.5 release, 10000 from 3.6 on).
    #[arg(long = "snapshot-count")]
    pub snapshot_count: Option<u64>,
    /// Entries kept in the raft log after a snapshot, for slow followers to catch up.
    #[arg(long = "experimental-snapshot-catchup-entries", default_value_t = 5000)]
    pub snapshot_catchup_entries: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long = "max-request-bytes", default_value_t = 1572864)]
    pub max_request_bytes: u64,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long = "max-txn-ops", default_value_t = 128)]
    pub max_txn_ops: u64,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).
    #[arg(long = "quota-backend-bytes", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum duration before committing the backend batch (ms).
    #[arg(long = "backend-batch-interval", default_value_t = 100)]
    pub backend_batch_interval: u64,
    /// Maximum operations before committing the backend batch.
    #[arg(long = "backend-batch-limit", default_value_t = 10000)]
    pub backend_batch_limit: u64,
    /// Maximum number of learner members in the cluster.
    #[arg(long = "max-learners", default_value_t = 1)]
    pub max_learners: u64,
    /// Comma-separated Name=bool feature gates (accepted, validated later).
    #[arg(long = "feature-gates", default_value = "")]
    pub feature_gates: String,
    /// Duration of periodic watch progress notifications (Go duration, e.g. 10m, 5s, 500ms).
    #[arg(
        long = "experimental-watch-progress-notify-interval",
        default_value = "10m",
        value_parser = parse_duration
    )]
    pub watch_progress_notify_interval: Duration,
    /// Reject reconfiguration requests that would cause quorum loss (etcd's default: true).
    #[arg(
        long = "strict-reconfig-check",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "true",
        action = clap::ArgAction::Set
    )]
    pub strict_reconfig_check: bool,
    /// etcd 3.5's switch for lease checkpoints (same as `--feature-gates=LeaseCheckpoint=true`).
    #[arg(
        long = "experimental-enable-lease-checkpoint",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub enable_lease_checkpoint: Option<bool>,
    /// etcd 3.5's switch for persisting lease checkpoints (gate `LeaseCheckpointPersist`).
    #[arg(
        long = "experimental-enable-lease-checkpoint-persist",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub enable_lease_checkpoint_persist: Option<bool>,
    /// etcd 3.5's switch for the start-up corruption check (gate `InitialCorruptCheck`).
    #[arg(
        long = "experimental-initial-corrupt-check",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub initial_corrupt_check: Option<bool>,
    /// etcd 3.5's switch for the compaction hash check (gate `CompactHashCheck`).
    #[arg(
        long = "experimental-compact-hash-check-enabled",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub compact_hash_check_enabled: Option<bool>,
    /// etcd 3.5's switch for NOT_SERVING on the gRPC health service during a defragmentation
    /// (gate `StopGRPCServiceOnDefrag`).
    #[arg(
        long = "experimental-stop-grpc-service-on-defrag",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub stop_grpc_service_on_defrag: Option<bool>,
    /// How often the leader compares the members' hashes at their latest compactions (Go
    /// duration; 3.5 names it `--experimental-compact-hash-check-time`).
    #[arg(
        long = "compact-hash-check-time",
        alias = "experimental-compact-hash-check-time",
        default_value = "1m",
        value_parser = parse_duration
    )]
    pub compact_hash_check_time: Duration,
    /// How often the leader compares the members' hashes at its current revision (Go duration;
    /// off unless given; 3.5 names it `--experimental-corrupt-check-time`).
    #[arg(
        long = "corrupt-check-time",
        alias = "experimental-corrupt-check-time",
        value_parser = parse_duration
    )]
    pub corrupt_check_time: Option<Duration>,
    /// How often the leader checkpoints leases' remaining TTLs (Go duration).
    #[arg(
        long = "experimental-lease-checkpoint-interval",
        default_value = "5m",
        value_parser = parse_duration
    )]
    pub lease_checkpoint_interval: Duration,
    /// How often the leader checks whether a downgrade is done (Go duration; 3.5 names it
    /// `--experimental-downgrade-check-time`, which 3.6 still takes).
    #[arg(
        long = "downgrade-check-time",
        alias = "experimental-downgrade-check-time",
        default_value = "5s",
        value_parser = parse_duration
    )]
    pub downgrade_check_time: Duration,
    /// The etcd release this member behaves as (3.5.19, 3.5.20, 3.6.0-rc.2, 3.6.0, 3.7.0); an
    /// upgrade or downgrade is a restart on the same data with another release.
    #[arg(long = "emulate-release", default_value = crate::etcdserver::version::DEFAULT_RELEASE, hide = true)]
    pub emulate_release: String,
    /// etcd 3.5's v2 API switch (accepted and ignored on 3.5 releases: this server has no v2
    /// API; removed in 3.6).
    #[arg(
        long = "enable-v2",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub enable_v2: Option<bool>,
    /// Deliberate defects for harness tests (see `defects.rs`); never use in production.
    #[arg(long = "unsafe-test-defects", default_value = "", hide = true)]
    pub test_defects: String,
    /// The test-only opt-in `--unsafe-test-defects` needs: without it, naming a defect is an
    /// error.
    #[arg(long = "unsafe-test-opt-in", hide = true)]
    pub test_opt_in: bool,
    /// Log level: debug, info, warn, error.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// WAL segment size in bytes (etcd: 64 MiB; smaller is handy in tests).
    #[arg(long = "wal-segment-size", default_value_t = 64 * 1024 * 1024, hide = true)]
    pub wal_segment_size: u64,
}

/// One member of the static initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    /// `--name` of the member.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

impl Config {
    /// Default data dir as etcd names it: `<name>.etcd`.
    pub fn data_dir(&self) -> String {
        if self.data_dir.is_empty() {
            format!("{}.etcd", self.name)
        } else {
            self.data_dir.clone()
        }
    }

    /// Heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval)
    }

    /// Election timeout.
    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_timeout)
    }

    /// Election timeout in ticks (etcd: election-timeout / heartbeat-interval).
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout / self.heartbeat_interval.max(1)) as usize
    }

    /// Whether a deliberate defect is switched on (validated by [`Config::validate`]).
    pub fn has_defect(&self, d: crate::defects::Defect) -> bool {
        crate::defects::parse(&self.test_defects)
            .map(|v| v.contains(&d))
            .unwrap_or(false)
    }

    /// Interval of watch progress notifications.
    pub fn watch_progress_notify_interval(&self) -> Duration {
        self.watch_progress_notify_interval
    }

    /// Lease checkpointing: on with the `LeaseCheckpoint` gate or
    /// `--experimental-enable-lease-checkpoint`; persisted with `LeaseCheckpointPersist` or
    /// `--experimental-enable-lease-checkpoint-persist`.
    pub fn lease_checkpointing(&self) -> crate::lease::Checkpointing {
        let on = self.feature_enabled("LeaseCheckpoint");
        crate::lease::Checkpointing {
            interval: on.then_some(self.lease_checkpoint_interval),
            persist: on && self.feature_enabled("LeaseCheckpointPersist"),
        }
    }

    /// Whether feature `gate` is on: by `--feature-gates` (3.6+) or by the etcd 3.5
    /// experimental flag it replaced.
    pub fn feature_enabled(&self, gate: &str) -> bool {
        let by_flag = self.experimental_flags().into_iter().any(|(flag, value)| {
            value == Some(true)
                && crate::features::EXPERIMENTAL_FLAGS
                    .iter()
                    .any(|(f, g)| *f == flag && *g == gate)
        });
        by_flag
            || crate::features::FeatureGates::parse(&self.feature_gates)
                .unwrap_or_default()
                .enabled(gate)
    }

    /// The etcd 3.5 experimental flags that became feature gates, with their values.
    fn experimental_flags(&self) -> [(&'static str, Option<bool>); 5] {
        [
            (
                "experimental-enable-lease-checkpoint",
                self.enable_lease_checkpoint,
            ),
            (
                "experimental-enable-lease-checkpoint-persist",
                self.enable_lease_checkpoint_persist,
            ),
            (
                "experimental-initial-corrupt-check",
                self.initial_corrupt_check,
            ),
            (
                "experimental-compact-hash-check-enabled",
                self.compact_hash_check_enabled,
            ),
            (
                "experimental-stop-grpc-service-on-defrag",
                self.stop_grpc_service_on_defrag,
            ),
        ]
    }

    /// The emulated release (validated by [`Config::validate`]).
    pub fn release(&self) -> Result<crate::etcdserver::version::Release, ConfigError> {
        Ok(crate::etcdserver::version::Release::parse(
            &self.emulate_release,
        )?)
    }

    /// `--snapshot-count`, or the release's default.
    pub fn snapshot_count(&self) -> u64 {
        self.snapshot_count.unwrap_or_else(|| {
            self.release()
                .unwrap_or_else(|_| crate::etcdserver::version::Release::default_release())
                .default_snapshot_count()
        })
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(5000 + 2 * self.election_timeout)
    }

    /// Checks the flags and returns the initial cluster members in flag order.
    pub fn validate(&self) -> Result<Vec<InitialMember>, ConfigError> {
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::NotPositive("--heartbeat-interval"));
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError::ElectionTooShort {
                election: self.election_timeout,
                heartbeat: self.heartbeat_interval,
            });
        }
        let release = self.release()?;
        if !release.has_feature_gates() && !self.feature_gates.is_empty() {
            return Err(ConfigError::FlagNotDefined {
                flag: "feature-gates",
                release: release.to_string(),
            });
        }
        if release.has_feature_gates() && self.enable_v2.is_some() {
            return Err(ConfigError::FlagNotDefined {
                flag: "enable-v2",
                release: release.to_string(),
            });
        }
        if self.snapshot_count == Some(0) {
            return Err(ConfigError::NotPositive("--snapshot-count"));
        }
        if self.max_request_bytes == 0 {
            return Err(ConfigError::NotPositive("--max-request-bytes"));
        }
        if self.initial_cluster_state != "new" && self.initial_cluster_state != "existing" {
            return Err(ConfigError::BadClusterState(
                self.initial_cluster_state.clone(),
            ));
        }
        for (flag, urls) in [
            ("--listen-client-urls", &self.listen_client_urls),
            ("--advertise-client-urls", &self.advertise_client_urls),
            ("--listen-peer-urls", &self.listen_peer_urls),
            (
                "--initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
        ] {
            for u in split_urls(urls) {
                url_host_port(flag, &u)?;
            }
        }
        let gates = crate::features::FeatureGates::parse(&self.feature_gates)
            .map_err(ConfigError::FeatureGates)?;
        for (flag, value) in self.experimental_flags() {
            let Some(flag_value) = value else { continue };
            let gate = crate::features::EXPERIMENTAL_FLAGS
                .iter()
                .find(|(f, _)| *f == flag)
                .map(|(_, g)| *g);
            // etcd tests whether the --feature-gates text mentions the gate at all.
            if let Some(gate) = gate.filter(|g| self.feature_gates.contains(g)) {
                return Err(ConfigError::GateAndExperimentalFlag {
                    flag,
                    flag_value,
                    gate,
                    gate_value: gates.enabled(gate),
                });
            }
        }
        let defects = crate::defects::parse(&self.test_defects).map_err(ConfigError::Defects)?;
        if !defects.is_empty() && !self.test_opt_in {
            return Err(ConfigError::Defects(
                "deliberate defects are for harness tests only; refusing without --unsafe-test-opt-in"
                    .to_string(),
            ));
        }
        let members = parse_initial_cluster(&self.initial_cluster)?;
        if !members.iter().any(|m| m.name == self.name) {
            return Err(ConfigError::NameNotInCluster(self.name.clone()));
        }
        Ok(members)
    }
}

/// Parses a Go-style duration: a sequence of numbers with units h, m, s, ms, us, ns
/// (`10m`, `1m30s`, `500ms`). Zero and negative durations are rejected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (want e.g. 10m, 5s, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(value * unit);
        rest = &rest[unit_end..];
    }
    if total.is_zero() {
        return Err(bad());
    }
    Ok(total)
}

/// Splits a comma-separated URL list.
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// `http://host:port` → `host:port`, checking the scheme and the port.
pub fn url_host_port(flag: &'static str, url: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::BadUrl {
        flag,
        url: url.to_string(),
        reason,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| bad("missing port"))?;
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    port.parse::<u16>().map_err(|_| bad("invalid port"))?;
    Ok(hostport.to_string())
}

/// Parses `name=url,name=url` (a name may repeat to give several peer URLs).
pub fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut out: Vec<InitialMember> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::BadClusterEntry(entry.to_string()))?;
        if name.is_empty() {
            return Err(ConfigError::BadClusterEntry(entry.to_string()));
        }
        url_host_port("--initial-cluster", url)?;
        match out.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => out.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            }),
        }
    }
    if out.is_empty() {
        return Err(ConfigError::BadClusterEntry(s.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        let mut v = vec!["etcd-server"];
        v.extend_from_slice(args);
        Config::parse_from(v)
    }

    #[test]
    fn strict_reconfig_check_is_on_unless_switched_off() {
        assert!(cfg(&[]).strict_reconfig_check);
        assert!(cfg(&["--strict-reconfig-check"]).strict_reconfig_check);
        assert!(!cfg(&["--strict-reconfig-check=false"]).strict_reconfig_check);
        assert!(Config::try_parse_from(["etcd-server", "--strict-reconfig-check=maybe"]).is_err());
    }

    #[test]
    fn parses_three_member_cluster() {
        let c = cfg(&[
            "--name",
            "b",
            "--initial-cluster",
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3",
        ]);
        let m = c.validate().expect("valid");
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].name, "b");
        assert_eq!(m[1].peer_urls, vec!["http://127.0.0.1:2".to_string()]);
        assert_eq!(c.data_dir(), "b.etcd");
        assert_eq!(c.election_ticks(), 10);
    }

    #[test]
    fn test_defects_need_the_opt_in() {
        let err = cfg(&["--unsafe-test-defects=skip-read-index"])
            .validate()
            .expect_err("a defect without the opt-in must be refused");
        assert!(err.to_string().contains("--unsafe-test-opt-in"), "{err}");
        let c = cfg(&[
            "--unsafe-test-defects=skip-read-index",
            "--unsafe-test-opt-in",
        ]);
        assert!(c.validate().is_ok());
        assert!(c.has_defect(crate::defects::Defect::SkipReadIndex));
        // An unknown name is refused with or without the opt-in.
        assert!(
            cfg(&["--unsafe-test-defects=bogus", "--unsafe-test-opt-in"])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn lease_checkpoint_flags_and_gate() {
        assert_eq!(cfg(&[]).lease_checkpointing().interval, None);
        let c = cfg(&["--experimental-enable-lease-checkpoint"]);
        assert_eq!(
            c.lease_checkpointing().interval,
            Some(Duration::from_secs(300))
        );
        let c = cfg(&[
            "--feature-gates=LeaseCheckpoint=true",
            "--experimental-lease-checkpoint-interval=2s",
        ]);
        let cp = c.lease_checkpointing();
        assert_eq!(cp.interval, Some(Duration::from_secs(2)));
        assert!(!cp.persist);
        let c = cfg(&[
            "--experimental-enable-lease-checkpoint=true",
            "--experimental-enable-lease-checkpoint-persist",
        ]);
        assert!(c.lease_checkpointing().persist);
        let c = cfg(&["--experimental-enable-lease-checkpoint=false"]);
        assert_eq!(c.lease_checkpointing().interval, None);
    }

    #[test]
    fn each_release_takes_its_own_flags_and_defaults() {
        assert_eq!(
            cfg(&[]).release().map(|r| r.to_string()),
            Ok("3.6.0".into())
        );
        assert_eq!(cfg(&[]).snapshot_count(), 10_000);
        assert_eq!(cfg(&["--emulate-release=3.5.20"]).snapshot_count(), 100_000);
        assert_eq!(
            cfg(&["--emulate-release=3.5.20", "--snapshot-count=7"]).snapshot_count(),
            7
        );
        assert!(cfg(&["--emulate-release=3.5.19", "--enable-v2"])
            .validate()
            .is_ok());
        let e = cfg(&["--enable-v2=true"]).validate().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("flag provided but not defined: -enable-v2"),
            "{e}"
        );
        let e = cfg(&[
            "--emulate-release=3.5.20",
            "--feature-gates=LeaseCheckpoint=true",
        ])
        .validate()
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("flag provided but not defined: -feature-gates"),
            "{e}"
        );
        let e = cfg(&[
            "--experimental-enable-lease-checkpoint=true",
            "--feature-gates=LeaseCheckpoint=false",
        ])
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot specify both flags: --experimental-enable-lease-checkpoint=true and --feature-gates=LeaseCheckpoint=false at the same time, please just use --feature-gates=LeaseCheckpoint=false"
        );
        let e = cfg(&["--emulate-release=3.4.23"]).validate().unwrap_err();
        assert!(e.to_string().contains("not an emulated release"), "{e}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn rejects_bad_input_with_clear_errors() {
        let e = cfg(&["--name", "x"]).validate().unwrap_err();
        assert_eq!(e, ConfigError::NameNotInCluster("x".into()));
        let e = cfg(&["--initial-cluster", "default"])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("invalid entry"), "{e}");
        let e = cfg(&["--election-timeout", "200"]).validate().unwrap_err();
        assert!(e.to_string().contains("5 times"), "{e}");
        let e = cfg(&["--listen-client-urls", "https://a:1"])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("only http://"), "{e}");
        // Like etcd (Go's flag package), a repeated flag takes its last value.
        assert_eq!(cfg(&["--name", "a", "--name", "b"]).name, "b");
        let e = cfg(&["--listen-peer-urls", "http://a:99999"])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("invalid port"), "{e}");
    }
}
