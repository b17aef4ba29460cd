//! The *kubernetes* traffic profile (what the API server does to etcd): List of a resource
//! prefix, then Create / Update / Delete each guarded by a mod_revision compare
//! (`Txn(If mod(key) == m, Then put|delete, Else get)`), against the client's own cache of
//! mod revisions; List+Watch runs in the watchers (`workload::watch`).
//!
//! Owns: the operation mix and the client's cache. Must never: reuse a value.

use super::Traffic;
use crate::exec::prefix_end;
use linearizability::models::etcd::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, EtcdRequest, EtcdResponse, KeyRange,
    OpResult, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Key prefix of the kubernetes traffic.
pub const PREFIX: &str = "/registry/pods/";
/// Number of distinct objects.
pub const OBJECTS: u32 = 10;

/// One kubernetes-traffic client's state.
#[derive(Debug)]
pub struct KubeTraffic {
    id: u64,
    seq: u64,
    /// Objects the client believes exist, with their mod revision.
    cache: BTreeMap<String, i64>,
}

impl KubeTraffic {
    /// Client number `id`.
    pub fn new(id: u64) -> Self {
        KubeTraffic {
            id,
            seq: 0,
            cache: BTreeMap::new(),
        }
    }
}

fn guarded(key: &str, m: i64, then: RequestOp) -> EtcdRequest {
    EtcdRequest::Txn(TxnRequest {
        compare: vec![Compare {
            range: KeyRange::key(key),
            op: CompareOp::Equal,
            target: CompareTarget::Mod(m),
        }],
        success: vec![then],
        failure: vec![RequestOp::Range(RangeRequest {
            range: KeyRange::key(key),
            ..Default::default()
        })],
    })
}

impl Traffic for KubeTraffic {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, EtcdRequest, bool) {
        let roll = rng.gen_range(0..100);
        if roll < 15 || self.seq == 0 {
            self.seq += 1;
            return (
                "k8s-list",
                EtcdRequest::Range(RangeRequest {
                    range: KeyRange::range(PREFIX, prefix_end(PREFIX)),
                    ..Default::default()
                }),
                false,
            );
        }
        let key = format!("{PREFIX}default/pod-{}", rng.gen_range(0..OBJECTS));
        self.seq += 1;
        let value = format!("pod{}-{}", self.id, self.seq);
        let put = RequestOp::Put(PutRequest {
            key: key.clone(),
            value,
            ..Default::default()
        });
        match self.cache.get(&key).copied() {
            None => ("k8s-create", guarded(&key, 0, put), false),
            Some(m) if roll < 80 => ("k8s-update", guarded(&key, m, put), false),
            Some(m) => (
                "k8s-delete",
                guarded(
                    &key,
                    m,
                    RequestOp::DeleteRange(DeleteRangeRequest {
                        range: KeyRange::key(key.clone()),
                        prev_kv: false,
                    }),
                ),
                false,
            ),
        }
    }

    fn observe(&mut self, req: &EtcdRequest, resp: Option<&EtcdResponse>) {
        let Some(EtcdResponse::Ok { revision, result }) = resp else {
            return;
        };
        match (req, result) {
            (EtcdRequest::Range(_), OpResult::Range(rr)) => {
                self.cache = rr
                    .kvs
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.mod_revision))
                    .collect();
            }
            (
                EtcdRequest::Txn(t),
                OpResult::Txn {
                    succeeded,
                    responses,
                },
            ) => {
                let branch = if *succeeded { &t.success } else { &t.failure };
                for (op, res) in branch.iter().zip(responses) {
                    match (op, res) {
                        (RequestOp::Put(p), _) => {
                            self.cache.insert(p.key.clone(), *revision);
                        }
                        (RequestOp::DeleteRange(d), _) => {
                            self.cache.remove(&d.range.key);
                        }
                        (RequestOp::Range(r), OpResult::Range(rr)) => match rr.kvs.first() {
                            Some(kv) => {
                                self.cache.insert(kv.key.clone(), kv.mod_revision);
                            }
                            None => {
                                self.cache.remove(&r.range.key);
                            }
                        },
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}
