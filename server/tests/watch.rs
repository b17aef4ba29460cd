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

/// One watch response as the fragment test sees it: whether it is a fragment, and its events as
/// (type, key, mod revision, whether prev_kv is set).
type Part = (bool, Vec<(i32, Vec<u8>, i64, bool)>);

/// Waits for a new watch's created response: `Client::watch` returns once the stream is open,
/// before the server has registered the watcher, so a write sent right away could come before
/// the watcher's start (our server, loaded in CI, once missed the first txn that way).
async fn created(stream: &mut etcd_client::WatchStream) {
    let resp = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("created response in time")
        .expect("watch stream")
        .expect("stream open");
    assert!(resp.created(), "the first response creates the watch");
}

/// Reads responses with events until `n` events arrived (created/progress responses skipped).
async fn parts(stream: &mut etcd_client::WatchStream, n: usize) -> Vec<Part> {
    let mut got = Vec::new();
    let mut events = 0;
    while events < n {
        let resp = tokio::time::timeout(Duration::from_secs(15), stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {events} of {n} events arrived: {got:?}"))
            .expect("watch stream")
            .expect("stream open");
        let raw = resp.0;
        if raw.events.is_empty() {
            continue;
        }
        events += raw.events.len();
        let evs = raw
            .events
            .into_iter()
            .map(|e| {
                let kv = e.kv.unwrap_or_default();
                (e.r#type, kv.key, kv.mod_revision, e.prev_kv.is_some())
            })
            .collect();
        got.push((raw.fragment, evs));
    }
    got
}

const FRAG_TXNS: usize = 15;
const FRAG_PUTS: usize = 30;
const FRAG_VALUE: usize = 3000;

/// Runs the fragment scenario on one server: live watches of prefix `f/` with prev_kv (with and
/// without fragments), 15 txns of 30 puts of 3000 bytes, a delete of the prefix (one revision,
/// ~1.4 MB of events with prev_kv), then a watch from the first txn's revision with fragments.
/// Returns the live fragmented, live whole and historical fragmented responses.
async fn fragment_run(kind: Kind) -> (Vec<Part>, Vec<Part>, Vec<Part>) {
    use etcd_client::{Client, DeleteOptions, Txn, TxnOp, WatchOptions};
    // Fragments are cut at --max-request-bytes plus etcd's 512 KiB gRPC overhead.
    let c = Cluster::start(kind, 1, &["--max-request-bytes=100000"]);
    c.wait_ready(Duration::from_secs(20)).await;
    let mut cl = Client::connect([c.endpoint(0)], None)
        .await
        .expect("connect");
    let opts = WatchOptions::new().with_prefix().with_prev_key();
    let mut frag = cl
        .watch("f/", Some(opts.clone().with_fragment()))
        .await
        .expect("watch");
    let mut whole = cl.watch("f/", Some(opts)).await.expect("watch");
    created(&mut frag).await;
    created(&mut whole).await;
    let mut first_rev = 0;
    for t in 0..FRAG_TXNS {
        let puts = (0..FRAG_PUTS)
            .map(|i| TxnOp::put(format!("f/{t:02}/{i:02}"), vec![b'x'; FRAG_VALUE], None))
            .collect::<Vec<_>>();
        let resp = cl.txn(Txn::new().and_then(puts)).await.expect("txn");
        if first_rev == 0 {
            first_rev = resp.header().expect("header").revision();
        }
    }
    cl.delete("f/", Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete");
    let n = 2 * FRAG_TXNS * FRAG_PUTS;
    let live_frag = parts(&mut frag, n).await;
    let live_whole = parts(&mut whole, n).await;
    let mut hist = cl
        .watch(
            "f/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(first_rev)
                    .with_fragment(),
            ),
        )
        .await
        .expect("watch");
    let hist_frag = parts(&mut hist, n).await;
    (live_frag, live_whole, hist_frag)
}

/// Fragment flags and event counts of a response sequence.
fn shape(p: &[Part]) -> Vec<(bool, usize)> {
    p.iter().map(|(f, e)| (*f, e.len())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_watch_responses_are_fragmented_like_etcd_3_5_1() {
    let etcd = fragment_run(Kind::RealEtcd).await;
    let ours = fragment_run(Kind::Ours).await;
    let n = FRAG_TXNS * FRAG_PUTS;
    for (name, (frag, whole, hist)) in [("etcd", &etcd), ("ours", &ours)] {
        // Without fragment: one response per revision, the delete's 450 events in one.
        assert_eq!(whole.len(), FRAG_TXNS + 1, "{name}: {:?}", shape(whole));
        assert!(whole.iter().all(|(f, _)| !f), "{name}");
        assert_eq!(whole.last().map(|(_, e)| e.len()), Some(n), "{name}");
        // With fragment: the puts fit, the delete (with prev_kv) is split in several.
        let s = shape(frag);
        assert!(s.len() >= FRAG_TXNS + 3, "{name}: {s:?}");
        assert!(
            s[..FRAG_TXNS].iter().all(|(f, k)| !f && *k == FRAG_PUTS),
            "{name}: {s:?}"
        );
        let del = &s[FRAG_TXNS..];
        assert!(
            del[..del.len() - 1].iter().all(|(f, _)| *f),
            "{name}: {s:?}"
        );
        assert!(!del[del.len() - 1].0, "{name}: {s:?}");
        // Reassembled, the fragments are the whole responses' events.
        let flat = |p: &[Part]| p.iter().flat_map(|(_, e)| e.clone()).collect::<Vec<_>>();
        assert_eq!(flat(frag), flat(whole), "{name}");
        assert!(
            flat(whole).iter().all(|e| e.3 == (e.0 == 1)),
            "{name}: prev_kv on deletes"
        );
        // From history: one catch-up response, split too.
        let h = shape(hist);
        assert!(
            h.len() >= 3 && h[..h.len() - 1].iter().all(|(f, _)| *f),
            "{name}: {h:?}"
        );
        assert!(!h[h.len() - 1].0, "{name}: {h:?}");
        let keys = |p: &[Part]| {
            p.iter()
                .flat_map(|(_, e)| e.iter().map(|x| (x.0, x.1.clone(), x.2)))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(hist), keys(whole), "{name}: history");
    }
    eprintln!(
        "live fragments etcd {:?} ours {:?}; history etcd {:?} ours {:?}",
        &shape(&etcd.0)[FRAG_TXNS..],
        &shape(&ours.0)[FRAG_TXNS..],
        shape(&etcd.2),
        shape(&ours.2)
    );
    // Same cut points as etcd (one event of slack: member and cluster ids differ in size).
    for (a, b) in [(&etcd.0, &ours.0), (&etcd.2, &ours.2)] {
        let (sa, sb) = (shape(a), shape(b));
        assert_eq!(sa.len(), sb.len(), "etcd {sa:?}\nours {sb:?}");
        for (x, y) in sa.iter().zip(&sb) {
            assert!(
                x.0 == y.0 && x.1.abs_diff(y.1) <= 1,
                "etcd {sa:?}\nours {sb:?}"
            );
        }
    }
}
