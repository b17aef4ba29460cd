//! The client-facing API: etcd's v3 gRPC services and the HTTP endpoints, on one port.
//!
//! Owns: the router (gRPC KV, Cluster, Maintenance, Lease, Watch, grpc.health.v1; HTTP `/health`, `/livez`,
//! `/readyz`, `/version`, `/metrics`; the JSON gateway under `/v3/`; etcd's CORS headers on
//! the HTTP answers, `--cors=*` as etcd defaults) and the accept
//! loop that serves HTTP/1.1 and HTTP/2 (h2c) on the same listener, as etcd's cmux does.
//!
//! Must never: panic on a request, or change state except through `EtcdServer::propose`.

mod cluster;
mod gateway;
mod health;
pub use cluster::ClusterApi;
mod http;
mod kv;
mod lease;
pub use lease::LeaseApi;
mod maintenance;
mod metrics;
mod watch;

use crate::etcdserver::EtcdServer;
use crate::seam::NetListener;
use etcd_api::etcdserverpb as pb;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

/// gRPC framing overhead allowed on top of `--max-request-bytes` (etcd's grpcOverheadBytes).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Everything served on the client URLs.
pub fn client_router(server: EtcdServer) -> axum::Router {
    let max = server.config().max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    // grpc.health.v1, SERVING for "" from the start, as etcd registers it.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let grpc = tonic::service::Routes::new(
        pb::kv_server::KvServer::new(kv::KvApi::new(server.clone())).max_decoding_message_size(max),
    )
    .add_service(pb::cluster_server::ClusterServer::new(
        cluster::ClusterApi::new(server.clone()),
    ))
    .add_service(pb::maintenance_server::MaintenanceServer::new(
        maintenance::MaintenanceApi::new(
            server.clone(),
            maintenance::DefragHealth::new(
                health_reporter,
                server.config().feature_enabled("StopGRPCServiceOnDefrag"),
            ),
        ),
    ))
    .add_service(health_service)
    .add_service(pb::lease_server::LeaseServer::new(lease::LeaseApi::new(
        server.clone(),
    )))
    .add_service(pb::watch_server::WatchServer::new(watch::WatchApi::new(
        server.clone(),
        server.watch_hub(),
        server.config().watch_progress_notify_interval(),
    )))
    .prepare()
    .into_axum_router();
    let health_metrics = std::sync::Arc::new(health::HealthMetrics::default());
    let mut http = http::router(server.clone())
        .merge(metrics::router(server.clone(), health_metrics.clone()))
        .merge(health::router(server, health_metrics));
    match gateway::Gateway::new(grpc.clone(), max) {
        Ok(gw) => http = http.merge(gw.router()),
        Err(e) => tracing::error!(error = %e, "the JSON gateway is not served"),
    }
    grpc.merge(http.layer(axum::middleware::from_fn(cors)))
}

/// etcd's CORS handling with its default `--cors=*`: the allow headers on every HTTP answer,
/// and an empty 200 for a preflight `OPTIONS`.
async fn cors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::HeaderValue;
    let mut resp = if req.method() == axum::http::Method::OPTIONS {
        axum::response::Response::default()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    resp
}

/// Serves connections from `listener` until it fails; each connection on its own task.
pub async fn serve(mut listener: Box<dyn NetListener>, router: axum::Router) {
    loop {
        let io = match listener.accept().await {
            Ok(io) => io,
            Err(e) => {
                tracing::warn!(error = %e, addr = %listener.local_addr(), "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let svc = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(Some(u32::MAX));
            if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
