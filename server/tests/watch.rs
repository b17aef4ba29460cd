//! Watch, driven by real etcdctl 3.5.1, compared with real etcd 3.5.1: the same operations give
//! the same watch output (types, keys, values, prev_kv) for historical and live watches.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcd_bin, etcdctl_ok, Cluster, Kind};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `etcdctl watch ARGS` and returns the child and a channel of its output lines.
fn watch(endpoints: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(etcd_bin("etcdctl"))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcdctl watch");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads `n` lines (or fails after a timeout, showing what arrived).
fn lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => got.push(l),
            Err(_) => panic!(
                "watch output stopped after {} of {n} lines: {got:?}",
                got.len()
            ),
        }
    }
    got
}

fn ops(ep: &str) {
    etcdctl_ok(ep, &["put", "a1", "v1"], None);
    etcdctl_ok(ep, &["put", "a2", "x"], None);
    etcdctl_ok(ep, &["put", "a1", "v2"], None);
    etcdctl_ok(ep, &["put", "b1", "outside"], None);
    etcdctl_ok(ep, &["del", "a", "--prefix"], None);
    etcdctl_ok(ep, &["txn"], Some("\nput a3 t1\nput a4 t2\n\n\n"));
}

/// What a watch of prefix `a` with prev_kv prints for `ops`: 6 events.
const EVENT_LINES: usize = 3 + 3 + 5 + 5 + 5 + 3 + 3;

fn run_against(kind: Kind) -> (Vec<String>, Vec<String>) {
    let c = Cluster::start(kind, 1, &[]);
    let ep = c.endpoint(0);
    // Wait until the member serves.
    for _ in 0..100 {
        if common::etcdctl(&ep, &["get", "x"], None).status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut live, live_rx) = watch(&ep, &["a", "--prefix", "--prev-kv"]);
    std::thread::sleep(Duration::from_millis(500));
    ops(&ep);
    let live_lines = lines(&live_rx, EVENT_LINES);
    let _ = live.kill();
    let (mut hist, hist_rx) = watch(&ep, &["a", "--prefix", "--prev-kv", "--rev", "1"]);
    let hist_lines = lines(&hist_rx, EVENT_LINES);
    let _ = hist.kill();
    (live_lines, hist_lines)
}

#[test]
fn watch_output_matches_etcd_3_5_1() {
    let (etcd_live, etcd_hist) = run_against(Kind::RealEtcd);
    let (ours_live, ours_hist) = run_against(Kind::Ours);
    assert_eq!(
        etcd_live, etcd_hist,
        "etcd itself: live and historical watch differ"
    );
    assert_eq!(ours_live, etcd_live, "live watch differs from etcd's");
    assert_eq!(
        ours_hist, etcd_hist,
        "watch from revision 1 differs from etcd's"
    );
    assert!(
        etcd_live.iter().filter(|l| *l == "DELETE").count() == 2,
        "{etcd_live:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_is_cancelled_with_the_compact_revision() {
    use etcd_client::{Client, WatchOptions};
    let c = Cluster::start(Kind::Ours, 3, &[]);
    c.wait_ready(Duration::from_secs(20)).await;
    let mut cl = Client::connect([c.endpoint(0)], None)
        .await
        .expect("connect");
    for i in 0..5 {
        cl.put("k", format!("v{i}"), None).await.expect("put");
    }
    cl.compact(4, None).await.expect("compact");
    let mut stream = cl
        .watch("k", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .expect("watch");
    let mut compact_rev = 0;
    while let Some(resp) = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a watch response in time")
        .expect("watch stream")
    {
        if resp.canceled() {
            compact_rev = resp.compact_revision();
            break;
        }
    }
    assert_eq!(compact_rev, 4);
    // A watch on another member from a revision still in history sees every later event, in
    // order, once each.
    let mut other = Client::connect([c.endpoint(2)], None)
        .await
        .expect("connect");
    let mut stream = other
        .watch("k", Some(WatchOptions::new().with_start_revision(5)))
        .await
        .expect("watch");
    cl.put("k", "v5", None).await.expect("put");
    let mut revs = Vec::new();
    while revs.len() < 3 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("events in time")
            .expect("stream")
            .expect("open");
        revs.extend(
            resp.events()
                .iter()
                .filter_map(|e| e.kv().map(|kv| kv.mod_revision())),
        );
    }
    assert_eq!(revs, vec![5, 6, 7]);
}
