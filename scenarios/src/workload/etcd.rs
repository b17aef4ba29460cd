//! The *etcd* traffic profile (as etcd's robustness tests define it): Get, List (prefix
//! range), stale Get (serializable), Put, Delete, multi-op Txn, CompareAndSet, PutWithLease and
//! LeaseRevoke, on a small key space under [`PREFIX`], every written value unique.
//!
//! Owns: the operation mix and the client-side knowledge it needs (mod revisions last seen for
//! compare-and-set, the client's own leases). Must never: reuse a value or a lease id.

use super::Traffic;
use crate::exec::prefix_end;
use linearizability::models::etcd::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, EtcdRequest, EtcdResponse, KeyRange,
    OpResult, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Key prefix of the etcd traffic.
pub const PREFIX: &str = "/etcd/";
/// Number of distinct keys.
pub const KEYS: u32 = 8;
/// TTL of the leases the traffic grants (longer than any run: leases never expire on their own).
pub const LEASE_TTL: i64 = 3600;

/// One etcd-traffic client's state.
#[derive(Debug)]
pub struct EtcdTraffic {
    id: u64,
    seq: u64,
    /// Last mod revision seen per key (0: absent).
    seen: BTreeMap<String, i64>,
    /// Leases this client granted and has not revoked (or whose fate is unknown).
    leases: Vec<i64>,
    /// Bytes of padding appended to every value.
    padding: usize,
    /// The multi-op txn reads at a past revision (see [`EtcdTraffic::reading_at_revisions`]).
    read_at_revision: bool,
    /// The newest revision an answer has shown.
    newest: i64,
}

/// How far below the newest revision seen a txn's read at a revision goes: past the
/// compactor's 0-100, so some land on compacted revisions.
const READ_BEHIND: i64 = 150;

impl EtcdTraffic {
    /// Client number `id`.
    pub fn new(id: u64) -> Self {
        EtcdTraffic {
            id,
            seq: 0,
            seen: BTreeMap::new(),
            leases: Vec::new(),
            padding: 0,
            read_at_revision: false,
            newest: 0,
        }
    }

    /// The multi-op txn reads its key at a revision up to [`READ_BEHIND`] below the newest
    /// seen (or just above it), so some txns read a compacted or future revision and must
    /// fail whole on every member (the path of etcd 18667).
    pub fn reading_at_revisions(mut self, on: bool) -> Self {
        self.read_at_revision = on;
        self
    }

    /// Appends `bytes` of padding to every value (to fill a backend quickly).
    pub fn with_padding(mut self, bytes: usize) -> Self {
        self.padding = bytes;
        self
    }

    fn value(&mut self) -> String {
        self.seq += 1;
        format!("c{}-{}{}", self.id, self.seq, ".".repeat(self.padding))
    }

    fn lease_id(&mut self) -> i64 {
        self.seq += 1;
        ((self.id as i64 + 1) << 32) | (self.seq as i64 & 0xffff_ffff)
    }
}

fn key(rng: &mut ChaCha8Rng) -> String {
    format!("{PREFIX}k{}", rng.gen_range(0..KEYS))
}

fn get(key: String) -> RangeRequest {
    RangeRequest {
        range: KeyRange::key(key),
        ..Default::default()
    }
}

impl Traffic for EtcdTraffic {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, EtcdRequest, bool) {
        let roll = rng.gen_range(0..100);
        match roll {
            0..=19 => ("get", EtcdRequest::Range(get(key(rng))), false),
            20..=29 => (
                "list",
                EtcdRequest::Range(RangeRequest {
                    range: KeyRange::range(PREFIX, prefix_end(PREFIX)),
                    ..Default::default()
                }),
                false,
            ),
            30..=39 => ("stale-get", EtcdRequest::Range(get(key(rng))), true),
            40..=61 => {
                let (key, value) = (key(rng), self.value());
                (
                    "put",
                    EtcdRequest::Put(PutRequest {
                        key,
                        value,
                        ..Default::default()
                    }),
                    false,
                )
            }
            62..=66 => (
                "delete",
                EtcdRequest::DeleteRange(DeleteRangeRequest {
                    range: KeyRange::key(key(rng)),
                    prev_kv: false,
                }),
                false,
            ),
            67..=76 => {
                // Multi-op: a put, a read and a delete on (usually) different keys.
                let mut ks: Vec<u32> = (0..KEYS).collect();
                ks.shuffle(rng);
                let [a, b, c] = [ks[0], ks[1], ks[2]].map(|i| format!("{PREFIX}k{i}"));
                let value = self.value();
                let mut read = get(b);
                if self.read_at_revision && self.newest > 0 {
                    read.revision = (self.newest - rng.gen_range(-2..=READ_BEHIND)).max(1);
                }
                let success = vec![
                    RequestOp::Put(PutRequest {
                        key: a,
                        value,
                        ..Default::default()
                    }),
                    RequestOp::Range(read),
                    RequestOp::DeleteRange(DeleteRangeRequest {
                        range: KeyRange::key(c),
                        prev_kv: false,
                    }),
                ];
                (
                    "txn",
                    EtcdRequest::Txn(TxnRequest {
                        compare: Vec::new(),
                        success,
                        failure: Vec::new(),
                    }),
                    false,
                )
            }
            77..=88 => {
                let k = key(rng);
                let m = self.seen.get(&k).copied().unwrap_or(0);
                let value = self.value();
                (
                    "cas",
                    EtcdRequest::Txn(TxnRequest {
                        compare: vec![Compare {
                            range: KeyRange::key(k.clone()),
                            op: CompareOp::Equal,
                            target: CompareTarget::Mod(m),
                        }],
                        success: vec![RequestOp::Put(PutRequest {
                            key: k.clone(),
                            value,
                            ..Default::default()
                        })],
                        failure: vec![RequestOp::Range(get(k))],
                    }),
                    false,
                )
            }
            89..=94 => match self.leases.last().copied() {
                Some(lease) => {
                    let (key, value) = (key(rng), self.value());
                    (
                        "put-with-lease",
                        EtcdRequest::Put(PutRequest {
                            key,
                            value,
                            lease,
                            prev_kv: false,
                        }),
                        false,
                    )
                }
                None => {
                    let id = self.lease_id();
                    self.leases.push(id);
                    (
                        "lease-grant",
                        EtcdRequest::LeaseGrant { id, ttl: LEASE_TTL },
                        false,
                    )
                }
            },
            _ => match self.leases.first().copied() {
                Some(id) if self.leases.len() > 1 || rng.gen_bool(0.5) => {
                    self.leases.retain(|l| *l != id);
                    ("lease-revoke", EtcdRequest::LeaseRevoke { id }, false)
                }
                _ => {
                    let id = self.lease_id();
                    self.leases.push(id);
                    (
                        "lease-grant",
                        EtcdRequest::LeaseGrant { id, ttl: LEASE_TTL },
                        false,
                    )
                }
            },
        }
    }

    fn observe(&mut self, req: &EtcdRequest, resp: Option<&EtcdResponse>) {
        let Some(EtcdResponse::Ok { revision, result }) = resp else {
            return;
        };
        self.newest = self.newest.max(*revision);
        match (req, result) {
            (EtcdRequest::Range(r), OpResult::Range(rr)) if r.range.range_end.is_none() => {
                let m = rr.kvs.first().map_or(0, |kv| kv.mod_revision);
                self.seen.insert(r.range.key.clone(), m);
            }
            (EtcdRequest::Range(_), OpResult::Range(rr)) => {
                for kv in &rr.kvs {
                    self.seen.insert(kv.key.clone(), kv.mod_revision);
                }
            }
            (EtcdRequest::Put(p), _) => {
                self.seen.insert(p.key.clone(), *revision);
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
                            self.seen.insert(p.key.clone(), *revision);
                        }
                        (RequestOp::Range(r), OpResult::Range(rr)) if r.revision == 0 => {
                            let m = rr.kvs.first().map_or(0, |kv| kv.mod_revision);
                            self.seen.insert(r.range.key.clone(), m);
                        }
                        _ => {}
                    }
                }
            }
            (EtcdRequest::LeaseRevoke { .. }, _) => {}
            _ => {}
        }
    }
}
