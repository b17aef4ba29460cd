//! Corruption checks across members in real mode (etcd's corrupt.go): one member's data is
//! changed behind its back (a value in its backend file rewritten while it is down, as bit rot
//! that passes the file's checksums would); then
//! - with `InitialCorruptCheck` (here etcd 3.5's `--experimental-initial-corrupt-check`) it
//!   refuses to start, `<id> found data inconsistency with peers`;
//! - without it, it starts, and after a compaction the leader's compaction hash check
//!   (`CompactHashCheck`) raises CORRUPT for exactly that member; every member's `/readyz`
//!   then fails on `data_corruption`, writes answer `etcdserver: corrupt cluster`, reads work.
//!
//! And `StopGRPCServiceOnDefrag`: the member logs the grpc.health.v1 status going NOT_SERVING
//! for a defragmentation (`defrag is active`) and is SERVING before and after.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl, etcdctl_ok, http_get, Cluster, Kind};
use etcd_server::backend::{db_path, Backend, BackendOptions, Bucket};
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;

/// Rewrites the value of the newest revision of `key` in the stopped member's backend.
async fn rewrite_value(data_dir: &std::path::Path, key: &[u8], value: &[u8]) {
    let path = db_path(data_dir);
    let disk = Arc::new(etcd_server::seam::real::RealDisk);
    let mut backend = Backend::open(disk, &path, BackendOptions::default())
        .await
        .expect("open the member's backend");
    let mut newest = None;
    backend
        .for_each(Bucket::Key, &[], None, |k, v| {
            if let Ok(kv) = etcd_api::mvccpb::KeyValue::decode(v) {
                if kv.key == key {
                    newest = Some((k.to_vec(), kv));
                }
            }
            true
        })
        .expect("scan the key bucket");
    let (rev, mut kv) = newest.expect("the key is in the backend");
    kv.value = value.to_vec();
    backend.put(Bucket::Key, &rev, &kv.encode_to_vec());
    backend.commit(true).expect("commit");
}

fn member_ids(c: &Cluster) -> Vec<(String, u64)> {
    let out = etcdctl_ok(&c.endpoints(), &["member", "list", "-w", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).expect("member list JSON");
    v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["ID"].as_u64().expect("ID"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_changed_data_is_refused_at_start_and_alarmed_after_a_compaction() {
    let mut c = Cluster::start(
        Kind::Ours,
        3,
        &[
            "--feature-gates=CompactHashCheck=true",
            "--compact-hash-check-time=1s",
        ],
    );
    c.wait_ready(Duration::from_secs(30)).await;
    for i in 0..20 {
        etcdctl_ok(&c.endpoints(), &["put", &format!("k{i}"), "v"], None);
    }
    let ids = member_ids(&c);
    let m2 = ids
        .iter()
        .find(|(n, _)| n == "m2")
        .map(|(_, id)| *id)
        .expect("m2's id");
    // m2's copy of k7 becomes "rotten" while it is down (after its backend committed it:
    // the batch interval is 100 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.kill(2);
    rewrite_value(&c.members[2].data_dir, b"k7", b"rotten").await;

    c.restart_with(2, &["--experimental-initial-corrupt-check"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !c.exited(2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "m2 still runs:\n{}",
            c.log(2)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want = format!("{m2:x} found data inconsistency with peers");
    assert!(
        c.log(2).contains(&want),
        "m2's log lacks {want:?}:\n{}",
        c.log(2)
    );

    // Without the start-up check it runs; the compaction hashes then disagree.
    c.restart_with(2, &[]);
    c.wait_ready(Duration::from_secs(30)).await;
    let out = etcdctl_ok(&c.endpoint(0), &["put", "last", "x", "-w", "json"], None);
    let rev = serde_json::from_str::<serde_json::Value>(&out).expect("put JSON")["header"]
        ["revision"]
        .as_i64()
        .expect("revision");
    etcdctl_ok(&c.endpoint(0), &["compact", &rev.to_string()], None);
    let alarm = format!("memberID:{m2} alarm:CORRUPT");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alarms = etcdctl_ok(&c.endpoints(), &["alarm", "list"], None);
        if alarms.contains("CORRUPT") {
            assert_eq!(alarms.trim(), alarm, "exactly m2 is alarmed");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CORRUPT alarm; logs:\n{}\n{}",
            c.log(0),
            c.log(1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..3 {
        let (code, body) = http_get(&c.endpoint(i), "/readyz?verbose");
        assert_eq!(code, 503, "m{i}: {body}");
        assert!(
            body.contains("[-]data_corruption failed: alarm activated: CORRUPT"),
            "m{i}: {body}"
        );
    }
    let refused = etcdctl(&c.endpoint(0), &["put", "after", "x"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("etcdserver: corrupt cluster"), "{stderr}");
    let read = etcdctl_ok(&c.endpoint(0), &["get", "k1", "--print-value-only"], None);
    assert_eq!(read.trim(), "v");
}

async fn health_status(ep: &str) -> tonic_health::pb::health_check_response::ServingStatus {
    let ch = common::channel(ep).await.expect("channel");
    let mut client = tonic_health::pb::health_client::HealthClient::new(ch);
    let resp = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    resp.into_inner().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_health_service_is_not_serving_during_a_defragmentation_with_the_gate() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let c = Cluster::start(
        Kind::Ours,
        1,
        &["--feature-gates=StopGRPCServiceOnDefrag=true"],
    );
    c.wait_ready(Duration::from_secs(30)).await;
    let ep = c.endpoint(0);
    assert_eq!(health_status(&ep).await, ServingStatus::Serving);
    // Enough data that the defragmentation, which copies it, takes a while.
    let mut kv = etcd_api::client::Client::new(common::channel(&ep).await.expect("channel")).kv;
    let value = vec![b'x'; 4096];
    for i in 0..3000 {
        kv.put(etcd_api::client::put_request(
            format!("k{i}"),
            value.clone(),
        ))
        .await
        .expect("put");
    }

    let ch = common::channel(&ep).await.expect("channel");
    let mut client = tonic_health::pb::health_client::HealthClient::new(ch);
    let mut watch = client
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let first = watch.message().await.expect("watch").expect("first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    let defrag = etcdctl_ok(&ep, &["defrag"], None);
    assert!(defrag.contains("Finished defragmenting"), "{defrag}");
    // NOT_SERVING lasts as long as the defragmentation, which may end before the watch is
    // polled (its updates coalesce); whatever it saw, it ends SERVING. The unit test in
    // api/maintenance.rs holds the state in between.
    let mut last = first.status();
    while let Ok(Ok(Some(next))) =
        tokio::time::timeout(Duration::from_millis(500), watch.message()).await
    {
        last = next.status();
    }
    assert_eq!(last, ServingStatus::Serving);
    assert_eq!(health_status(&ep).await, ServingStatus::Serving);
    assert!(c.log(0).contains("defrag is active"), "{}", c.log(0));
}
