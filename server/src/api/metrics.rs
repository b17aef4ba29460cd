//! `/metrics` on the client URLs: etcd's metric names, labels and histogram buckets, encoded by
//! the Prometheus project's Rust client (`prometheus-client`) in the OpenMetrics text format
//! (counters are declared without their `_total` suffix, which every sample carries, and the
//! page ends with `# EOF`; Prometheus scrapes it as it scrapes etcd's).
//!
//! Owns: the registry of the listener, with one collector that reads the member's state at
//! every scrape: raft (`etcd_server_has_leader`, `_is_leader`, `_leader_changes_seen_total`,
//! `_heartbeat_send_failures_total`, `_proposals_committed_total`, `_proposals_applied_total`),
//! the backend (`etcd_mvcc_db_total_size_in_bytes`), the disk histograms
//! (`etcd_disk_wal_fsync_duration_seconds`, `etcd_disk_backend_commit_duration_seconds`,
//! etcd's buckets), versions (`etcd_server_version`,
//! `etcd_cluster_version`), feature gates (`etcd_server_feature_enabled`, 3.6+) and the health
//! checks (`etcd_server_healthcheck`, `etcd_server_healthchecks_total`).
//!
//! Must never: hold the store lock while encoding, or keep state of its own (every value is
//! the server's or a check's, read at scrape time); series are written in a fixed order, so a
//! page is a function of the state.

use super::health::HealthMetrics;
use crate::etcdserver::{EtcdServer, FSYNC_BUCKETS};
use crate::features::{Stage, GATES, SPECIAL_GATES};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// OpenMetrics' content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics`, over a registry of this member's metrics.
pub(super) fn router(server: EtcdServer, health: Arc<HealthMetrics>) -> axum::Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector { server, health }));
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(Arc::new(registry))
}

async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut page = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut page, &registry) {
        tracing::warn!(error = %e, "failed to encode /metrics");
    }
    let mut resp = page.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// Reads the member's metrics at scrape time.
struct ServerCollector {
    server: EtcdServer,
    health: Arc<HealthMetrics>,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCollector").finish_non_exhaustive()
    }
}

/// One unlabelled series.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(e)
}

/// A gauge family, one series per label set, in the given order.
fn gauges<const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[([(&str, &str); N], i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.server;
        let st = s.status();
        let m = s.metrics();
        let db_size = s.store().db_size();
        let e = &mut encoder;
        single(
            e,
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            ConstGauge::new(i64::from(st.leader != 0)),
        )?;
        single(
            e,
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ConstGauge::new(i64::from(st.is_leader)),
        )?;
        single(
            e,
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen.",
            ConstCounter::new(m.leader_changes()),
        )?;
        single(
            e,
            "etcd_server_heartbeat_send_failures",
            "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ConstCounter::new(m.heartbeat_send_failures.load(std::sync::atomic::Ordering::Relaxed)),
        )?;
        // etcd declares these two as gauges, `_total` in the name.
        single(
            e,
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            ConstGauge::new(st.commit as i64),
        )?;
        single(
            e,
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            ConstGauge::new(st.applied as i64),
        )?;
        single(
            e,
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            ConstGauge::new(db_size),
        )?;
        let release = s.release().to_string();
        gauges(
            e,
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            &[([("server_version", release.as_str())], 1)],
        )?;
        if let Some(cv) = s.cluster_version() {
            let cv = cv.major_minor().to_string();
            gauges(
                e,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                &[([("cluster_version", cv.as_str())], 1)],
            )?;
        }
        // The gates metric exists since 3.6.0-rc.2 (a 3.5 release has no gates).
        if s.release().has_feature_gates() {
            // By --feature-gates or by the 3.5 experimental flag the gate replaced.
            encode_feature_gates(e, &|name| s.config().feature_enabled(name))?;
        }
        encode_disk_histogram(
            e,
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            m.wal_fsync(),
        )?;
        encode_disk_histogram(
            e,
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            m.backend_commit(),
        )?;
        encode_health_checks(e, &self.health)
    }
}

/// `etcd_server_feature_enabled{name,stage}` for every gate, the special ones included
/// (etcd's addFeatureGateMetrics), sorted by name.
fn encode_feature_gates(
    e: &mut DescriptorEncoder,
    enabled: &dyn Fn(&str) -> bool,
) -> Result<(), std::fmt::Error> {
    let mut all: Vec<(&str, Stage)> = GATES
        .iter()
        .chain(SPECIAL_GATES.iter())
        .map(|(n, st, _)| (*n, *st))
        .collect();
    all.sort();
    let series: Vec<([(&str, &str); 2], i64)> = all
        .into_iter()
        .map(|(name, stage)| {
            let on = enabled(name);
            ([("name", name), ("stage", stage.label())], i64::from(on))
        })
        .collect();
    gauges(
        e,
        "etcd_server_feature_enabled",
        "Whether or not a feature is enabled. 1 is enabled, 0 is not.",
        &series,
    )
}

/// A latency histogram over etcd's disk buckets (0.001 s doubling to 8.192 s): counts per
/// bucket (the last one +Inf) and the sum.
fn encode_disk_histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    (counts, sum): (Vec<u64>, std::time::Duration),
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = FSYNC_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, le)| (*le, counts.get(i).copied().unwrap_or(0)))
        .collect();
    let over = counts.get(FSYNC_BUCKETS.len()).copied().unwrap_or(0);
    buckets.push((f64::INFINITY, over));
    let count = buckets.iter().map(|(_, c)| c).sum();
    let mut h = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    h.encode_histogram::<NoLabelSet>(sum.as_secs_f64(), count, &buckets, None)
}

/// The health checks' gauge and counter (nothing before any check ran, like an untouched Go
/// `GaugeVec`/`CounterVec`); series sorted by label values in label-name order (`name`,
/// `status`, `type`), as the Go client prints them; a status series appears once counted.
fn encode_health_checks(
    e: &mut DescriptorEncoder,
    health: &HealthMetrics,
) -> Result<(), std::fmt::Error> {
    let mut rows = health.series();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by(|((ta, na), _), ((tb, nb), _)| (na, ta).cmp(&(nb, tb)));
    let gauge_series: Vec<([(&str, &str); 2], i64)> = rows
        .iter()
        .map(|((t, n), (gauge, _, _))| ([("name", *n), ("type", *t)], *gauge))
        .collect();
    gauges(
        e,
        "etcd_server_healthcheck",
        "The result of each kind of healthcheck.",
        &gauge_series,
    )?;
    let mut counters = e.encode_descriptor(
        "etcd_server_healthchecks",
        "The total number of each kind of healthcheck.",
        None,
        MetricType::Counter,
    )?;
    for ((t, n), (_, success, error)) in &rows {
        for (status, count) in [
            (super::health::STATUS_ERROR, error),
            (super::health::STATUS_SUCCESS, success),
        ] {
            if *count > 0 {
                let labels = [("name", *n), ("status", status), ("type", *t)];
                ConstCounter::new(*count).encode(counters.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureGates;

    type Encode = dyn Fn(&mut DescriptorEncoder) -> Result<(), std::fmt::Error> + Send + Sync;

    /// A collector of one encoding function, for pages built from fixed inputs.
    struct Fixed(Box<Encode>);

    impl std::fmt::Debug for Fixed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Fixed")
        }
    }

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            (self.0)(&mut encoder)
        }
    }

    fn page(
        f: impl Fn(&mut DescriptorEncoder) -> Result<(), std::fmt::Error> + Send + Sync + 'static,
    ) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(Box::new(f))));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn health_checks_are_written_sorted_as_the_go_client_writes_them() {
        let m = Arc::new(HealthMetrics::default());
        let empty = m.clone();
        assert_eq!(page(move |e| encode_health_checks(e, &empty)), "# EOF\n");
        m.record("readyz", "serializable_read", true);
        m.record("livez", "serializable_read", true);
        m.record("livez", "serializable_read", true);
        m.record("readyz", "linearizable_read", true);
        m.record("readyz", "linearizable_read", false);
        let text = page(move |e| encode_health_checks(e, &m));
        assert_eq!(
            text,
            "# HELP etcd_server_healthcheck The result of each kind of healthcheck.\n\
             # TYPE etcd_server_healthcheck gauge\n\
             etcd_server_healthcheck{name=\"linearizable_read\",type=\"readyz\"} 0\n\
             etcd_server_healthcheck{name=\"serializable_read\",type=\"livez\"} 1\n\
             etcd_server_healthcheck{name=\"serializable_read\",type=\"readyz\"} 1\n\
             # HELP etcd_server_healthchecks The total number of each kind of healthcheck.\n\
             # TYPE etcd_server_healthchecks counter\n\
             etcd_server_healthchecks_total{name=\"linearizable_read\",status=\"error\",type=\"readyz\"} 1\n\
             etcd_server_healthchecks_total{name=\"linearizable_read\",status=\"success\",type=\"readyz\"} 1\n\
             etcd_server_healthchecks_total{name=\"serializable_read\",status=\"success\",type=\"livez\"} 2\n\
             etcd_server_healthchecks_total{name=\"serializable_read\",status=\"success\",type=\"readyz\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn every_gate_is_written_with_its_stage() {
        let gates = FeatureGates::parse("LeaseCheckpoint=T").expect("Go's bool spelling");
        let text = page(move |e| encode_feature_gates(e, &|name| gates.enabled(name)));
        for line in [
            "etcd_server_feature_enabled{name=\"LeaseCheckpoint\",stage=\"ALPHA\"} 1",
            "etcd_server_feature_enabled{name=\"TxnModeWriteWithSharedBuffer\",stage=\"BETA\"} 1",
            "etcd_server_feature_enabled{name=\"AllBeta\",stage=\"BETA\"} 0",
            "etcd_server_feature_enabled{name=\"StopGRPCServiceOnDefrag\",stage=\"ALPHA\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
