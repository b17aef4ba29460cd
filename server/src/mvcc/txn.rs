//! Txn as etcd applies it: every compare of the request (nested txns included) is evaluated
//! first against the state before the txn, then the `ignore_*`/lease and range-revision checks
//! of the chosen path, then the ops run in order, each seeing the earlier ones' writes, all in
//! one revision with increasing sub revisions.

use super::consts::{compare_result, compare_target};
use super::error::MvccError;
use super::exec::{Exec, KeyRange, RangeOptions};
use super::ops;
use super::LeaseChecker;
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;

/// etcd's `isTxnReadonly`: only range ops in both branches (a nested txn counts as a write).
pub fn is_txn_readonly(r: &pb::TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| matches!(op.request, Some(pb::request_op::Request::RequestRange(_))))
}

fn branch(rt: &pb::TxnRequest, succeeded: bool) -> &[pb::RequestOp] {
    if succeeded {
        &rt.success
    } else {
        &rt.failure
    }
}

/// Runs a txn in `ex`. On error nothing of it may be applied (the caller drops `ex`).
pub(crate) fn txn(
    ex: &mut Exec<'_>,
    rt: &pb::TxnRequest,
    lease_exists: Option<&LeaseChecker>,
) -> Result<pb::TxnResponse, MvccError> {
    let mut path = Vec::new();
    compare_to_path(ex, rt, &mut path);
    if !is_txn_readonly(rt) {
        check_requests(ex, rt, &path, &mut 0, &mut |ex, op| {
            check_put(ex, op, lease_exists)
        })?;
    }
    check_requests(ex, rt, &path, &mut 0, &mut check_range)?;
    let mut resp = apply_txn(ex, rt, &path, &mut 0)?;
    resp.header = Some(pb::ResponseHeader {
        revision: ex.cur_rev(),
        ..Default::default()
    });
    Ok(resp)
}

/// etcd's `compareToPath`: the outcome of this txn's compares, then (depth first) of the
/// nested txns on the chosen branch, all against the pre-txn state.
fn compare_to_path(ex: &Exec<'_>, rt: &pb::TxnRequest, path: &mut Vec<bool>) {
    let ok = rt.compare.iter().all(|c| apply_compare(ex, c));
    path.push(ok);
    for op in branch(rt, ok) {
        if let Some(pb::request_op::Request::RequestTxn(t)) = &op.request {
            compare_to_path(ex, t, path);
        }
    }
}

fn apply_compare(ex: &Exec<'_>, c: &pb::Compare) -> bool {
    let Ok(rr) = ex.range_keys(
        &KeyRange::new(&c.key, &c.range_end),
        RangeOptions::default(),
    ) else {
        return false;
    };
    if rr.kvs.is_empty() {
        if c.target == compare_target::VALUE {
            // A missing key has no value to compare (nil == empty in gRPC): always false.
            return false;
        }
        return compare_kv(c, &mvccpb::KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &pb::Compare, kv: &mvccpb::KeyValue) -> bool {
    let ord = match c.target {
        compare_target::VALUE => {
            let want: &[u8] = match &c.target_union {
                Some(pb::compare::TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        target => {
            let want = match (target, &c.target_union) {
                (compare_target::CREATE, Some(pb::compare::TargetUnion::CreateRevision(v)))
                | (compare_target::MOD, Some(pb::compare::TargetUnion::ModRevision(v)))
                | (compare_target::VERSION, Some(pb::compare::TargetUnion::Version(v)))
                | (compare_target::LEASE, Some(pb::compare::TargetUnion::Lease(v))) => *v,
                _ => 0,
            };
            let have = match target {
                compare_target::CREATE => kv.create_revision,
                compare_target::MOD => kv.mod_revision,
                compare_target::VERSION => kv.version,
                compare_target::LEASE => kv.lease,
                _ => 0,
            };
            have.cmp(&want)
        }
    };
    match c.result {
        compare_result::EQUAL => ord.is_eq(),
        compare_result::NOT_EQUAL => ord.is_ne(),
        compare_result::GREATER => ord.is_gt(),
        compare_result::LESS => ord.is_lt(),
        _ => true,
    }
}

type CheckFn<'f> = dyn FnMut(&Exec<'_>, &pb::RequestOp) -> Result<(), MvccError> + 'f;

/// etcd's `checkRequests`: runs `f` on every non-txn op of the chosen path.
fn check_requests(
    ex: &Exec<'_>,
    rt: &pb::TxnRequest,
    path: &[bool],
    pos: &mut usize,
    f: &mut CheckFn<'_>,
) -> Result<(), MvccError> {
    let ok = path.get(*pos).copied().unwrap_or(false);
    *pos += 1;
    for op in branch(rt, ok) {
        if let Some(pb::request_op::Request::RequestTxn(t)) = &op.request {
            check_requests(ex, t, path, pos, f)?;
        } else {
            f(ex, op)?;
        }
    }
    Ok(())
}

/// etcd's `checkRequestPut`: `ignore_*` needs the key to exist before the txn; the lease must
/// exist.
fn check_put(
    ex: &Exec<'_>,
    op: &pb::RequestOp,
    lease_exists: Option<&LeaseChecker>,
) -> Result<(), MvccError> {
    let Some(pb::request_op::Request::RequestPut(p)) = &op.request else {
        return Ok(());
    };
    if (p.ignore_value || p.ignore_lease) && ops::current(ex, &p.key)?.is_none() {
        return Err(MvccError::KeyNotFound);
    }
    if p.lease != 0 {
        if let Some(exists) = lease_exists {
            if !exists(p.lease) {
                return Err(MvccError::LeaseNotFound);
            }
        }
    }
    Ok(())
}

/// etcd's `checkRequestRange`: revisions are checked against the pre-txn store.
fn check_range(ex: &Exec<'_>, op: &pb::RequestOp) -> Result<(), MvccError> {
    let Some(pb::request_op::Request::RequestRange(r)) = &op.request else {
        return Ok(());
    };
    if r.revision == 0 {
        Ok(())
    } else if r.revision > ex.begin_rev() {
        Err(MvccError::FutureRev)
    } else if r.revision < ex.compact_rev() {
        Err(MvccError::Compacted)
    } else {
        Ok(())
    }
}

fn apply_txn(
    ex: &mut Exec<'_>,
    rt: &pb::TxnRequest,
    path: &[bool],
    pos: &mut usize,
) -> Result<pb::TxnResponse, MvccError> {
    let succeeded = path.get(*pos).copied().unwrap_or(false);
    *pos += 1;
    let mut responses = Vec::new();
    for op in branch(rt, succeeded) {
        let response = match &op.request {
            Some(pb::request_op::Request::RequestRange(r)) => {
                Some(pb::response_op::Response::ResponseRange(ops::range(ex, r)?))
            }
            Some(pb::request_op::Request::RequestPut(p)) => {
                Some(pb::response_op::Response::ResponsePut(ops::put(ex, p)?))
            }
            Some(pb::request_op::Request::RequestDeleteRange(d)) => Some(
                pb::response_op::Response::ResponseDeleteRange(ops::delete_range(ex, d)?),
            ),
            Some(pb::request_op::Request::RequestTxn(t)) => {
                let mut inner = apply_txn(ex, t, path, pos)?;
                // etcd leaves nested txn headers empty.
                inner.header = Some(pb::ResponseHeader::default());
                Some(pb::response_op::Response::ResponseTxn(inner))
            }
            None => None,
        };
        responses.push(pb::ResponseOp { response });
    }
    Ok(pb::TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}
