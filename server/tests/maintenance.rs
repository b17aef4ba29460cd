//! Maintenance driven by real etcdctl 3.5.1: physical compaction, defrag, hashkv agreement,
//! move-leader, snapshot save, and the NOSPACE alarm: quota reached → writes refused with
//! etcd's error, reads served, nothing lost; compaction + defrag + disarm recovers.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl, etcdctl_ok, Cluster, Kind};
use std::time::Duration;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_maintenance_commands() {
    let c = Cluster::start(Kind::Ours, 3, &[]);
    c.wait_ready(Duration::from_secs(20)).await;
    let eps = c.endpoints();
    for i in 0..20 {
        etcdctl_ok(
            &eps,
            &["put", &format!("k{}", i % 5), &format!("v{i}")],
            None,
        );
    }
    let rev = json(&etcdctl_ok(&eps, &["get", "k0", "-w", "json"], None))["header"]["revision"]
        .as_i64()
        .expect("revision");
    let out = etcdctl_ok(
        &eps,
        &["compaction", "--physical", &(rev - 2).to_string()],
        None,
    );
    assert_eq!(out.trim(), format!("compacted revision {}", rev - 2));
    let out = etcdctl_ok(&eps, &["defrag"], None);
    assert_eq!(
        out.matches("Finished defragmenting etcd member").count(),
        3,
        "{out}"
    );
    // hashkv at one revision is equal on every member
    let hk = json(&etcdctl_ok(
        &eps,
        &[
            "endpoint",
            "hashkv",
            "-w",
            "json",
            "--rev",
            &rev.to_string(),
        ],
        None,
    ));
    let hashes: Vec<u64> = hk
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["HashKV"]["hash"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(hashes.len(), 3);
    assert!(hashes.iter().all(|h| *h == hashes[0] && *h != 0), "{hk}");
    // move-leader to a follower
    let leader = c.leader_index().await.expect("leader");
    let target = (leader + 1) % 3;
    let target_id = json(&etcdctl_ok(
        &c.endpoint(target),
        &["endpoint", "status", "-w", "json"],
        None,
    ))[0]["Status"]["header"]["member_id"]
        .as_u64()
        .expect("member id");
    let out = etcdctl_ok(
        &c.endpoint(leader),
        &["move-leader", &format!("{target_id:x}")],
        None,
    );
    assert!(out.contains("Leadership transferred"), "{out}");
    c.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(c.leader_index().await, Some(target));
    // snapshot save streams the backend
    let file = c.dir().join("snap.db");
    let out = etcdctl_ok(
        &c.endpoint(0),
        &["snapshot", "save", &file.display().to_string()],
        None,
    );
    assert!(out.contains("Snapshot saved at"), "{out}");
    assert!(std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_raises_nospace_and_compaction_defrag_disarm_recover() {
    let c = Cluster::start(Kind::Ours, 3, &["--quota-backend-bytes=3000000"]);
    c.wait_ready(Duration::from_secs(20)).await;
    let eps = c.endpoints();
    let big = "x".repeat(100_000);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..100 {
        let out = etcdctl(&eps, &["put", &format!("big{}", i % 3), &big], None);
        if out.status.success() {
            acked.push(i);
        } else {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("the quota was never reached");
    assert!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    let alarms = etcdctl_ok(&eps, &["alarm", "list"], None);
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    // reads still served, nothing acknowledged lost
    let last = *acked.last().expect("some writes succeeded");
    assert_eq!(
        etcdctl_ok(
            &eps,
            &["get", &format!("big{}", last % 3), "--print-value-only"],
            None
        )
        .trim(),
        big
    );
    let out = etcdctl(&eps, &["put", "small", "v"], None);
    assert!(!out.status.success(), "a put succeeded under NOSPACE");
    // recover: compact, defrag, disarm
    let rev = json(&etcdctl_ok(&eps, &["get", "big0", "-w", "json"], None))["header"]["revision"]
        .as_i64()
        .expect("revision");
    etcdctl_ok(&eps, &["compaction", "--physical", &rev.to_string()], None);
    etcdctl_ok(&eps, &["defrag"], None);
    let out = etcdctl_ok(&eps, &["alarm", "disarm"], None);
    assert!(out.contains("alarm:NOSPACE"), "{out}");
    assert_eq!(etcdctl_ok(&eps, &["alarm", "list"], None).trim(), "");
    assert_eq!(etcdctl_ok(&eps, &["put", "small", "v"], None).trim(), "OK");
}
