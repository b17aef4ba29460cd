//! Release lines in real mode: a 3-member cluster of the `etcd-server` binary started as
//! 3.5.20 and restarted member by member as 3.6.0, observed through `/version`, real etcdctl
//! 3.5.1's `endpoint status -w json`, `/livez`, `/readyz` and `/metrics` (read with a
//! Prometheus text-format parser).
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl_ok, http_get, http_request, Cluster, Kind};
use std::time::Duration;

fn versions(c: &Cluster, i: usize) -> serde_json::Value {
    let (code, body) = http_get(&c.endpoint(i), "/version");
    assert_eq!(code, 200, "/version of m{i}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/version not JSON ({e}): {body}"))
}

/// Every member's `etcdcluster`, polled until all equal `want` or `within` passes.
async fn cluster_versions_become(c: &Cluster, want: &str, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen: Vec<String> = (0..c.members.len())
            .map(|i| {
                versions(c, i)["etcdcluster"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        if seen.iter().all(|v| v == want) || tokio::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_from_3_5_20_to_3_6_0_moves_the_cluster_version_after_the_last_member() {
    let mut c = Cluster::start(Kind::Ours, 3, &["--emulate-release=3.5.20"]);
    c.wait_ready(Duration::from_secs(30)).await;
    let seen = cluster_versions_become(&c, "3.5.0", Duration::from_secs(15)).await;
    assert_eq!(seen, ["3.5.0", "3.5.0", "3.5.0"]);
    // A 3.5 release answers /version without the storage field, as etcd 3.5 does.
    assert_eq!(
        versions(&c, 0),
        serde_json::json!({"etcdserver": "3.5.20", "etcdcluster": "3.5.0"})
    );
    let status = etcdctl_ok(&c.endpoints(), &["endpoint", "status", "-w", "json"], None);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let reported: Vec<&str> = status
        .as_array()
        .expect("one entry per endpoint")
        .iter()
        .map(|e| e["Status"]["version"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reported, ["3.5.20", "3.5.20", "3.5.20"], "{status}");

    let mut after_each = Vec::new();
    for i in 0..3 {
        c.restart_with(i, &["--emulate-release=3.6.0"]);
        c.wait_ready(Duration::from_secs(30)).await;
        // Longer than the leader's 4 s monitor interval.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let want = if i == 2 { "3.6.0" } else { "3.5.0" };
        after_each.push(cluster_versions_become(&c, want, Duration::from_secs(15)).await);
    }
    assert_eq!(
        after_each,
        [
            ["3.5.0", "3.5.0", "3.5.0"],
            ["3.5.0", "3.5.0", "3.5.0"],
            ["3.6.0", "3.6.0", "3.6.0"]
        ]
    );
    assert_eq!(
        versions(&c, 1),
        serde_json::json!({"etcdserver": "3.6.0", "etcdcluster": "3.6.0", "storage": "3.6.0"})
    );

    // Health endpoints.
    let ep = c.endpoint(0);
    assert_eq!(http_get(&ep, "/livez"), (200, "ok\n".to_string()));
    let (code, body) = http_get(&ep, "/readyz?verbose");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"
    );
    let (code, body) = http_get(&ep, "/readyz/linearizable_read?exclude=linearizable_read");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = http_request(&ep, "POST", "/livez");
    assert_eq!((code, body.as_str()), (405, "Method Not Allowed\n"));

    // Metrics, read by a Prometheus text-format parser.
    let (code, body) = http_get(&ep, "/metrics");
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("etcd_server_version", &[("server_version", "3.6.0")]),
        Some(1.0)
    );
    assert_eq!(
        value("etcd_cluster_version", &[("cluster_version", "3.6")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            "etcd_server_feature_enabled",
            &[("name", "TxnModeWriteWithSharedBuffer"), ("stage", "BETA")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "etcd_server_feature_enabled",
            &[("name", "LeaseCheckpoint"), ("stage", "ALPHA")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            "etcd_server_healthcheck",
            &[("type", "livez"), ("name", "serializable_read")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            "etcd_server_healthchecks_total",
            &[
                ("type", "readyz"),
                ("name", "linearizable_read"),
                ("status", "success")
            ]
        )
        .is_some_and(|n| n >= 2.0),
        "{body}"
    );
}
