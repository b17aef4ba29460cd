//! Differential test of watches and leases: the same seeded operations (puts, some with leases,
//! deletes, txns, lease grants with fixed ids, revokes, time-to-live, lease lists) against real
//! etcd 3.5.1 and against ours give the same lease responses and the same watch event streams
//! (type, key, value, create/mod revision, version, lease, prev_kv) for a prefix watch with
//! prev_kv, a NOPUT and a NODELETE watch, and a watch opened mid-way from an old revision.
//! Remaining TTL seconds are not compared (clocks differ), only whether the lease is alive.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{channel, normalize_ids, unary, Cluster, Kind};
use etcd_client::proto::{
    PbDeleteRequest, PbDeleteResponse, PbEvent, PbLeaseGrantRequest, PbLeaseGrantResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse, PbPutRequest, PbPutResponse,
    PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use etcd_client::{Client, WatchFilterType, WatchOptions, WatchStream};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;

const OPS: usize = 400;
/// First lease id granted (ids are fixed so both servers use the same ones).
const LEASE_BASE: i64 = 0x1000;
/// The key that ends every watcher's stream (put, then deleted).
const END_KEY: &[u8] = b"kz";

#[derive(Debug, Clone)]
enum Req {
    Put(PbPutRequest),
    Delete(PbDeleteRequest),
    Txn(PbTxnRequest),
    Grant(PbLeaseGrantRequest),
    Revoke(PbLeaseRevokeRequest),
    TimeToLive(PbLeaseTimeToLiveRequest),
    Leases,
}

/// What the generator knows: leases granted and not revoked (from etcd's answers).
#[derive(Default)]
struct Model {
    next_lease: i64,
    leases: BTreeSet<i64>,
}

fn key(rng: &mut ChaCha8Rng) -> Vec<u8> {
    format!("k{}", rng.gen_range(0..8)).into_bytes()
}

fn lease_for_put(rng: &mut ChaCha8Rng, m: &Model) -> i64 {
    match rng.gen_range(0..10) {
        0..=4 => 0,
        5 => 0x7777, // never granted: etcd refuses the put
        _ => {
            let ids: Vec<i64> = m.leases.iter().copied().collect();
            if ids.is_empty() {
                0
            } else {
                ids[rng.gen_range(0..ids.len())]
            }
        }
    }
}

fn gen_put(rng: &mut ChaCha8Rng, m: &Model, n: usize) -> PbPutRequest {
    PbPutRequest {
        key: key(rng),
        value: format!("v{n}").into_bytes(),
        lease: lease_for_put(rng, m),
        prev_kv: rng.gen_bool(0.5),
        ignore_value: false,
        ignore_lease: false,
    }
}

fn gen_delete(rng: &mut ChaCha8Rng) -> PbDeleteRequest {
    let k = key(rng);
    let range_end = match rng.gen_range(0..4) {
        0 => b"kx".to_vec(), // the whole prefix but the end key
        1 => {
            let mut e = k.clone();
            if let Some(last) = e.last_mut() {
                *last += rng.gen_range(1..4);
            }
            e
        }
        _ => Vec::new(),
    };
    PbDeleteRequest {
        key: k,
        range_end,
        prev_kv: rng.gen_bool(0.5),
    }
}

fn gen_txn(rng: &mut ChaCha8Rng, m: &Model, n: usize) -> PbTxnRequest {
    let mut used = Vec::new();
    let mut ops = Vec::new();
    for i in 0..rng.gen_range(1..5) {
        let op = if rng.gen_bool(0.6) {
            let p = gen_put(rng, m, n * 10 + i);
            if used.contains(&p.key) {
                continue;
            }
            used.push(p.key.clone());
            PbTxnOpRequest::RequestPut(p)
        } else {
            let mut d = gen_delete(rng);
            d.range_end.clear();
            if used.contains(&d.key) {
                continue;
            }
            used.push(d.key.clone());
            PbTxnOpRequest::RequestDeleteRange(d)
        };
        ops.push(PbTxnRequestOp { request: Some(op) });
    }
    PbTxnRequest {
        compare: Vec::new(),
        success: ops,
        failure: Vec::new(),
    }
}

fn some_lease(rng: &mut ChaCha8Rng, m: &Model) -> i64 {
    let ids: Vec<i64> = m.leases.iter().copied().collect();
    if ids.is_empty() || rng.gen_bool(0.15) {
        // unknown (never granted, or maybe revoked already)
        LEASE_BASE + rng.gen_range(0..=m.next_lease.max(1))
    } else {
        ids[rng.gen_range(0..ids.len())]
    }
}

fn generate(rng: &mut ChaCha8Rng, m: &Model, n: usize) -> Req {
    match rng.gen_range(0..100) {
        0..=29 => Req::Put(gen_put(rng, m, n)),
        30..=41 => Req::Delete(gen_delete(rng)),
        42..=56 => Req::Txn(gen_txn(rng, m, n)),
        57..=68 => {
            // Long TTLs: nothing expires during the test. Sometimes an id in use, or a TTL
            // above etcd's maximum.
            let id = if rng.gen_bool(0.1) && !m.leases.is_empty() {
                *m.leases.iter().next().unwrap_or(&LEASE_BASE)
            } else {
                LEASE_BASE + m.next_lease
            };
            let ttl = if rng.gen_bool(0.05) {
                9_000_000_001
            } else {
                [60, 90, 300][rng.gen_range(0..3)]
            };
            Req::Grant(PbLeaseGrantRequest { ttl, id })
        }
        69..=76 => Req::Revoke(PbLeaseRevokeRequest {
            id: some_lease(rng, m),
        }),
        77..=92 => Req::TimeToLive(PbLeaseTimeToLiveRequest {
            id: some_lease(rng, m),
            keys: rng.gen_bool(0.7),
        }),
        _ => Req::Leases,
    }
}

/// Runs one request; returns its normalized response (or error).
async fn exec(ep: &str, req: &Req) -> String {
    let ch = channel(ep).await.expect("connect");
    let dbg = |x: &dyn std::fmt::Debug| format!("{x:?}");
    let r = match req.clone() {
        Req::Put(r) => unary::<_, PbPutResponse>(ch, "/etcdserverpb.KV/Put", r)
            .await
            .map(|x| dbg(&x)),
        Req::Delete(r) => unary::<_, PbDeleteResponse>(ch, "/etcdserverpb.KV/DeleteRange", r)
            .await
            .map(|x| dbg(&x)),
        Req::Txn(r) => unary::<_, PbTxnResponse>(ch, "/etcdserverpb.KV/Txn", r)
            .await
            .map(|x| dbg(&x)),
        Req::Grant(r) => unary::<_, PbLeaseGrantResponse>(ch, "/etcdserverpb.Lease/LeaseGrant", r)
            .await
            .map(|x| dbg(&x)),
        Req::Revoke(r) => {
            unary::<_, PbLeaseRevokeResponse>(ch, "/etcdserverpb.Lease/LeaseRevoke", r)
                .await
                .map(|x| dbg(&x))
        }
        Req::TimeToLive(r) => {
            unary::<_, PbLeaseTimeToLiveResponse>(ch, "/etcdserverpb.Lease/LeaseTimeToLive", r)
                .await
                .map(|mut x| {
                    // Remaining seconds depend on the clock: only whether the lease lives.
                    x.ttl = x.ttl.signum();
                    // etcd lists a lease's keys in Go map order (random); ours are sorted.
                    x.keys.sort();
                    dbg(&x)
                })
        }
        Req::Leases => unary::<_, PbLeaseLeasesResponse>(
            ch,
            "/etcdserverpb.Lease/LeaseLeases",
            PbLeaseLeasesRequest {},
        )
        .await
        .map(|mut x| {
            // etcd lists leases by expiry; the set is what matters.
            x.leases.sort_by_key(|l| l.id);
            dbg(&x)
        }),
    };
    normalize_ids(match r {
        Ok(s) => s,
        Err(st) => format!("ERROR {:?}: {}", st.code(), st.message()),
    })
}

/// Reads a watch stream until its last event is on [`END_KEY`] with type `end_type`; returns
/// every event (Debug of etcd's `mvccpb.Event`: type, kv, prev_kv, all fields).
async fn events(stream: &mut WatchStream, end_type: i32) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(15), stream.message())
            .await
            .unwrap_or_else(|_| panic!("watch stalled after {} events", got.len()))
            .expect("watch stream")
            .expect("stream open");
        let raw = resp.0;
        assert!(!raw.canceled, "watch cancelled: {}", raw.cancel_reason);
        let mut done = false;
        for e in raw.events {
            let e: PbEvent = e;
            done = e.r#type == end_type && e.kv.as_ref().is_some_and(|kv| kv.key == END_KEY);
            got.push(format!("{e:?}"));
        }
        if done {
            return got;
        }
    }
}

const PUT: i32 = 0;
const DELETE: i32 = 1;

/// Everything one server produced.
struct Run {
    responses: Vec<(String, String)>,
    watches: Vec<(&'static str, Vec<String>)>,
}

async fn run(ep: String, reference: Option<&Run>) -> Run {
    let mut cl = Client::connect([ep.clone()], None).await.expect("connect");
    let prefix = WatchOptions::new().with_prefix().with_prev_key();
    let mut live = cl.watch("k", Some(prefix.clone())).await.expect("watch");
    let mut no_put = cl
        .watch(
            "k",
            Some(prefix.clone().with_filters([WatchFilterType::NoPut])),
        )
        .await
        .expect("watch");
    let mut no_delete = cl
        .watch(
            "k",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .expect("watch");
    let mut old = None;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut model = Model::default();
    let mut responses = Vec::new();
    for n in 0..OPS {
        if n == OPS / 2 {
            // From an old revision: history first, then live, with prev_kv.
            let opts = WatchOptions::new()
                .with_all_keys()
                .with_start_revision(3)
                .with_prev_key();
            old = Some(cl.watch("", Some(opts)).await.expect("watch"));
        }
        let req = generate(&mut rng, &model, n);
        let got = exec(&ep, &req).await;
        // The model follows the reference server's answers (etcd's), so that both runs
        // generate the same requests whatever ours answers.
        let answer = reference.map_or(got.as_str(), |r| r.responses[n].1.as_str());
        let ok = !answer.starts_with("ERROR");
        match &req {
            Req::Grant(g) if ok => {
                model.leases.insert(g.id);
                model.next_lease = model.next_lease.max(g.id - LEASE_BASE + 1);
            }
            Req::Grant(g) if g.id == LEASE_BASE + model.next_lease => model.next_lease += 1,
            Req::Revoke(r) if ok => {
                model.leases.remove(&r.id);
            }
            _ => {}
        }
        responses.push((format!("{req:?}"), got));
    }
    for req in [
        Req::Put(PbPutRequest {
            key: END_KEY.to_vec(),
            value: b"end".to_vec(),
            ..Default::default()
        }),
        Req::Delete(PbDeleteRequest {
            key: END_KEY.to_vec(),
            ..Default::default()
        }),
    ] {
        let got = exec(&ep, &req).await;
        responses.push((format!("{req:?}"), got));
    }
    let mut old = old.expect("old-revision watch");
    let watches = vec![
        ("prefix k, prev_kv", events(&mut live, DELETE).await),
        (
            "prefix k, NOPUT, prev_kv",
            events(&mut no_put, DELETE).await,
        ),
        ("prefix k, NODELETE", events(&mut no_delete, PUT).await),
        (
            "all keys from revision 3, prev_kv",
            events(&mut old, DELETE).await,
        ),
    ];
    Run { responses, watches }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_lease_match_etcd_3_5_1() {
    let etcd = Cluster::start(Kind::RealEtcd, 1, &[]);
    let ours = Cluster::start(Kind::Ours, 1, &[]);
    etcd.wait_ready(Duration::from_secs(20)).await;
    ours.wait_ready(Duration::from_secs(20)).await;
    let want = run(etcd.endpoint(0), None).await;
    let got = run(ours.endpoint(0), Some(&want)).await;

    // The comparison means something only if the runs exercised what they are meant to.
    let count = |pat: &str| {
        want.responses
            .iter()
            .filter(|(q, a)| q.starts_with(pat) && !a.starts_with("ERROR"))
            .count()
    };
    let errors: Vec<&String> = want
        .responses
        .iter()
        .map(|(_, a)| a)
        .filter(|a| a.starts_with("ERROR"))
        .collect();
    assert!(count("Grant") >= 10, "too few grants: {}", count("Grant"));
    assert!(count("Revoke") >= 5, "too few revokes: {}", count("Revoke"));
    assert!(count("TimeToLive") >= 10, "too few time-to-live answers");
    assert!(
        errors.len() >= 5 && errors.len() < OPS / 3,
        "etcd errors: {errors:?}"
    );
    let all_events = &want.watches[3].1;
    for (name, evs) in &want.watches {
        assert!(evs.len() > 20, "{name}: only {} events", evs.len());
    }
    assert!(
        all_events.iter().any(|e| {
            (0..OPS as i64).any(|i| e.contains(&format!("lease: {}", LEASE_BASE + i)))
        }),
        "no event with a lease"
    );
    assert!(
        all_events
            .iter()
            .any(|e| e.starts_with("Event { r#type: Delete") && e.contains("prev_kv: Some")),
        "no delete with prev_kv"
    );

    let mut mismatches = Vec::new();
    for (i, ((q, a), (_, b))) in want.responses.iter().zip(&got.responses).enumerate() {
        if a != b {
            mismatches.push(format!("op {i}: {q}\n  etcd: {a}\n  ours: {b}"));
        }
    }
    for ((name, a), (_, b)) in want.watches.iter().zip(&got.watches) {
        if a != b {
            let first = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            mismatches.push(format!(
                "watch {name}: {} events from etcd, {} from ours; first difference at {first}:\n  etcd: {:?}\n  ours: {:?}",
                a.len(),
                b.len(),
                a.get(first),
                b.get(first)
            ));
        }
    }
    eprintln!(
        "compared {} responses ({} errors; {} grants, {} revokes, {} time-to-live, {} lists ok) \
         and {} watch streams ({} events)",
        want.responses.len(),
        errors.len(),
        count("Grant"),
        count("Revoke"),
        count("TimeToLive"),
        count("Leases"),
        want.watches.len(),
        want.watches.iter().map(|(_, e)| e.len()).sum::<usize>()
    );
    assert!(
        mismatches.is_empty(),
        "{} differences; first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(6)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
