//! Synthetic etcd histories for the checker's benchmarks and tests: concurrent clients driving a
//! sequential etcd model, so the verdict is known by construction.
//!
//! Owns: generating, from a [`SynthSpec`] alone (seeded, no clock), a history in which every
//! operation takes effect at one point inside its call–return interval and is answered by the
//! model's state at that point. Such a history is linearizable. On top of that:
//! - a chosen share of writes has an unknown outcome (half of those took effect);
//! - lease clients grant leases with 2–10 s TTLs, attach a key to some of them, revoke a few,
//!   and every granted lease gets an unknown-outcome `LeaseExpire` at the moment its TTL runs
//!   out (the harness's convention); the expiry takes effect then if the lease still exists;
//! - optionally one planted [`Anomaly`] at 90 % of the history. A stale read is planted only
//!   where a known-outcome write replaced the value, so it always makes the history not
//!   linearizable; a lost write or a read from an older state usually does, but not always (a
//!   lost write whose revision an unknown-outcome write creates next is explained by that write
//!   never taking effect).
//!
//! Must never run the checker (the expected verdict comes from the construction, not from the
//! code under test) nor read the wall clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use crate::history::Operation;
use crate::models::etcd::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, Etcd, EtcdRequest, EtcdResponse,
    EtcdState, KeyRange, OpResult, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// Ticks per simulated second (operations last 1–20 ticks).
const TICKS_PER_SECOND: u64 = 1000;

/// A planted anomaly, placed at 90 % of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anomaly {
    /// A read answers an older value of a key that was written since, under the current
    /// header revision (a read served from a stale store).
    StaleRead,
    /// A read answers from the store as it was about 200 operations earlier, header revision
    /// included (a member far behind serving a serializable read as if linearizable).
    RevisionBackwards,
    /// A put is acknowledged with the next revision but never applied (an acknowledged write
    /// lost, as after a crash without fsync); the next write creates the same revision again.
    LostWrite,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// Operations issued by the KV clients (lease expiries come on top).
    pub ops: usize,
    /// Concurrent KV clients.
    pub clients: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Per mille of writes whose outcome is unknown.
    pub unknown_writes_per_mille: u32,
    /// Per mille of operations that are lease operations (grant, put with a lease, revoke).
    pub lease_per_mille: u32,
    /// The planted anomaly, if any.
    pub anomaly: Option<Anomaly>,
    /// The seed.
    pub seed: u64,
}

impl SynthSpec {
    /// Etcd-like traffic: `ops` operations of `clients` clients on `keys` keys, 5 % of writes
    /// with an unknown outcome, no leases.
    pub fn etcd(ops: usize, clients: usize, keys: usize, seed: u64) -> Self {
        SynthSpec {
            ops,
            clients,
            keys,
            unknown_writes_per_mille: 50,
            lease_per_mille: 0,
            anomaly: None,
            seed,
        }
    }

    /// Lease-heavy traffic (etcd robustness's `EtcdTrafficDeleteLeases`): a third of the
    /// operations are lease operations, so there are hundreds of leases, most of which expire
    /// without a key.
    pub fn lease_heavy(ops: usize, seed: u64) -> Self {
        SynthSpec {
            lease_per_mille: 330,
            ..SynthSpec::etcd(ops, 8, 50, seed)
        }
    }

    /// The same spec with an anomaly planted.
    pub fn with_anomaly(mut self, anomaly: Anomaly) -> Self {
        self.anomaly = Some(anomaly);
        self
    }
}

/// splitmix64: a small, fixed generator, so histories are the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::fxhash::mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000) < u64::from(p)
    }
}

/// One slot of a client's timeline: when it calls, takes effect and returns.
struct Slot {
    client: u64,
    call: u64,
    at: u64,
    ret: u64,
}

/// Every client's timeline, ordered by the moment each operation takes effect.
fn slots(spec: &SynthSpec, rng: &mut Rng) -> Vec<Slot> {
    let clients = spec.clients.max(1);
    let mut next_call: BinaryHeap<Reverse<(u64, u64)>> =
        (0..clients as u64).map(|c| Reverse((c, c))).collect();
    let mut out = Vec::with_capacity(spec.ops);
    while out.len() < spec.ops {
        let Some(Reverse((call, client))) = next_call.pop() else {
            break;
        };
        let duration = 1 + rng.below(20);
        let ret = call + duration;
        out.push(Slot {
            client,
            call,
            at: call + rng.below(duration + 1),
            ret,
        });
        next_call.push(Reverse((ret + 1 + rng.below(5), client)));
    }
    out.sort_by_key(|s| (s.at, s.client));
    out
}

fn key(spec: &SynthSpec, rng: &mut Rng) -> String {
    format!("key{:04}", rng.below(spec.keys as u64))
}

/// A KV request chosen against the current state (40 % get, 5 % range of ten keys, 35 % put,
/// 5 % delete, 15 % compare-and-put on the key's mod revision).
fn kv_request(spec: &SynthSpec, state: &EtcdState, rng: &mut Rng, serial: u64) -> EtcdRequest {
    let k = key(spec, rng);
    let value = format!("v{serial}");
    match rng.below(100) {
        0..=39 => EtcdRequest::Range(RangeRequest {
            range: KeyRange::key(k),
            ..RangeRequest::default()
        }),
        40..=44 => {
            let group = &k[..k.len() - 1];
            EtcdRequest::Range(RangeRequest {
                range: KeyRange::range(format!("{group}0"), format!("{group}:")),
                ..RangeRequest::default()
            })
        }
        45..=79 => EtcdRequest::Put(PutRequest {
            key: k,
            value,
            lease: 0,
            prev_kv: false,
        }),
        80..=84 => EtcdRequest::DeleteRange(DeleteRangeRequest {
            range: KeyRange::key(k),
            prev_kv: false,
        }),
        _ => {
            let modr = state
                .get_at(&k, state.revision)
                .map_or(0, |kv| kv.mod_revision);
            EtcdRequest::Txn(TxnRequest {
                compare: vec![Compare {
                    range: KeyRange::key(k.clone()),
                    op: CompareOp::Equal,
                    target: CompareTarget::Mod(modr),
                }],
                success: vec![RequestOp::Put(PutRequest {
                    key: k.clone(),
                    value,
                    lease: 0,
                    prev_kv: false,
                })],
                failure: vec![RequestOp::Range(RangeRequest {
                    range: KeyRange::key(k),
                    ..RangeRequest::default()
                })],
            })
        }
    }
}

/// A lease request: grant a new lease (50 %), put a key with a live lease (35 %), revoke one
/// (15 %).
fn lease_request(
    spec: &SynthSpec,
    state: &EtcdState,
    rng: &mut Rng,
    next_lease: &mut i64,
) -> EtcdRequest {
    let live: Vec<i64> = state.leases().map(|(id, _)| id).collect();
    let pick = rng.below(100);
    if live.is_empty() || pick < 50 {
        *next_lease += 1;
        return EtcdRequest::LeaseGrant {
            id: *next_lease,
            ttl: 2 + rng.below(9) as i64,
        };
    }
    let id = live[rng.below(live.len() as u64) as usize];
    if pick < 85 {
        EtcdRequest::Put(PutRequest {
            key: format!("lease/{}", key(spec, rng)),
            value: format!("l{id}"),
            lease: id,
            prev_kv: false,
        })
    } else {
        EtcdRequest::LeaseRevoke { id }
    }
}

fn is_write(req: &EtcdRequest) -> bool {
    matches!(
        req,
        EtcdRequest::Put(_) | EtcdRequest::DeleteRange(_) | EtcdRequest::Txn(_)
    )
}

/// Answers `req` as the anomaly would, or `None` if this operation cannot carry it.
fn plant(
    anomaly: Anomaly,
    model: &Etcd,
    state: &EtcdState,
    old: &EtcdState,
    unknown_revs: &HashSet<i64>,
    req: &EtcdRequest,
) -> Option<(EtcdState, EtcdResponse)> {
    match (anomaly, req) {
        (Anomaly::StaleRead, EtcdRequest::Range(r)) if r.range.range_end.is_none() => {
            let stale = old.get_at(&r.range.key, old.revision);
            let now = state.get_at(&r.range.key, state.revision);
            // Only a value a known-outcome write replaced is certainly stale: one replaced by
            // an unknown-outcome write (or a lease expiry) may still be current.
            let replaced_by_known = now
                .as_ref()
                .is_some_and(|kv| !unknown_revs.contains(&kv.mod_revision));
            if stale.is_none() || stale == now || !replaced_by_known {
                return None;
            }
            let (_, mut resp) = model.apply(old, req);
            if let EtcdResponse::Ok { revision, .. } = &mut resp {
                *revision = state.revision;
            }
            Some((state.clone(), resp))
        }
        (Anomaly::RevisionBackwards, EtcdRequest::Range(_)) if old.revision < state.revision => {
            Some((state.clone(), model.apply(old, req).1))
        }
        (Anomaly::LostWrite, EtcdRequest::Put(_)) => {
            let (after, resp) = model.apply(state, req);
            (after.revision > state.revision).then(|| (state.clone(), resp))
        }
        _ => None,
    }
}

/// Generates the history `spec` describes.
pub fn etcd_history(spec: &SynthSpec) -> Vec<Operation<EtcdRequest, EtcdResponse>> {
    let mut rng = Rng(spec.seed ^ 0x005e_ed0f_e7cd);
    let model = Etcd {
        keep_history: false,
        ..Etcd::default()
    };
    let slots = slots(spec, &mut rng);
    let plant_at = spec.ops * 9 / 10;
    let mut state = EtcdState::new(model.initial_revision);
    // States of the last 200 operations, for the anomalies that answer from the past.
    let mut past: std::collections::VecDeque<EtcdState> = std::collections::VecDeque::new();
    let mut expiries: BinaryHeap<Reverse<(u64, i64)>> = BinaryHeap::new();
    let mut next_lease = 0i64;
    let mut planted = false;
    // Revisions created by unknown-outcome operations (writes that took effect, expiries).
    let mut unknown_revs: HashSet<i64> = HashSet::new();
    let mut out = Vec::with_capacity(spec.ops + spec.ops / 4);
    for (serial, slot) in slots.iter().enumerate() {
        // Leases whose TTL ran out by now expire first.
        while let Some(&Reverse((t, id))) = expiries.peek() {
            if t > slot.at {
                break;
            }
            expiries.pop();
            let req = EtcdRequest::LeaseExpire { id };
            if state.has_lease(id) {
                state = model.apply(&state, &req).0;
                unknown_revs.insert(state.revision);
            }
            out.push(Operation::unknown(u64::MAX, t, t, req));
        }
        let req = if rng.per_mille(spec.lease_per_mille) {
            lease_request(spec, &state, &mut rng, &mut next_lease)
        } else {
            kv_request(spec, &state, &mut rng, serial as u64)
        };
        let anomaly = spec.anomaly.filter(|_| !planted && serial >= plant_at);
        let old = past.front().unwrap_or(&state);
        if let Some((after, resp)) =
            anomaly.and_then(|a| plant(a, &model, &state, old, &unknown_revs, &req))
        {
            planted = true;
            out.push(Operation::new(slot.client, slot.call, slot.ret, req, resp));
            state = after;
        } else if is_write(&req) && rng.per_mille(spec.unknown_writes_per_mille) {
            if rng.below(2) == 0 {
                state = model.apply(&state, &req).0;
                unknown_revs.insert(state.revision);
            }
            out.push(Operation::unknown(slot.client, slot.call, slot.ret, req));
        } else {
            let (after, resp) = model.apply(&state, &req);
            if let (
                EtcdRequest::LeaseGrant { id, ttl },
                EtcdResponse::Ok {
                    result: OpResult::LeaseGrant { .. },
                    ..
                },
            ) = (&req, &resp)
            {
                expiries.push(Reverse((slot.at + *ttl as u64 * TICKS_PER_SECOND, *id)));
            }
            out.push(Operation::new(slot.client, slot.call, slot.ret, req, resp));
            state = after;
        }
        past.push_back(state.clone());
        if past.len() > 200 {
            past.pop_front();
        }
    }
    // Leases still alive at the end get their expiry too (they may not have happened).
    for Reverse((t, id)) in expiries {
        out.push(Operation::unknown(
            u64::MAX,
            t,
            t,
            EtcdRequest::LeaseExpire { id },
        ));
    }
    out.sort_by_key(|op| (op.call, op.client));
    out
}
