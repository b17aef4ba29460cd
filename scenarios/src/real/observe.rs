//! What the harness reads from running members in real mode, over their real (un-proxied)
//! client ports: Maintenance.HashKV and Status, Cluster.MemberList, `/version`, `/metrics`.
//!
//! Owns: one question per call, each under a timeout so that a stopped (SIGSTOP) member costs
//! a timeout, never a hang: gRPC through `etcd_api`'s [`Client`], HTTP through the server's own
//! `seam::http_get` over the host's TCP, and reading etcd's metrics out of the Prometheus text
//! format (`prometheus-parse`).
//!
//! Must never: go through a proxy (it would see the faults it is meant to look past), change
//! anything on a member (every call is a read), or retry: a failed read is the caller's to
//! judge.

#![allow(clippy::disallowed_methods)]

use crate::cluster::KvHash;
use etcd_api::client::Client;
use etcd_api::etcdserverpb as pb;
use etcd_server::etcdserver::version::Versions;
use etcd_server::etcdserver::FSYNC_BUCKETS;
use etcd_server::seam::real::RealNetwork;
use std::future::Future;
use std::time::Duration;

/// Longest a gRPC question may take, connect included (HashKV reads the whole keyspace).
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an HTTP GET may take, connect included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a question to a member got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObserveError {
    #[error("{rpc} on {endpoint}: connecting")]
    Connect {
        endpoint: String,
        rpc: &'static str,
        source: tonic::transport::Error,
    },
    #[error("{rpc} on {endpoint}")]
    Rpc {
        endpoint: String,
        rpc: &'static str,
        source: Box<tonic::Status>,
    },
    #[error("{rpc} on {endpoint}: no answer within {after:?}")]
    RpcTimeout {
        endpoint: String,
        rpc: &'static str,
        after: Duration,
    },
    #[error("{rpc} on {endpoint}: the response has no header")]
    NoHeader { endpoint: String, rpc: &'static str },
    #[error("GET http://127.0.0.1:{port}{path}: {reason}")]
    Http {
        port: u16,
        path: String,
        reason: String,
    },
    #[error("GET http://127.0.0.1:{port}{path}: no answer within {after:?}")]
    HttpTimeout {
        port: u16,
        path: String,
        after: Duration,
    },
    #[error("GET http://127.0.0.1:{port}{path}: status {status}: {body}")]
    HttpStatus {
        port: u16,
        path: String,
        status: u16,
        body: String,
    },
    #[error("GET http://127.0.0.1:{port}{path}: not the expected JSON: {body}")]
    Json {
        port: u16,
        path: String,
        body: String,
        source: serde_json::Error,
    },
}

/// One entry of Cluster.MemberList (`name` is empty for a member added but never started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberInfo {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub id: u64,
    pub is_learner: bool,
}

/// Maintenance.Status's answer, as far as the harness needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberStatus {
    /// The answering member's id (from the header).
    pub member_id: u64,
    /// The leader it knows (0: none).
    pub leader: u64,
    pub raft_term: u64,
    /// The header's revision.
    pub revision: i64,
    /// The server version (`3.5.1`).
    pub version: String,
}

/// Maintenance.HashKV at `revision` (0: the newest) on `endpoint` (`127.0.0.1:port`).
pub(crate) async fn hash_kv(endpoint: &str, revision: i64) -> Result<KvHash, ObserveError> {
    let rpc = "HashKV";
    let r = call(endpoint, rpc, |mut c| async move {
        let req = pb::HashKvRequest { revision };
        c.maintenance.hash_kv(req).await
    })
    .await?;
    Ok(KvHash {
        hash: r.hash,
        compact_revision: r.compact_revision,
    })
}

/// Cluster.MemberList on `endpoint`, in the member's order.
pub(crate) async fn member_list(endpoint: &str) -> Result<Vec<MemberInfo>, ObserveError> {
    let r = call(endpoint, "MemberList", |mut c| async move {
        c.cluster
            .member_list(pb::MemberListRequest::default())
            .await
    })
    .await?;
    Ok(r.members
        .into_iter()
        .map(|m| MemberInfo {
            name: m.name,
            peer_urls: m.peer_ur_ls,
            id: m.id,
            is_learner: m.is_learner,
        })
        .collect())
}

/// Maintenance.Status on `endpoint`.
pub(crate) async fn status(endpoint: &str) -> Result<MemberStatus, ObserveError> {
    let rpc = "Status";
    let r = call(endpoint, rpc, |mut c| async move {
        c.maintenance.status(pb::StatusRequest {}).await
    })
    .await?;
    let header = r.header.ok_or_else(|| no_header(endpoint, rpc))?;
    Ok(MemberStatus {
        member_id: header.member_id,
        leader: r.leader,
        raft_term: r.raft_term,
        revision: header.revision,
        version: r.version,
    })
}

fn no_header(endpoint: &str, rpc: &'static str) -> ObserveError {
    ObserveError::NoHeader {
        endpoint: endpoint.to_string(),
        rpc,
    }
}

/// Connects to `endpoint` and asks one question, all within [`RPC_TIMEOUT`].
async fn call<T, F>(
    endpoint: &str,
    rpc: &'static str,
    ask: impl FnOnce(Client) -> F,
) -> Result<T, ObserveError>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let run = async {
        let client = Client::connect(endpoint)
            .await
            .map_err(|source| ObserveError::Connect {
                endpoint: endpoint.to_string(),
                rpc,
                source,
            })?;
        let response = ask(client).await.map_err(|status| ObserveError::Rpc {
            endpoint: endpoint.to_string(),
            rpc,
            source: Box::new(status),
        })?;
        Ok::<_, ObserveError>(response.into_inner())
    };
    tokio::time::timeout(RPC_TIMEOUT, run)
        .await
        .map_err(|_| ObserveError::RpcTimeout {
            endpoint: endpoint.to_string(),
            rpc,
            after: RPC_TIMEOUT,
        })?
}

/// `GET path` on `127.0.0.1:port`: the status code and the body (lossy UTF-8), whatever the
/// status.
pub(crate) async fn http_get(port: u16, path: &str) -> Result<(u16, String), ObserveError> {
    let hostport = format!("127.0.0.1:{port}");
    let get = etcd_server::seam::http_get(&RealNetwork, &hostport, path);
    let (code, body) = tokio::time::timeout(HTTP_TIMEOUT, get)
        .await
        .map_err(|_| ObserveError::HttpTimeout {
            port,
            path: path.to_string(),
            after: HTTP_TIMEOUT,
        })?
        .map_err(|reason| ObserveError::Http {
            port,
            path: path.to_string(),
            reason,
        })?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` that must answer 200: its body.
async fn get_ok(port: u16, path: &str) -> Result<String, ObserveError> {
    match http_get(port, path).await? {
        (200, body) => Ok(body),
        (status, body) => Err(ObserveError::HttpStatus {
            port,
            path: path.to_string(),
            status,
            body,
        }),
    }
}

/// `/version` on `127.0.0.1:port` (3.5 releases have no `storage`).
pub(crate) async fn versions(port: u16) -> Result<Versions, ObserveError> {
    let path = "/version";
    let body = get_ok(port, path).await?;
    serde_json::from_str(&body).map_err(|source| ObserveError::Json {
        port,
        path: path.to_string(),
        body,
        source,
    })
}

/// `/metrics` on `127.0.0.1:port`, parsed.
pub(crate) async fn metrics(port: u16) -> Result<Metrics, ObserveError> {
    let text = get_ok(port, "/metrics").await?;
    Metrics::parse(&text).map_err(|reason| ObserveError::Http {
        port,
        path: "/metrics".into(),
        reason,
    })
}

/// A member's metrics, as far as the harness reads them.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Metrics {
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes_seen: u64,
    /// `etcd_disk_wal_fsync_duration_seconds`: (upper bound s, cumulative count), by bound.
    pub wal_fsync_buckets: Vec<(f64, f64)>,
}

impl Metrics {
    /// Reads the metrics the harness needs out of the Prometheus text format.
    pub(crate) fn parse(text: &str) -> Result<Metrics, String> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| e.to_string())?;
        let mut out = Metrics::default();
        for sample in scrape.samples {
            match (sample.metric.as_str(), sample.value) {
                ("etcd_server_leader_changes_seen_total", prometheus_parse::Value::Counter(n)) => {
                    out.leader_changes_seen += n as u64
                }
                (
                    "etcd_disk_wal_fsync_duration_seconds",
                    prometheus_parse::Value::Histogram(buckets),
                ) => {
                    out.wal_fsync_buckets =
                        buckets.iter().map(|b| (b.less_than, b.count)).collect();
                    out.wal_fsync_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The WAL fsync histogram as counts per bucket of [`FSYNC_BUCKETS`] (last = +Inf), the
    /// simulated members' layout. etcd exposes exactly those bounds; a bound another binary
    /// lacks takes the cumulative count of the largest bound below it.
    pub(crate) fn wal_fsync_counts(&self) -> Vec<u64> {
        let cumulative_at = |bound: f64| {
            self.wal_fsync_buckets
                .iter()
                .take_while(|(b, _)| *b <= bound)
                .last()
                .map_or(0, |(_, c)| *c as u64)
        };
        let mut counts = Vec::with_capacity(FSYNC_BUCKETS.len() + 1);
        let mut below = 0;
        for bound in FSYNC_BUCKETS.iter().copied().chain([f64::INFINITY]) {
            let cum = cumulative_at(bound).max(below);
            counts.push(cum - below);
            below = cum;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // As etcd 3.5.1 serves it (trimmed), plus a label value holding `}`, `,` and a quote.
    const METRICS: &str = r#"# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 0
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.004"} 12
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 30
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 3
etcd_disk_wal_fsync_duration_seconds_sum 0.0415
etcd_disk_wal_fsync_duration_seconds_count 30
# HELP etcd_server_leader_changes_seen_total The number of leader changes seen.
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total 2
# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 1.2e-05
go_gc_duration_seconds{quantile="1"} 0.000305
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
peer_rtt_bucket{To="8211f1d0f64f3269",le="0.0001"} 1
peer_rtt_bucket{To="fd422379fda50e48",le="0.0001"} 2
peer_rtt_bucket{To="8211f1d0f64f3269",le="+Inf"} 4
peer_rtt_bucket{To="fd422379fda50e48",le="+Inf"} 6
# EOF
"#;

    #[test]
    fn reads_leader_changes_and_the_fsync_histogram() {
        let m = Metrics::parse(METRICS).unwrap();
        assert_eq!(m.leader_changes_seen, 2);
        assert_eq!(
            m.wal_fsync_buckets,
            vec![
                (0.001, 0.0),
                (0.002, 3.0),
                (0.004, 12.0),
                (f64::INFINITY, 30.0)
            ]
        );
        let mut want = vec![0u64; FSYNC_BUCKETS.len() + 1];
        want[1] = 3; // (0.001, 0.002]
        want[2] = 9; // (0.002, 0.004]
        want[FSYNC_BUCKETS.len()] = 18; // above every bound
        assert_eq!(m.wal_fsync_counts(), want);
        let none = Metrics::parse("# nothing\n").unwrap();
        assert_eq!(
            (
                none.leader_changes_seen,
                none.wal_fsync_counts().iter().sum::<u64>()
            ),
            (0, 0)
        );
    }

    #[test]
    fn fsync_counts_give_the_p99_and_the_slow_syncs_the_simulation_gives() {
        let m = Metrics {
            leader_changes_seen: 0,
            wal_fsync_buckets: FSYNC_BUCKETS
                .iter()
                .map(|b| {
                    (
                        *b,
                        if *b < 0.002 {
                            0.0
                        } else if *b < 1.0 {
                            100.0
                        } else {
                            103.0
                        },
                    )
                })
                .chain([(f64::INFINITY, 104.0)])
                .collect(),
        };
        let counts = m.wal_fsync_counts();
        assert_eq!(counts.iter().sum::<u64>(), 104);
        // 3 syncs in (0.512, 1.024], 1 above 8.192 s.
        assert_eq!(crate::driver::slow_fsyncs(&counts), 4);
        let p99 = crate::driver::quantile_ms(&counts, 0.99).unwrap();
        assert!(p99 > 512.0 && p99 <= 1024.0, "{p99}");
    }

    #[test]
    fn versions_json() {
        let v: Versions =
            serde_json::from_str(r#"{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}"#).unwrap();
        assert_eq!(
            (v.etcdserver.as_str(), v.etcdcluster.as_str(), v.storage),
            ("3.5.1", "3.5.0", None)
        );
        let ours = r#"{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}"#;
        assert!(serde_json::from_str::<Versions>(ours).is_ok());
    }
}
