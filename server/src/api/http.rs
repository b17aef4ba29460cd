//! HTTP endpoints beside gRPC on the client port: `/health` and `/version`.
//!
//! Owns: etcd's JSON shapes for these endpoints (`{"health":"true","reason":""}`,
//! `{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}`, 3.5 releases without
//! `storage`), 503 when unhealthy.
//!
//! Must never: block on raft longer than the request timeout.

use crate::etcdserver::EtcdServer;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
struct HealthParams {
    serializable: Option<String>,
    exclude: Option<String>,
}

/// `/health` and `/version`.
pub fn router(server: EtcdServer) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route(
            "/version",
            get(crate::etcdserver::version::versions_handler),
        )
        .with_state(server)
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
