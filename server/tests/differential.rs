//! Differential test: the same few hundred random KV operations against real etcd 3.5.1 and
//! against ours give identical responses (revisions, create/mod revisions, versions, counts,
//! `more`, prev_kv, errors), member and cluster ids and raft terms aside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{channel, normalize_ids, unary, Cluster, Kind};
use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbCompare, PbDeleteRequest, PbDeleteResponse,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbTargetUnion, PbTxnOpRequest,
    PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

const OPS: usize = 400;

#[derive(Debug, Clone)]
enum Req {
    Range(PbRangeRequest),
    Put(PbPutRequest),
    Delete(PbDeleteRequest),
    Txn(PbTxnRequest),
    Compact(PbCompactionRequest),
}

fn key(rng: &mut ChaCha8Rng) -> Vec<u8> {
    format!("k{}", rng.gen_range(0..8)).into_bytes()
}

fn range_end(rng: &mut ChaCha8Rng, k: &[u8]) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => {
            // prefix end of "k"
            b"l".to_vec()
        }
        1 => vec![0],
        2 => {
            let mut e = k.to_vec();
            if let Some(last) = e.last_mut() {
                *last += rng.gen_range(1..4);
            }
            e
        }
        _ => Vec::new(),
    }
}

fn gen_range(rng: &mut ChaCha8Rng, rev: i64) -> PbRangeRequest {
    let k = key(rng);
    PbRangeRequest {
        range_end: range_end(rng, &k),
        key: k,
        limit: if rng.gen_bool(0.3) {
            rng.gen_range(1..4)
        } else {
            0
        },
        revision: if rng.gen_bool(0.3) {
            rng.gen_range(0..=rev + 2)
        } else {
            0
        },
        sort_order: if rng.gen_bool(0.3) {
            rng.gen_range(0..3)
        } else {
            0
        },
        sort_target: if rng.gen_bool(0.3) {
            rng.gen_range(0..5)
        } else {
            0
        },
        serializable: false,
        keys_only: rng.gen_bool(0.15),
        count_only: rng.gen_bool(0.1),
        min_mod_revision: if rng.gen_bool(0.1) {
            rng.gen_range(0..=rev)
        } else {
            0
        },
        max_mod_revision: if rng.gen_bool(0.1) {
            rng.gen_range(0..=rev)
        } else {
            0
        },
        min_create_revision: if rng.gen_bool(0.1) {
            rng.gen_range(0..=rev)
        } else {
            0
        },
        max_create_revision: if rng.gen_bool(0.1) {
            rng.gen_range(0..=rev)
        } else {
            0
        },
    }
}

fn gen_put(rng: &mut ChaCha8Rng, n: usize) -> PbPutRequest {
    PbPutRequest {
        key: key(rng),
        value: format!("v{n}").into_bytes(),
        lease: 0,
        prev_kv: rng.gen_bool(0.5),
        ignore_value: false,
        ignore_lease: false,
    }
}

fn gen_delete(rng: &mut ChaCha8Rng) -> PbDeleteRequest {
    let k = key(rng);
    PbDeleteRequest {
        range_end: if rng.gen_bool(0.3) {
            range_end(rng, &k)
        } else {
            Vec::new()
        },
        key: k,
        prev_kv: rng.gen_bool(0.5),
    }
}

fn gen_compare(rng: &mut ChaCha8Rng, rev: i64) -> PbCompare {
    let target = rng.gen_range(0..4); // VERSION, CREATE, MOD, VALUE
    let union = match target {
        0 => PbTargetUnion::Version(rng.gen_range(0..4)),
        1 => PbTargetUnion::CreateRevision(rng.gen_range(0..=rev)),
        2 => PbTargetUnion::ModRevision(rng.gen_range(0..=rev)),
        _ => PbTargetUnion::Value(format!("v{}", rng.gen_range(0..20)).into_bytes()),
    };
    PbCompare {
        result: rng.gen_range(0..4),
        target,
        key: key(rng),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

fn gen_txn(rng: &mut ChaCha8Rng, rev: i64, n: usize) -> PbTxnRequest {
    let branch = |rng: &mut ChaCha8Rng, salt: usize| {
        let mut used = Vec::new();
        let mut ops = Vec::new();
        for i in 0..rng.gen_range(0..3) {
            let op = match rng.gen_range(0..3) {
                0 => PbTxnOpRequest::RequestRange(gen_range(rng, rev)),
                1 => {
                    let mut p = gen_put(rng, n * 10 + salt * 5 + i);
                    if used.contains(&p.key) {
                        continue;
                    }
                    used.push(p.key.clone());
                    p.prev_kv = rng.gen_bool(0.5);
                    PbTxnOpRequest::RequestPut(p)
                }
                _ => {
                    let mut d = gen_delete(rng);
                    d.range_end.clear();
                    if used.contains(&d.key) {
                        continue;
                    }
                    used.push(d.key.clone());
                    PbTxnOpRequest::RequestDeleteRange(d)
                }
            };
            ops.push(PbTxnRequestOp { request: Some(op) });
        }
        ops
    };
    let compare = (0..rng.gen_range(0..3))
        .map(|_| gen_compare(rng, rev))
        .collect();
    let success = branch(rng, 0);
    let failure = branch(rng, 1);
    PbTxnRequest {
        compare,
        success,
        failure,
    }
}

fn generate(seed: u64) -> impl FnMut(i64, usize) -> Req {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    move |rev, n| match rng.gen_range(0..100) {
        0..=29 => Req::Put(gen_put(&mut rng, n)),
        30..=54 => Req::Range(gen_range(&mut rng, rev)),
        55..=69 => Req::Delete(gen_delete(&mut rng)),
        70..=94 => Req::Txn(gen_txn(&mut rng, rev, n)),
        _ => Req::Compact(PbCompactionRequest {
            revision: (rev - rng.gen_range(-1..6)).max(1),
            physical: rng.gen_bool(0.5),
        }),
    }
}

async fn exec(ep: &str, req: &Req) -> String {
    let ch = channel(ep).await.expect("connect");
    let r = match req.clone() {
        Req::Range(r) => unary::<_, PbRangeResponse>(ch, "/etcdserverpb.KV/Range", r)
            .await
            .map(|x| format!("{x:?}")),
        Req::Put(r) => unary::<_, PbPutResponse>(ch, "/etcdserverpb.KV/Put", r)
            .await
            .map(|x| format!("{x:?}")),
        Req::Delete(r) => unary::<_, PbDeleteResponse>(ch, "/etcdserverpb.KV/DeleteRange", r)
            .await
            .map(|x| format!("{x:?}")),
        Req::Txn(r) => unary::<_, PbTxnResponse>(ch, "/etcdserverpb.KV/Txn", r)
            .await
            .map(|x| format!("{x:?}")),
        Req::Compact(r) => unary::<_, PbCompactionResponse>(ch, "/etcdserverpb.KV/Compact", r)
            .await
            .map(|x| format!("{x:?}")),
    };
    normalize_ids(match r {
        Ok(s) => s,
        Err(st) => format!("ERROR {:?}: {}", st.code(), st.message()),
    })
}

fn revision_of(s: &str) -> Option<i64> {
    let i = s.find("revision: ")?;
    let rest = &s[i + "revision: ".len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_operations_same_responses_as_etcd_3_5_1() {
    let etcd = Cluster::start(Kind::RealEtcd, 1, &[]);
    let ours = Cluster::start(Kind::Ours, 1, &[]);
    etcd.wait_ready(Duration::from_secs(20)).await;
    ours.wait_ready(Duration::from_secs(20)).await;
    let (e, o) = (etcd.endpoint(0), ours.endpoint(0));
    let mut next = generate(7);
    let mut rev = 1i64;
    let mut mismatches = Vec::new();
    let mut errors = Vec::new();
    for n in 0..OPS {
        let req = next(rev, n);
        let want = exec(&e, &req).await;
        let got = exec(&o, &req).await;
        if let Some(r) = revision_of(&want) {
            rev = rev.max(r);
        }
        if want.starts_with("ERROR") {
            errors.push(want.clone());
        }
        if want != got {
            mismatches.push(format!("op {n}: {req:?}\n  etcd: {want}\n  ours: {got}"));
        }
    }
    // The comparison means something only if most operations succeeded and history grew.
    assert!(
        errors.len() < OPS / 4,
        "too many errors from etcd itself: {errors:?}"
    );
    assert!(
        rev > 100,
        "the history is too short to compare: revision {rev}"
    );
    eprintln!(
        "compared {OPS} responses, final revision {rev}, {} expected errors",
        errors.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {OPS} responses differ; first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
