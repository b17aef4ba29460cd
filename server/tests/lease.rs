//! Leases driven by real etcdctl 3.5.1 against a 3-member cluster: grant, put --lease,
//! keep-alive (through a follower too), time-to-live with keys, list, revoke, and expiry by the
//! leader deleting the attached keys in one revision.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl, etcdctl_ok, Cluster, Kind};
use std::time::Duration;

fn lease_id(grant_output: &str) -> String {
    // "lease 694d77aa9e38260f granted with TTL(30s)"
    grant_output
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected grant output: {grant_output}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lease_commands() {
    let c = Cluster::start(Kind::Ours, 3, &[]);
    let leader_id = c.wait_ready(Duration::from_secs(20)).await;
    let eps = c.endpoints();
    let leader = c.leader_index().await.expect("leader");
    let follower = c.endpoint((leader + 1) % 3);

    let out = etcdctl_ok(&eps, &["lease", "grant", "30"], None);
    assert!(out.contains("granted with TTL(30s)"), "{out}");
    let id = lease_id(&out);
    etcdctl_ok(&eps, &["put", "--lease", &id, "lk1", "v"], None);
    etcdctl_ok(&eps, &["put", "--lease", &id, "lk2", "v"], None);
    let ttl = etcdctl_ok(&follower, &["lease", "timetolive", &id, "--keys"], None);
    assert!(
        ttl.contains(&format!("lease {id} granted with TTL(30s)")),
        "{ttl}"
    );
    assert!(ttl.contains("attached keys([lk1 lk2])"), "{ttl}");
    // keep-alive through a follower is forwarded to the leader
    let ka = etcdctl_ok(&follower, &["lease", "keep-alive", "--once", &id], None);
    assert!(
        ka.contains(&format!("lease {id} keepalived with TTL(30)")),
        "{ka}"
    );
    let list = etcdctl_ok(&eps, &["lease", "list"], None);
    assert!(
        list.contains("found 1 leases") && list.contains(&id),
        "{list}"
    );
    // a put with an unknown lease fails like etcd
    let bad = etcdctl(&eps, &["put", "--lease", "1234", "x", "y"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("requested lease not found"));
    // revoke deletes the attached keys in one revision
    let before = etcdctl_ok(&eps, &["get", "lk1", "-w", "json"], None);
    let rev_before: serde_json::Value = serde_json::from_str(&before).expect("json");
    let rev_before = rev_before["header"]["revision"].as_i64().expect("revision");
    let out = etcdctl_ok(&eps, &["lease", "revoke", &id], None);
    assert!(out.contains(&format!("lease {id} revoked")), "{out}");
    assert_eq!(etcdctl_ok(&eps, &["get", "lk", "--prefix"], None), "");
    let after: serde_json::Value =
        serde_json::from_str(&etcdctl_ok(&eps, &["get", "lk1", "-w", "json"], None)).expect("json");
    assert_eq!(after["header"]["revision"].as_i64(), Some(rev_before + 1));
    let gone = etcdctl_ok(&eps, &["lease", "timetolive", &id], None);
    assert!(gone.contains("already expired"), "{gone}");

    // expiry: a 2 s lease nobody keeps alive is revoked by the leader, keys and all
    let id = lease_id(&etcdctl_ok(&eps, &["lease", "grant", "2"], None));
    etcdctl_ok(&eps, &["put", "--lease", &id, "ek", "v"], None);
    assert_eq!(
        etcdctl_ok(&eps, &["get", "ek", "--print-value-only"], None),
        "v\n"
    );
    let mut expired = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if etcdctl_ok(&eps, &["get", "ek"], None).is_empty() {
            expired = true;
            break;
        }
    }
    assert!(
        expired,
        "key with an expired 2 s lease still there after 6 s"
    );
    assert!(leader_id != 0);
}
