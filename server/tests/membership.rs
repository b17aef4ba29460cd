//! Membership with real etcdctl 3.5.1: add a learner, start it (it joins and catches up),
//! learners refuse writes, promote it, remove another member (which stops), and the cluster
//! keeps serving with all data on the new member.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl, etcdctl_ok, Cluster, Kind};
use std::time::Duration;

fn member_id_of(member_list_json: &str, peer_url: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(member_list_json).expect("json");
    v["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| {
            m["peerURLs"]
                .as_array()
                .is_some_and(|u| u.iter().any(|x| x == peer_url))
        })
        .and_then(|m| m["ID"].as_u64())
        .unwrap_or_else(|| panic!("no member with peer URL {peer_url}: {member_list_json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_add_promote_and_member_remove() {
    let mut c = Cluster::start(
        Kind::Ours,
        3,
        &[
            "--snapshot-count=50",
            "--experimental-snapshot-catchup-entries=10",
            "--log-level=info",
        ],
    );
    c.wait_ready(Duration::from_secs(20)).await;
    let eps = c.endpoints();
    for i in 0..120 {
        etcdctl_ok(&eps, &["put", &format!("k{i:03}"), "v"], None);
    }
    let new = c.add_member();
    let peer = c.peer_url(new);
    let out = etcdctl_ok(
        &eps,
        &[
            "member",
            "add",
            "m3",
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
        None,
    );
    assert!(out.contains("added to cluster"), "{out}");
    // a second learner is refused by --max-learners=1
    let second = etcdctl(
        &eps,
        &[
            "member",
            "add",
            "m4",
            "--learner",
            "--peer-urls=http://127.0.0.1:1",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("too many learner members in cluster"));
    // promoting before the learner runs is refused: it is not in sync
    let list = etcdctl_ok(&eps, &["member", "list", "-w", "json"], None);
    let learner_id = member_id_of(&list, &peer);
    let early = etcdctl(
        &eps,
        &["member", "promote", &format!("{learner_id:x}")],
        None,
    );
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("in sync with leader"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    c.start_joining(new);
    let learner_ep = c.endpoint(new);
    // the learner catches up (serializable reads work) but refuses writes
    let mut caught_up = false;
    for _ in 0..100 {
        let out = etcdctl(
            &learner_ep,
            &["get", "k119", "--consistency=s", "--print-value-only"],
            None,
        );
        if String::from_utf8_lossy(&out.stdout).trim() == "v" {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "learner never caught up:\n{}", c.log(new));
    let w = etcdctl(&learner_ep, &["put", "x", "y"], None);
    assert!(String::from_utf8_lossy(&w.stderr).contains("rpc not supported for learner"));
    let ml = etcdctl_ok(&eps, &["member", "list"], None);
    assert!(
        ml.contains(", m3, ") && ml.contains(", true"),
        "learner not listed as started learner: {ml}"
    );

    // promote, then remove member 0
    let out = etcdctl_ok(
        &eps,
        &["member", "promote", &format!("{learner_id:x}")],
        None,
    );
    assert!(out.contains("promoted in cluster"), "{out}");
    let list = etcdctl_ok(&eps, &["member", "list", "-w", "json"], None);
    let m0 = member_id_of(&list, &c.peer_url(0));
    let rest = format!("{},{},{}", c.endpoint(1), c.endpoint(2), learner_ep);
    let out = etcdctl_ok(&rest, &["member", "remove", &format!("{m0:x}")], None);
    assert!(out.contains("removed from cluster"), "{out}");
    let mut stopped = false;
    for _ in 0..100 {
        if c.exited(0) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the removed member kept running:\n{}", c.log(0));
    c.kill(0);
    // If member 0 led, the others still name it leader until their election timeout: wait for
    // a leader among the remaining members before writing.
    let mut elected = false;
    for _ in 0..100 {
        if c.wait_ready(Duration::from_secs(20)).await != m0 {
            elected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(elected, "no new leader after removing member 0");
    // the new voter takes writes and holds everything
    let put = etcdctl(&learner_ep, &["put", "after", "ok"], None);
    if !put.status.success() {
        let logs: Vec<String> = (0..c.members.len())
            .map(|i| format!("--- m{i}:\n{}", c.log(i)))
            .collect();
        panic!(
            "put on the promoted member failed: {}\n{}",
            String::from_utf8_lossy(&put.stderr),
            logs.join("\n")
        );
    }
    let count = etcdctl_ok(
        &rest,
        &["get", "k", "--prefix", "--count-only", "-w", "fields"],
        None,
    );
    assert!(count.contains("\"Count\" : 120"), "{count}");
    assert_eq!(
        etcdctl_ok(&rest, &["member", "list"], None).lines().count(),
        3
    );
}

/// With member 2 killed, removing healthy member 0 would leave member 1 alone of two voters:
/// `--strict-reconfig-check` (on by default) refuses it; removing the dead member 2 is allowed.
/// Returns (the refusal's stderr, the allowed removal's stdout).
async fn remove_with_a_member_down(kind: Kind) -> (String, String) {
    let mut c = Cluster::start(kind, 3, &[]);
    c.wait_ready(Duration::from_secs(20)).await;
    // Every peer connected for longer than etcd's health interval (5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let eps = c.endpoints();
    let list = etcdctl_ok(&eps, &["member", "list", "-w", "json"], None);
    let (m0, m2) = (
        member_id_of(&list, &c.peer_url(0)),
        member_id_of(&list, &c.peer_url(2)),
    );
    c.kill(2);
    let rest = format!("{},{}", c.endpoint(0), c.endpoint(1));
    // A leader among the two left (member 2 may have led).
    let mut led = false;
    for _ in 0..100 {
        if matches!(c.leader_index().await, Some(0 | 1)) {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(led, "no leader among members 0 and 1");
    let refused = etcdctl(&rest, &["member", "remove", &format!("{m0:x}")], None);
    assert!(!refused.status.success(), "removing m0 was not refused");
    let allowed = etcdctl_ok(&rest, &["member", "remove", &format!("{m2:x}")], None);
    (
        String::from_utf8_lossy(&refused.stderr).into_owned(),
        allowed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_breaks_the_active_quorum_is_refused_as_etcd_refuses_it() {
    let (ours, etcd) = tokio::join!(
        remove_with_a_member_down(Kind::Ours),
        remove_with_a_member_down(Kind::RealEtcd)
    );
    for (who, (refused, allowed)) in [("ours", &ours), ("etcd 3.5.1", &etcd)] {
        assert!(
            refused.contains("etcdserver: unhealthy cluster"),
            "{who}: {refused}"
        );
        assert!(allowed.contains("removed from cluster"), "{who}: {allowed}");
    }
}

/// A voter added to a one-member cluster makes a quorum of two that only the new member can
/// complete: it must learn the member table without a quorum (etcd's peer `/members`
/// handler answers from the local table), join, and the cluster serves writes again.
/// Returns what a read through the new member shows.
async fn grow_one_member_cluster(kind: Kind) -> String {
    let mut c = Cluster::start(kind, 1, &[]);
    c.wait_ready(Duration::from_secs(20)).await;
    let first = c.endpoint(0);
    etcdctl_ok(&first, &["put", "before", "1"], None);
    let new = c.add_member();
    let peer = c.peer_url(new);
    let out = etcdctl_ok(
        &first,
        &["member", "add", "m1", &format!("--peer-urls={peer}")],
        None,
    );
    assert!(out.contains("added to cluster"), "{out}");
    c.start_joining(new);
    let mut wrote = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while wrote.is_none() && tokio::time::Instant::now() < deadline {
        let put = etcdctl(&first, &["put", "after", "2", "--command-timeout=2s"], None);
        if put.status.success() {
            wrote = Some(());
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        wrote.is_some(),
        "{kind:?}: no write after m1 joined:\n--- m0:\n{}\n--- m1:\n{}",
        c.log(0),
        c.log(new)
    );
    etcdctl_ok(
        &c.endpoint(new),
        &["get", "", "--prefix", "--print-value-only"],
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_added_to_a_one_member_cluster_joins_as_in_etcd() {
    let (ours, etcd) = tokio::join!(
        grow_one_member_cluster(Kind::Ours),
        grow_one_member_cluster(Kind::RealEtcd)
    );
    assert_eq!(ours, "2\n1\n", "ours");
    assert_eq!(etcd, ours, "etcd 3.5.1 and ours");
}
