//! A rolling upgrade, by the reference and by us, in real mode: real etcd 3.4.23 (Debian's
//! `etcd-server` package) restarted member by member as real etcd 3.5.1 on the same data dirs,
//! and our `etcd-server` restarted member by member from `--emulate-release=3.5.20` to
//! `--emulate-release=3.6.0`, both observed after every step through each member's `/version`
//! and real etcdctl 3.5.1's `endpoint status -w json`.
//!
//! It proves that the two rolls have the same shape: the cluster version stays at the old minor
//! (3.4 / 3.5) while any member still runs the old release, watched for longer than the
//! leader's version monitor interval (4 s in etcd 3.4 and 3.5, and in ours); it moves to the new
//! minor (3.5 / 3.6) only once the last member has restarted; and the members' server versions
//! move one at a time, in the same order. It also proves that the JSON keys of our `/version`
//! and of our `Status` (as etcdctl 3.5.1 prints it) include all of real 3.5.1's. The recorded
//! sequences are printed (`--nocapture`).
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl_ok, http_get, Cluster, Kind};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long an intermediate step is watched for a cluster-version move that must not happen:
/// longer than the leader's version monitor interval (4 s in etcd 3.4 and 3.5, and in ours).
const HOLD: Duration = Duration::from_secs(6);
/// How long the cluster version may take to be decided at start and to move after the last
/// restart (by hand, real etcd moved it 0.6 to 3.4 s after the last member restarted).
const MOVE_WITHIN: Duration = Duration::from_secs(30);

/// One roll: how the old cluster starts and how a member restarts on the new release.
struct Roll {
    name: &'static str,
    start: fn() -> Cluster,
    upgrade: fn(&mut Cluster, usize),
    /// Minor of the old release, e.g. "3.4".
    old: &'static str,
    /// Minor of the new release, e.g. "3.5".
    new: &'static str,
}

/// What one step of a roll showed.
struct Step {
    what: String,
    /// `/version` of each member.
    versions: Vec<serde_json::Value>,
    /// `Status` of each member from `endpoint status -w json`, in member order.
    statuses: Vec<serde_json::Value>,
    /// Cluster-version samples, taken while an intermediate step was watched, that were not
    /// all at the old minor.
    off: Vec<Vec<String>>,
    /// For the last step: how long after the restart every member showed the new minor.
    moved_after: Option<Duration>,
}

fn version_of(c: &Cluster, i: usize) -> serde_json::Value {
    let (code, body) = http_get(&c.endpoint(i), "/version");
    assert_eq!(code, 200, "/version of m{i}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/version not JSON ({e}): {body}"))
}

fn all_versions(c: &Cluster) -> Vec<serde_json::Value> {
    (0..c.members.len()).map(|i| version_of(c, i)).collect()
}

/// A string field of a JSON object ("" when missing).
fn field(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

fn cluster_versions(c: &Cluster) -> Vec<String> {
    all_versions(c)
        .iter()
        .map(|v| field(v, "etcdcluster"))
        .collect()
}

/// `Status` of each member from etcdctl 3.5.1's `endpoint status -w json`, in member order.
fn statuses(c: &Cluster) -> Vec<serde_json::Value> {
    let out = etcdctl_ok(&c.endpoints(), &["endpoint", "status", "-w", "json"], None);
    let all: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status not JSON ({e}): {out}"));
    let entries = all
        .as_array()
        .unwrap_or_else(|| panic!("status not one entry per endpoint: {out}"));
    (0..c.members.len())
        .map(|i| {
            let ep = c.endpoint(i);
            entries
                .iter()
                .find(|e| e["Endpoint"].as_str() == Some(ep.as_str()))
                .map(|e| e["Status"].clone())
                .unwrap_or_else(|| panic!("no status of {ep}: {out}"))
        })
        .collect()
}

/// "old" or "new" for a version at the roll's old or new minor ("3.4.0" and "3.4.23" are at
/// "3.4"), else the version itself (e.g. "not_decided").
fn shape(roll: &Roll, v: &str) -> String {
    let minor = v.split('.').take(2).collect::<Vec<_>>().join(".");
    if minor == roll.old {
        "old".to_string()
    } else if minor == roll.new {
        "new".to_string()
    } else {
        v.to_string()
    }
}

/// Polls until every member's cluster version is at `want` ("old" or "new"), for up to `within`
/// after `since`; returns how long after `since` that was, or None.
async fn until_all(
    c: &Cluster,
    roll: &Roll,
    want: &str,
    since: tokio::time::Instant,
    within: Duration,
) -> Option<Duration> {
    loop {
        if cluster_versions(c).iter().all(|v| shape(roll, v) == want) {
            return Some(since.elapsed());
        }
        if since.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Samples every member's cluster version for `hold`; returns the samples that were not all
/// at the old minor (consecutive repeats once).
async fn watch_hold(c: &Cluster, roll: &Roll, hold: Duration) -> Vec<Vec<String>> {
    let deadline = tokio::time::Instant::now() + hold;
    let mut off: Vec<Vec<String>> = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let seen = cluster_versions(c);
        if seen.iter().any(|v| shape(roll, v) != "old") && off.last() != Some(&seen) {
            off.push(seen);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    off
}

/// Starts the old cluster, waits for its cluster version, then restarts members 0, 1, 2 on the
/// new release, recording every step.
async fn run(roll: &Roll) -> Vec<Step> {
    let mut c = (roll.start)();
    c.wait_ready(Duration::from_secs(30)).await;
    let decided = until_all(&c, roll, "old", tokio::time::Instant::now(), MOVE_WITHIN).await;
    assert!(
        decided.is_some(),
        "{}: cluster version not at {} within {MOVE_WITHIN:?}: {:?}",
        roll.name,
        roll.old,
        cluster_versions(&c)
    );
    let mut steps = vec![Step {
        what: "start".to_string(),
        versions: all_versions(&c),
        statuses: statuses(&c),
        off: Vec::new(),
        moved_after: None,
    }];
    let n = c.members.len();
    for i in 0..n {
        let restarted = tokio::time::Instant::now();
        (roll.upgrade)(&mut c, i);
        c.wait_ready(Duration::from_secs(30)).await;
        let (off, moved_after) = if i + 1 < n {
            (watch_hold(&c, roll, HOLD).await, None)
        } else {
            let moved = until_all(&c, roll, "new", restarted, MOVE_WITHIN).await;
            if moved.is_none() {
                for m in 0..n {
                    eprintln!("{}: log of m{m}:\n{}", roll.name, c.log(m));
                }
            }
            (Vec::new(), moved)
        };
        steps.push(Step {
            what: format!("m{i} restarted"),
            versions: all_versions(&c),
            statuses: statuses(&c),
            off,
            moved_after,
        });
    }
    steps
}

fn print(roll: &Roll, steps: &[Step]) {
    println!("== {}", roll.name);
    for s in steps {
        let versions: Vec<String> = s.versions.iter().map(|v| v.to_string()).collect();
        let status: Vec<String> = s.statuses.iter().map(|st| field(st, "version")).collect();
        let moved = s
            .moved_after
            .map(|d| {
                format!(
                    "  (cluster version moved {:.1} s after the restart)",
                    d.as_secs_f64()
                )
            })
            .unwrap_or_default();
        println!(
            "{:<13} /version {}  Status.version {status:?}{moved}",
            s.what,
            versions.join(" ")
        );
        for o in &s.off {
            println!("{:<13} moved early: {o:?}", "");
        }
    }
    if let Some(last) = steps.last() {
        println!(
            "last step's Status: {}",
            serde_json::Value::Array(last.statuses.clone())
        );
    }
}

/// Per step, each member's value (picked by `pick`) as "old"/"new".
fn shapes(roll: &Roll, steps: &[Step], pick: impl Fn(&Step) -> Vec<String>) -> Vec<Vec<String>> {
    steps
        .iter()
        .map(|s| pick(s).iter().map(|v| shape(roll, v)).collect())
        .collect()
}

fn cluster_of(s: &Step) -> Vec<String> {
    s.versions.iter().map(|v| field(v, "etcdcluster")).collect()
}

fn server_of(s: &Step) -> Vec<String> {
    s.versions.iter().map(|v| field(v, "etcdserver")).collect()
}

fn status_version_of(s: &Step) -> Vec<String> {
    s.statuses.iter().map(|v| field(v, "version")).collect()
}

/// `rows` like ["old old old", "new old old"] as shapes.
fn expect(rows: &[&str]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Keys of a JSON object, and of objects nested one level as `outer.inner`.
fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(obj) = v.as_object() {
        for (k, inner) in obj {
            out.insert(k.clone());
            if let Some(o) = inner.as_object() {
                out.extend(o.keys().map(|ik| format!("{k}.{ik}")));
            }
        }
    }
    out
}

/// Keys present in every one of `values`.
fn keys_in_all<'a>(values: impl IntoIterator<Item = &'a serde_json::Value>) -> BTreeSet<String> {
    let mut it = values.into_iter();
    let mut acc = it.next().map(keys).unwrap_or_default();
    for v in it {
        let k = keys(v);
        acc.retain(|x| k.contains(x));
    }
    acc
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_upgrade_of_ours_moves_the_cluster_version_as_real_etcd_3_4_to_3_5_does() {
    let real = Roll {
        name: "real etcd 3.4.23 -> 3.5.1",
        start: || Cluster::start(Kind::RealEtcd34, 3, &[]),
        upgrade: |c, i| c.restart_as(i, Kind::RealEtcd, &[]),
        old: "3.4",
        new: "3.5",
    };
    let ours = Roll {
        name: "etcd-server 3.5.20 -> 3.6.0",
        start: || Cluster::start(Kind::Ours, 3, &["--emulate-release=3.5.20"]),
        upgrade: |c, i| c.restart_with(i, &["--emulate-release=3.6.0"]),
        old: "3.5",
        new: "3.6",
    };
    let real_steps = run(&real).await;
    print(&real, &real_steps);
    let ours_steps = run(&ours).await;
    print(&ours, &ours_steps);

    // No early move: while a member still ran the old release, no sample left the old minor.
    for (roll, steps) in [(&real, &real_steps), (&ours, &ours_steps)] {
        for s in steps {
            assert!(
                s.off.is_empty(),
                "{}: the cluster version moved before the last member restarted ({}): {:?}",
                roll.name,
                s.what,
                s.off
            );
        }
        assert!(
            steps.last().and_then(|s| s.moved_after).is_some(),
            "{}: the cluster version did not move within {MOVE_WITHIN:?} of the last restart",
            roll.name
        );
    }

    // The same shape, step by step: ours against the reference, then the reference against
    // what the roll is expected to show.
    let real_cluster = shapes(&real, &real_steps, cluster_of);
    let ours_cluster = shapes(&ours, &ours_steps, cluster_of);
    println!(
        "etcdcluster per step: real {real_cluster:?}\n                      ours {ours_cluster:?}"
    );
    assert_eq!(
        ours_cluster, real_cluster,
        "etcdcluster per step, ours vs real etcd"
    );
    assert_eq!(
        real_cluster,
        expect(&["old old old", "old old old", "old old old", "new new new"]),
        "etcdcluster per step of real etcd"
    );
    let real_server = shapes(&real, &real_steps, server_of);
    let ours_server = shapes(&ours, &ours_steps, server_of);
    assert_eq!(
        ours_server, real_server,
        "etcdserver per step, ours vs real etcd"
    );
    assert_eq!(
        real_server,
        expect(&["old old old", "new old old", "new new old", "new new new"]),
        "etcdserver per step of real etcd"
    );
    let real_status = shapes(&real, &real_steps, status_version_of);
    let ours_status = shapes(&ours, &ours_steps, status_version_of);
    assert_eq!(
        ours_status, real_status,
        "Status.version per step, ours vs real etcd"
    );
    assert_eq!(
        real_status, real_server,
        "Status.version vs /version of real etcd"
    );

    // Keys: real 3.5.1's (every member at the last step runs 3.5.1) against the keys every one
    // of our members answered at every step, 3.5.20 or 3.6.0.
    let real_last = real_steps.last().expect("steps");
    let ours_last = ours_steps.last().expect("steps");
    let real_version_keys: BTreeSet<String> = real_last.versions.iter().flat_map(keys).collect();
    let ours_version_keys = keys_in_all(ours_steps.iter().flat_map(|s| s.versions.iter()));
    let ours_version_keys_last: BTreeSet<String> =
        ours_last.versions.iter().flat_map(keys).collect();
    let real_status_keys: BTreeSet<String> = real_last.statuses.iter().flat_map(keys).collect();
    let ours_status_keys = keys_in_all(ours_steps.iter().flat_map(|s| s.statuses.iter()));
    let ours_status_keys_last: BTreeSet<String> =
        ours_last.statuses.iter().flat_map(keys).collect();
    println!("/version keys: real 3.5.1 {real_version_keys:?}");
    println!("               ours, every step {ours_version_keys:?}");
    println!("               ours 3.6.0 {ours_version_keys_last:?}");
    println!("Status keys:   real 3.5.1 {real_status_keys:?}");
    println!("               ours, every step {ours_status_keys:?}");
    println!("               ours 3.6.0 {ours_status_keys_last:?}");
    assert!(
        real_version_keys.contains("etcdcluster") && real_status_keys.contains("version"),
        "real 3.5.1's keys look empty: {real_version_keys:?} {real_status_keys:?}"
    );
    assert!(
        real_version_keys.is_subset(&ours_version_keys),
        "/version keys real 3.5.1 has and ours lacks: {:?}",
        real_version_keys
            .difference(&ours_version_keys)
            .collect::<Vec<_>>()
    );
    assert!(
        real_status_keys.is_subset(&ours_status_keys),
        "Status keys real 3.5.1 has and ours lacks: {:?}",
        real_status_keys
            .difference(&ours_status_keys)
            .collect::<Vec<_>>()
    );
}
