//! HTTP endpoints beside gRPC on the client port: `/health`, `/version` and `/metrics`.
//!
//! Owns: etcd's JSON shapes for these endpoints (`{"health":"true","reason":""}`,
//! `{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}`, 3.5 releases without
//! `storage`), 503 when unhealthy.
//!
//! Must never: block on raft longer than the request timeout.

use super::health::HealthMetrics;
use crate::etcdserver::EtcdServer;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize, Default)]
struct HealthParams {
    serializable: Option<String>,
    exclude: Option<String>,
}

/// `/health`, `/version` and `/metrics` (which also shows the health checks' metrics).
pub fn router(server: EtcdServer, health_metrics: Arc<HealthMetrics>) -> axum::Router {
    let metrics_route = axum::Router::new()
        .route("/metrics", get(metrics))
        .with_state((server.clone(), health_metrics));
    axum::Router::new()
        .route("/health", get(health))
        .route(
            "/version",
            get(crate::etcdserver::version::versions_handler),
        )
        .with_state(server)
        .merge(metrics_route)
}

async fn health(
    State(s): State<EtcdServer>,
    Query(p): Query<HealthParams>,
) -> (StatusCode, Json<Value>) {
    let serializable = p.serializable.as_deref() == Some("true");
    let unhealthy = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"health": "false", "reason": reason})),
        )
    };
    let excluded: Vec<&str> = p.exclude.as_deref().unwrap_or("").split(',').collect();
    for a in s.alarms().list(0) {
        let name = crate::alarm::alarm_name(a.alarm);
        if !excluded.contains(&name) {
            return unhealthy(&format!("ALARM {name}"));
        }
    }
    if !serializable {
        if s.status().leader == 0 {
            return unhealthy("RAFT NO LEADER");
        }
        if let Err(e) = s.linearizable_read().await {
            return unhealthy(&format!("QGET ERROR: {}", e.message()));
        }
    }
    (
        StatusCode::OK,
        Json(json!({"health": "true", "reason": ""})),
    )
}

/// Prometheus text format with etcd's metric names.
async fn metrics(State((s, health_metrics)): State<(EtcdServer, Arc<HealthMetrics>)>) -> String {
    use std::fmt::Write as _;
    let st = s.status();
    let m = s.metrics();
    let db = s.store().db_size();
    let mut out = String::new();
    let mut gauge = |name: &str, kind: &str, help: &str, v: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    gauge(
        "etcd_server_has_leader",
        "gauge",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        u8::from(st.leader != 0).to_string(),
    );
    gauge(
        "etcd_server_is_leader",
        "gauge",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        u8::from(st.is_leader).to_string(),
    );
    gauge(
        "etcd_server_leader_changes_seen_total",
        "counter",
        "The number of leader changes seen.",
        m.leader_changes().to_string(),
    );
    gauge(
        "etcd_server_heartbeat_send_failures_total",
        "counter",
        "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
        m.heartbeat_send_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    );
    gauge(
        "etcd_server_proposals_committed_total",
        "gauge",
        "The total number of consensus proposals committed.",
        st.commit.to_string(),
    );
    gauge(
        "etcd_server_proposals_applied_total",
        "gauge",
        "The total number of consensus proposals applied.",
        st.applied.to_string(),
    );
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "gauge",
        "Total size of the underlying database physically allocated in bytes.",
        db.to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n# TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{}\"}} 1",
        s.release()
    );
    if let Some(cv) = s.cluster_version() {
        let _ = writeln!(
            out,
            "# HELP etcd_cluster_version Which version is running. 1 for 'cluster_version' label with current cluster version\n# TYPE etcd_cluster_version gauge\netcd_cluster_version{{cluster_version=\"{}\"}} 1",
            cv.major_minor()
        );
    }
    // The gates metric exists since 3.6.0-rc.2 (a 3.5 release has no gates).
    if s.release().has_feature_gates() {
        crate::features::FeatureGates::parse(&s.config().feature_gates)
            .unwrap_or_default()
            .render_metric(&mut out);
    }
    let (counts, sum) = m.wal_fsync();
    let name = "etcd_disk_wal_fsync_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} The latency distributions of fsync called by WAL.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0u64;
    for (i, le) in crate::etcdserver::FSYNC_BUCKETS.iter().enumerate() {
        cumulative += counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += counts
        .get(crate::etcdserver::FSYNC_BUCKETS.len())
        .copied()
        .unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {}", sum.as_secs_f64());
    let _ = writeln!(out, "{name}_count {cumulative}");
    health_metrics.render(&mut out);
    out
}
