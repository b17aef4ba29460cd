//! Request checks etcd makes in its gRPC layer before proposing (`api/v3rpc/key.go`):
//! empty keys, sort options, `ignore_*` conflicts, txn size and put/delete overlaps.
//! The API layer calls these; the store itself only assumes them where noted.

use super::consts::{sort_order, sort_target};
use super::error::messages;
use etcd_api::etcdserverpb as pb;
use std::collections::BTreeSet;
use tonic::Status;

fn invalid(msg: &str) -> Status {
    Status::invalid_argument(msg)
}

/// etcd's `checkRangeRequest` (with 3.5's sort option check).
pub fn validate_range(r: &pb::RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(invalid(messages::EMPTY_KEY));
    }
    if !(sort_order::NONE..=sort_order::DESCEND).contains(&r.sort_order)
        || !(sort_target::KEY..=sort_target::VALUE).contains(&r.sort_target)
    {
        return Err(invalid(messages::INVALID_SORT_OPTION));
    }
    Ok(())
}

/// etcd's `checkPutRequest`.
pub fn validate_put(r: &pb::PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(invalid(messages::EMPTY_KEY));
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(invalid(messages::VALUE_PROVIDED));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(invalid(messages::LEASE_PROVIDED));
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub fn validate_delete(r: &pb::DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(invalid(messages::EMPTY_KEY));
    }
    Ok(())
}

/// etcd's `checkTxnRequest` followed by `checkIntervals` on both branches: at most
/// `max_txn_ops` (`--max-txn-ops`, default 128) compares/ops per level, no empty keys, and no
/// key written twice (put/put or put inside a deleted range) on one execution path.
pub fn validate_txn(r: &pb::TxnRequest, max_txn_ops: usize) -> Result<(), Status> {
    check_txn(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn(r: &pb::TxnRequest, max_txn_ops: usize) -> Result<(), Status> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(invalid(messages::TOO_MANY_OPS));
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(invalid(messages::EMPTY_KEY));
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(pb::request_op::Request::RequestRange(x)) => validate_range(x)?,
            Some(pb::request_op::Request::RequestPut(x)) => validate_put(x)?,
            Some(pb::request_op::Request::RequestDeleteRange(x)) => validate_delete(x)?,
            Some(pb::request_op::Request::RequestTxn(x)) => check_txn(x, max_txn_ops - opc)?,
            // An empty op: etcd (main) answers "key not found".
            None => return Err(invalid(messages::KEY_NOT_FOUND)),
        }
    }
    Ok(())
}

/// A deleted interval, with etcd's "affine" string order: `[begin, end)`.
#[derive(Clone, Debug)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn point(k: &[u8]) -> Interval {
        let mut end = k.to_vec();
        end.push(0);
        Interval {
            begin: k.to_vec(),
            end,
        }
    }
    /// Whether the interval contains the key (`begin <= k < end`, empty end = +inf).
    fn contains(&self, k: &[u8]) -> bool {
        self.begin.as_slice() <= k && (self.end.is_empty() || k < self.end.as_slice())
    }
}

type Puts = BTreeSet<Vec<u8>>;

fn check_intervals(reqs: &[pb::RequestOp]) -> Result<(Puts, Vec<Interval>), Status> {
    let dup = || invalid(messages::DUPLICATE_KEY);
    let mut dels: Vec<Interval> = Vec::new();
    for op in reqs {
        if let Some(pb::request_op::Request::RequestDeleteRange(d)) = &op.request {
            dels.push(if d.range_end.is_empty() {
                Interval::point(&d.key)
            } else {
                Interval {
                    begin: d.key.clone(),
                    end: d.range_end.clone(),
                }
            });
        }
    }
    let hits = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.contains(k));
    let mut puts = Puts::new();
    for op in reqs {
        let Some(pb::request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hits(&dels, k) {
                return Err(dup());
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(dup());
            }
            if hits(&dels, k) {
                return Err(dup());
            }
            puts.insert(k.clone());
        }
        // etcd unions the children's deletes that overlap ["\x00", +inf): every non-empty
        // interval whose begin < end (inverted ones, e.g. a from-key "\x00" end, never match).
        for iv in dels_then.into_iter().chain(dels_else) {
            if iv.end.is_empty() || iv.end.as_slice() > b"\x00".as_slice() {
                dels.push(iv);
            }
        }
    }
    for op in reqs {
        if let Some(pb::request_op::Request::RequestPut(p)) = &op.request {
            if puts.contains(&p.key) || hits(&dels, &p.key) {
                return Err(dup());
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(pb::request_op::Request::RequestDeleteRange(
                pb::DeleteRangeRequest {
                    key: k.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }
    fn txn(success: Vec<pb::RequestOp>, failure: Vec<pb::RequestOp>) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }
    fn nested(t: pb::TxnRequest) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(pb::request_op::Request::RequestTxn(t)),
        }
    }
    fn msg(r: Result<(), Status>) -> String {
        r.err().map(|s| s.message().to_string()).unwrap_or_default()
    }

    #[test]
    fn duplicates_and_overlaps() {
        assert_eq!(
            msg(validate_txn(&txn(vec![put("a"), put("b")], vec![]), 128)),
            ""
        );
        assert_eq!(
            msg(validate_txn(&txn(vec![put("a"), put("a")], vec![]), 128)),
            messages::DUPLICATE_KEY
        );
        assert_eq!(
            msg(validate_txn(
                &txn(vec![del("a", "c"), put("b")], vec![]),
                128
            )),
            messages::DUPLICATE_KEY
        );
        assert_eq!(
            msg(validate_txn(
                &txn(vec![del("a", "c"), put("c")], vec![]),
                128
            )),
            ""
        );
        // A from-key delete ("\0" end) does not conflict in etcd's check.
        assert_eq!(
            msg(validate_txn(
                &txn(vec![del("a", "\0"), put("b")], vec![]),
                128
            )),
            ""
        );
        // The same key in then/else of one nested txn is fine; twice in the same branch is not.
        let inner = txn(vec![put("k")], vec![put("k")]);
        assert_eq!(
            msg(validate_txn(&txn(vec![nested(inner)], vec![]), 128)),
            ""
        );
        let inner = txn(vec![put("k")], vec![]);
        assert_eq!(
            msg(validate_txn(
                &txn(vec![nested(inner), put("k")], vec![]),
                128
            )),
            messages::DUPLICATE_KEY
        );
        let inner = txn(vec![del("k", "")], vec![]);
        assert_eq!(
            msg(validate_txn(
                &txn(vec![nested(inner), put("k")], vec![]),
                128
            )),
            messages::DUPLICATE_KEY
        );
        // Success and failure branches are checked separately.
        assert_eq!(
            msg(validate_txn(&txn(vec![put("a")], vec![put("a")]), 128)),
            ""
        );
    }

    #[test]
    fn sizes_keys_and_options() {
        let big = txn((0..129).map(|i| put(&format!("k{i}"))).collect(), vec![]);
        assert_eq!(msg(validate_txn(&big, 128)), messages::TOO_MANY_OPS);
        assert_eq!(msg(validate_txn(&big, 129)), "");
        assert_eq!(
            msg(validate_txn(&txn(vec![put("")], vec![]), 128)),
            messages::EMPTY_KEY
        );
        let empty_op = pb::RequestOp { request: None };
        assert_eq!(
            msg(validate_txn(&txn(vec![empty_op], vec![]), 128)),
            messages::KEY_NOT_FOUND
        );
        let r = pb::RangeRequest {
            key: b"a".to_vec(),
            sort_order: 3,
            ..Default::default()
        };
        assert_eq!(msg(validate_range(&r)), messages::INVALID_SORT_OPTION);
        let p = pb::PutRequest {
            key: b"a".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(msg(validate_put(&p)), messages::VALUE_PROVIDED);
        let p = pb::PutRequest {
            key: b"a".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(msg(validate_put(&p)), messages::LEASE_PROVIDED);
        let s = validate_delete(&pb::DeleteRangeRequest::default()).unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
    }
}
