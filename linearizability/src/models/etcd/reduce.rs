//! Sound reductions of an etcd history before the search: operations that cannot change any
//! verdict are taken out, so the search never explores their orders.
//!
//! Owns: choosing which operations of a history the search needs ([`needed_ops`]). Each rule
//! carries its proof here; a rule that cannot be proved for every history does not belong here.
//! Must never drop a known-outcome operation, or an unknown-outcome one that some answer could
//! observe.
//!
//! Rule 1, *unobservable lease expiries*: a `LeaseExpire{L}` is dropped when no other operation
//! names `L` (no put, in a txn or not, attaches a key to `L`; no revoke of `L`; no compare on a
//! key's lease `L`; at most one grant of `L`). Proof: in the model an expiry removes `L` from
//! the lease set and deletes the keys attached to `L`, creating a revision only if there are
//! some. No key is ever attached to `L`, so it deletes nothing and the revision does not move;
//! the lease set is observable only through requests that name `L` (a second grant of `L` would
//! fail while `L` exists), and there are none. So a linearization that places the expiry stays
//! valid without it, and one without it is valid with the expiry left out, which an
//! unknown-outcome operation may always be. Lease-heavy traffic (etcd robustness's
//! `EtcdTrafficDeleteLeases`) grants many leases that expire with no key attached; without this
//! rule the search tries every order of their expiries.

use std::collections::BTreeMap;

use super::types::{CompareTarget, EtcdRequest, EtcdResponse, RequestOp, TxnRequest};
use crate::history::Operation;

/// How often each lease id is named, by kind.
#[derive(Default, Clone, Copy)]
pub(crate) struct LeaseUse {
    pub(crate) grants: u32,
    /// Puts attaching to it, revokes, compares on it.
    pub(crate) others: u32,
}

fn txn_names(t: &TxnRequest, out: &mut Vec<i64>) {
    for c in &t.compare {
        if let CompareTarget::Lease(l) = c.target {
            out.push(l);
        }
    }
    for op in t.success.iter().chain(&t.failure) {
        match op {
            RequestOp::Put(p) if p.lease != 0 => out.push(p.lease),
            RequestOp::Txn(inner) => txn_names(inner, out),
            _ => {}
        }
    }
}

/// The leases a request observes or changes other than by granting or expiring them: puts
/// attaching to them, revokes, compares on a key's lease.
pub(crate) fn leases_named(req: &EtcdRequest) -> Vec<i64> {
    let mut out = Vec::new();
    match req {
        EtcdRequest::LeaseRevoke { id } => out.push(*id),
        EtcdRequest::Put(p) if p.lease != 0 => out.push(p.lease),
        EtcdRequest::Txn(t) => txn_names(t, &mut out),
        _ => {}
    }
    out
}

/// How often each lease id is named by grants and by other requests (not expiries).
pub(crate) fn lease_uses(
    history: &[Operation<EtcdRequest, EtcdResponse>],
) -> BTreeMap<i64, LeaseUse> {
    let mut uses: BTreeMap<i64, LeaseUse> = BTreeMap::new();
    for op in history {
        if let EtcdRequest::LeaseGrant { id, .. } = &op.input {
            uses.entry(*id).or_default().grants += 1;
        }
        for l in leases_named(&op.input) {
            uses.entry(l).or_default().others += 1;
        }
    }
    uses
}

/// Indices (ascending) of the operations of `history` the search needs; the rest are
/// unknown-outcome operations that no answer can observe (see the module doc).
pub fn needed_ops(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Vec<usize> {
    let uses = lease_uses(history);
    let unobservable = |op: &Operation<EtcdRequest, EtcdResponse>| match &op.input {
        EtcdRequest::LeaseExpire { id } if op.output.is_none() => {
            let u = uses.get(id).copied().unwrap_or_default();
            u.others == 0 && u.grants <= 1
        }
        _ => false,
    };
    (0..history.len())
        .filter(|&i| !unobservable(&history[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::etcd::{OpResult, PutRequest};

    fn grant(id: i64) -> EtcdRequest {
        EtcdRequest::LeaseGrant { id, ttl: 5 }
    }

    #[test]
    fn only_expiries_of_leases_nothing_else_names_are_dropped() {
        let ok = |revision, id| EtcdResponse::Ok {
            revision,
            result: OpResult::LeaseGrant { id, ttl: 5 },
        };
        let h = vec![
            Operation::new(0, 0, 1, grant(1), ok(1, 1)),
            Operation::new(0, 2, 3, grant(2), ok(1, 2)),
            Operation::new(
                0,
                4,
                5,
                EtcdRequest::Put(PutRequest {
                    key: "k".into(),
                    value: "v".into(),
                    lease: 2,
                    prev_kv: false,
                }),
                EtcdResponse::Ok {
                    revision: 2,
                    result: OpResult::Put { prev_kv: None },
                },
            ),
            Operation::unknown(9, 1, 100, EtcdRequest::LeaseExpire { id: 1 }),
            Operation::unknown(9, 3, 100, EtcdRequest::LeaseExpire { id: 2 }),
            // A known-outcome expiry is never dropped (it is an answer).
            Operation::new(
                9,
                6,
                7,
                EtcdRequest::LeaseExpire { id: 1 },
                EtcdResponse::Ok {
                    revision: 2,
                    result: OpResult::LeaseRevoke,
                },
            ),
        ];
        assert_eq!(needed_ops(&h), vec![0, 1, 2, 4, 5]);
    }
}
