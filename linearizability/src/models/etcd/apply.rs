//! etcd request semantics on [`EtcdState`]: what each request does to the store and what it
//! answers.
//!
//! Owns: the sequential behaviour of Range, Put, DeleteRange, Txn (compares, nested operations,
//! one revision per writing transaction), leases and compaction, following etcd v3.5: a txn
//! chooses every branch (nested ones included) against the store before it runs, requests that
//! fail validation (compacted or future revision, unknown lease) change nothing. Must never look
//! at observed responses (matching is the model's job) nor know about the search.

use std::cmp::Ordering;

use super::state::{EtcdState, Live};
use super::types::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, EtcdError, EtcdRequest, EtcdResponse,
    KeyValue, OpResult, PutRequest, RangeRequest, RangeResult, RequestOp, TxnRequest,
};

/// Applies `req` to `state` (unchanged on error) and returns etcd's response.
pub fn apply(state: &mut EtcdState, req: &EtcdRequest, keep_history: bool) -> EtcdResponse {
    match apply_inner(state, req, keep_history) {
        Ok(result) => EtcdResponse::Ok {
            revision: state.revision,
            result,
        },
        Err(e) => EtcdResponse::Error(e),
    }
}

fn apply_inner(
    state: &mut EtcdState,
    req: &EtcdRequest,
    keep: bool,
) -> Result<OpResult, EtcdError> {
    match req {
        EtcdRequest::Range(r) => {
            check_read_revision(state, r)?;
            Ok(OpResult::Range(range(state, r, state.revision)))
        }
        EtcdRequest::Put(p) => {
            check_lease(state, p)?;
            write_txn(state, |s, rev, changed| put(s, p, rev, changed, keep))
        }
        EtcdRequest::DeleteRange(d) => {
            write_txn(state, |s, rev, changed| delete(s, d, rev, changed, keep))
        }
        EtcdRequest::Txn(t) => {
            let path = decide(state, t);
            validate(state, t, &path)?;
            write_txn(state, |s, rev, changed| {
                exec_txn(s, t, &path, rev, changed, keep)
            })
        }
        EtcdRequest::LeaseGrant { id, ttl } => {
            if state.has_lease(*id) {
                return Err(EtcdError::LeaseExists);
            }
            state.grant_lease(*id, *ttl);
            Ok(OpResult::LeaseGrant { id: *id, ttl: *ttl })
        }
        EtcdRequest::LeaseRevoke { id } | EtcdRequest::LeaseExpire { id } => {
            if !state.remove_lease(*id) {
                return Err(EtcdError::LeaseNotFound);
            }
            let rev = state.revision + 1;
            let attached = state.keys_with_lease(*id);
            for k in &attached {
                state.write(k, rev, None, keep);
            }
            if !attached.is_empty() {
                state.revision = rev;
            }
            Ok(OpResult::LeaseRevoke)
        }
        EtcdRequest::Compact { revision } => {
            if *revision <= state.compact_revision {
                return Err(EtcdError::Compacted);
            }
            if *revision > state.revision {
                return Err(EtcdError::FutureRevision);
            }
            state.compact(*revision);
            Ok(OpResult::Compact)
        }
    }
}

/// Runs `f` as one write transaction at revision `current + 1`, bumping the revision if it
/// changed anything.
fn write_txn(
    state: &mut EtcdState,
    f: impl FnOnce(&mut EtcdState, i64, &mut bool) -> OpResult,
) -> Result<OpResult, EtcdError> {
    let rev = state.revision + 1;
    let mut changed = false;
    let result = f(state, rev, &mut changed);
    if changed {
        state.revision = rev;
    }
    Ok(result)
}

fn check_read_revision(state: &EtcdState, r: &RangeRequest) -> Result<(), EtcdError> {
    if r.revision > state.revision {
        return Err(EtcdError::FutureRevision);
    }
    if r.revision > 0 && r.revision < state.compact_revision {
        return Err(EtcdError::Compacted);
    }
    Ok(())
}

fn check_lease(state: &EtcdState, p: &PutRequest) -> Result<(), EtcdError> {
    if p.lease != 0 && !state.has_lease(p.lease) {
        return Err(EtcdError::LeaseNotFound);
    }
    Ok(())
}

/// Reads `r` with `current` as the latest revision visible.
fn range(state: &EtcdState, r: &RangeRequest, current: i64) -> RangeResult {
    let rev = if r.revision > 0 { r.revision } else { current };
    let mut kvs = state.range_at(&r.range, rev);
    let count = kvs.len() as i64;
    if r.count_only {
        return RangeResult {
            kvs: Vec::new(),
            count,
            more: false,
        };
    }
    let mut more = false;
    if r.limit > 0 && count > r.limit {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResult { kvs, count, more }
}

fn put(
    state: &mut EtcdState,
    p: &PutRequest,
    rev: i64,
    changed: &mut bool,
    keep: bool,
) -> OpResult {
    let prev = state.get_at(&p.key, rev);
    let live = Live {
        value: p.value.clone(),
        create_revision: prev.as_ref().map_or(rev, |kv| kv.create_revision),
        version: prev.as_ref().map_or(1, |kv| kv.version + 1),
        lease: p.lease,
    };
    state.write(&p.key, rev, Some(live), keep);
    *changed = true;
    OpResult::Put {
        prev_kv: if p.prev_kv { prev } else { None },
    }
}

fn delete(
    state: &mut EtcdState,
    d: &DeleteRangeRequest,
    rev: i64,
    changed: &mut bool,
    keep: bool,
) -> OpResult {
    let gone = state.range_at(&d.range, rev);
    for kv in &gone {
        state.write(&kv.key, rev, None, keep);
    }
    *changed |= !gone.is_empty();
    OpResult::DeleteRange {
        deleted: gone.len() as i64,
        prev_kvs: if d.prev_kv { gone } else { Vec::new() },
    }
}

/// Which branch a txn (and each nested txn of that branch, in order) takes.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn branch<'a>(t: &'a TxnRequest, path: &Path) -> &'a [RequestOp] {
    if path.succeeded {
        &t.success
    } else {
        &t.failure
    }
}

fn decide(state: &EtcdState, t: &TxnRequest) -> Path {
    let succeeded = t.compare.iter().all(|c| compare_holds(state, c));
    let ops = if succeeded { &t.success } else { &t.failure };
    let nested = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::Txn(inner) => Some(decide(state, inner)),
            _ => None,
        })
        .collect();
    Path { succeeded, nested }
}

fn validate(state: &EtcdState, t: &TxnRequest, path: &Path) -> Result<(), EtcdError> {
    let mut nested = path.nested.iter();
    for op in branch(t, path) {
        match op {
            RequestOp::Range(r) => check_read_revision(state, r)?,
            RequestOp::Put(p) => check_lease(state, p)?,
            RequestOp::DeleteRange(_) => {}
            RequestOp::Txn(inner) => {
                if let Some(p) = nested.next() {
                    validate(state, inner, p)?;
                }
            }
        }
    }
    Ok(())
}

fn exec_txn(
    state: &mut EtcdState,
    t: &TxnRequest,
    path: &Path,
    rev: i64,
    changed: &mut bool,
    keep: bool,
) -> OpResult {
    let mut nested = path.nested.iter();
    let mut responses = Vec::new();
    for op in branch(t, path) {
        let r = match op {
            RequestOp::Range(r) => {
                let current = if *changed { rev } else { state.revision };
                OpResult::Range(range(state, r, current))
            }
            RequestOp::Put(p) => put(state, p, rev, changed, keep),
            RequestOp::DeleteRange(d) => delete(state, d, rev, changed, keep),
            RequestOp::Txn(inner) => match nested.next() {
                Some(p) => exec_txn(state, inner, p, rev, changed, keep),
                None => OpResult::Txn {
                    succeeded: false,
                    responses: Vec::new(),
                },
            },
        };
        responses.push(r);
    }
    OpResult::Txn {
        succeeded: path.succeeded,
        responses,
    }
}

/// etcd's compare: every key in the range must satisfy it; with no key, a value compare is
/// false and the others compare against zero.
pub fn compare_holds(state: &EtcdState, c: &Compare) -> bool {
    let kvs = state.range_at(&c.range, state.revision);
    if kvs.is_empty() {
        if matches!(c.target, CompareTarget::Value(_)) {
            return false;
        }
        return compare_one(&KeyValue::default(), c);
    }
    kvs.iter().all(|kv| compare_one(kv, c))
}

fn compare_one(kv: &KeyValue, c: &Compare) -> bool {
    let ord = match &c.target {
        CompareTarget::Value(v) => kv.value.as_str().cmp(v.as_str()),
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.op {
        CompareOp::Equal => ord == Ordering::Equal,
        CompareOp::NotEqual => ord != Ordering::Equal,
        CompareOp::Greater => ord == Ordering::Greater,
        CompareOp::Less => ord == Ordering::Less,
    }
}
