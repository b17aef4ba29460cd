//! Request checks etcd makes before a request reaches raft (etcd's `v3rpc/key.go`).
//!
//! Owns: empty keys, invalid sort options, provided-while-ignored fields, txn op counts and
//! duplicate keys, with etcd's gRPC codes and messages.
//!
//! Must never: look at the store; these checks depend on the request alone.

use etcd_client::proto::{
    PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTxnOpRequest, PbTxnRequest,
};
use tonic::Status;

fn empty_key() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

/// etcd's checkRangeRequest.
pub fn range(r: &PbRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    if !(0..=2).contains(&r.sort_order) || !(0..=4).contains(&r.sort_target) {
        return Err(Status::invalid_argument("etcdserver: invalid sort option"));
    }
    Ok(())
}

/// etcd's checkPutRequest.
pub fn put(r: &PbPutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Status::invalid_argument("etcdserver: value is provided"));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Status::invalid_argument("etcdserver: lease is provided"));
    }
    Ok(())
}

/// etcd's checkDeleteRequest.
pub fn delete(r: &PbDeleteRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(empty_key());
    }
    Ok(())
}

/// etcd's checkTxnRequest and checkIntervals.
pub fn txn(r: &PbTxnRequest, max_txn_ops: usize) -> Result<(), Status> {
    if r.compare.len() > max_txn_ops
        || r.success.len() > max_txn_ops
        || r.failure.len() > max_txn_ops
    {
        return Err(Status::invalid_argument(
            "etcdserver: too many operations in txn request",
        ));
    }
    for c in &r.compare {
        if c.key.is_empty() {
            return Err(empty_key());
        }
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(x)) => range(x)?,
            Some(PbTxnOpRequest::RequestPut(x)) => put(x)?,
            Some(PbTxnOpRequest::RequestDeleteRange(x)) => delete(x)?,
            Some(PbTxnOpRequest::RequestTxn(x)) => txn(x, max_txn_ops)?,
            None => return Err(Status::invalid_argument("etcdserver: request is empty")),
        }
    }
    no_duplicate_writes(&r.success)?;
    no_duplicate_writes(&r.failure)?;
    Ok(())
}

/// A put must not target a key another put or a delete range of the same branch touches.
fn no_duplicate_writes(ops: &[etcd_client::proto::PbTxnRequestOp]) -> Result<(), Status> {
    let mut puts: Vec<&[u8]> = Vec::new();
    let mut dels: Vec<(&[u8], &[u8])> = Vec::new();
    collect_writes(ops, &mut puts, &mut dels);
    let dup = || Status::invalid_argument("etcdserver: duplicate key given in txn request");
    let mut sorted = puts.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(dup());
    }
    for p in &puts {
        for (k, end) in &dels {
            let hit = if end.is_empty() {
                p == k
            } else if *end == [0u8] {
                *p >= *k
            } else {
                *p >= *k && *p < *end
            };
            if hit {
                return Err(dup());
            }
        }
    }
    Ok(())
}

fn collect_writes<'a>(
    ops: &'a [etcd_client::proto::PbTxnRequestOp],
    puts: &mut Vec<&'a [u8]>,
    dels: &mut Vec<(&'a [u8], &'a [u8])>,
) {
    for op in ops {
        match &op.request {
            Some(PbTxnOpRequest::RequestPut(p)) => puts.push(&p.key),
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => dels.push((&d.key, &d.range_end)),
            // etcd checks nested txns' branches independently of each other.
            Some(PbTxnOpRequest::RequestTxn(t)) => {
                collect_writes(&t.success, puts, dels);
            }
            _ => {}
        }
    }
}

/// Whether a txn only reads (etcd's isTxnReadonly).
pub fn txn_is_read_only(r: &PbTxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(PbTxnOpRequest::RequestRange(_)) => true,
            Some(PbTxnOpRequest::RequestTxn(t)) => txn_is_read_only(t),
            _ => false,
        })
}

/// Whether every range in a read-only txn is serializable (etcd's isTxnSerializable).
pub fn txn_is_serializable(r: &PbTxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(PbTxnOpRequest::RequestRange(x)) => x.serializable,
            Some(PbTxnOpRequest::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbTxnRequestOp;

    fn put_op(k: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: k.as_bytes().to_vec(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &[u8]) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
                key: k.as_bytes().to_vec(),
                range_end: end.to_vec(),
                prev_kv: false,
            })),
        }
    }

    #[test]
    fn empty_keys_and_provided_fields_are_rejected_with_etcd_messages() {
        let e = put(&PbPutRequest::default()).unwrap_err();
        assert_eq!(e.message(), "etcdserver: key is not provided");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = put(&PbPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.message(), "etcdserver: value is provided");
        let e = range(&PbRangeRequest {
            key: b"k".to_vec(),
            sort_order: 7,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.message(), "etcdserver: invalid sort option");
    }

    #[test]
    fn txn_limits_and_duplicates() {
        let many = PbTxnRequest {
            success: (0..4).map(|i| put_op(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        assert!(txn(&many, 4).is_ok());
        assert_eq!(
            txn(&many, 3).unwrap_err().message(),
            "etcdserver: too many operations in txn request"
        );
        let dup = PbTxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert_eq!(
            txn(&dup, 128).unwrap_err().message(),
            "etcdserver: duplicate key given in txn request"
        );
        let put_in_deleted_range = PbTxnRequest {
            success: vec![put_op("b"), del_op("a", b"c")],
            ..Default::default()
        };
        assert!(txn(&put_in_deleted_range, 128).is_err());
        // The same key in success and failure is fine: only one branch runs.
        let branches = PbTxnRequest {
            success: vec![put_op("a")],
            failure: vec![put_op("a")],
            ..Default::default()
        };
        assert!(txn(&branches, 128).is_ok());
        assert!(!txn_is_read_only(&branches));
    }
}
