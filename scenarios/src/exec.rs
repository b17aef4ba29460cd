//! Executing a request written in the checker's etcd vocabulary against a real etcd v3 client,
//! and translating the answer back into that vocabulary.
//!
//! Owns: the mapping `EtcdRequest` → etcd v3 gRPC request and gRPC response →
//! `EtcdResponse`, and the classification of errors into *definite* (the request did not take
//! effect: compacted, future revision, lease not found/exists) and *unknown outcome* (anything
//! else: unavailable, timeout, leader changed, connection reset).
//!
//! Must never: invent a response field the server did not send, or classify an error as
//! definite unless etcd guarantees the request had no effect.

use etcd_api::client::Client;
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;
use linearizability::models::etcd::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, EtcdError, EtcdRequest, EtcdResponse,
    KeyValue, OpResult, PutRequest, RangeRequest, RangeResult, RequestOp, TxnRequest,
};
use std::time::Duration;

/// How a request ended, short of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request may or may not have taken effect.
    Unknown(String),
    /// The server refused the request before it could take effect (`database space exceeded`:
    /// etcd checks the quota before proposing, and the capped applier rejects it at apply).
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unknown(s) | Failure::Refused(s) => write!(f, "{s}"),
        }
    }
}

/// Converts a wire key-value.
pub fn kv(k: &mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(&k.key).into_owned(),
        value: String::from_utf8_lossy(&k.value).into_owned(),
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

fn definite(msg: &str) -> Option<EtcdError> {
    if msg.contains("required revision has been compacted") {
        Some(EtcdError::Compacted)
    } else if msg.contains("required revision is a future revision") {
        Some(EtcdError::FutureRevision)
    } else if msg.contains("requested lease not found") {
        Some(EtcdError::LeaseNotFound)
    } else if msg.contains("lease already exists") {
        Some(EtcdError::LeaseExists)
    } else {
        None
    }
}

/// Sorts an RPC's error status into a definite error, a refusal or an unknown outcome.
pub fn classify(status: &tonic::Status) -> Result<EtcdResponse, Failure> {
    let msg = status.message().to_string();
    match definite(&msg) {
        Some(d) => Ok(EtcdResponse::Error(d)),
        None if msg.contains("database space exceeded") => Err(Failure::Refused(msg)),
        None if msg.is_empty() => Err(Failure::Unknown(status.code().to_string())),
        None => Err(Failure::Unknown(msg)),
    }
}

fn range_end(end: &Option<String>) -> Vec<u8> {
    end.as_deref()
        .map(|e| e.as_bytes().to_vec())
        .unwrap_or_default()
}

fn range_request(r: &RangeRequest, serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest {
        key: r.range.key.as_bytes().to_vec(),
        range_end: range_end(&r.range.range_end),
        revision: r.revision,
        limit: r.limit,
        count_only: r.count_only,
        keys_only: r.keys_only,
        serializable,
        ..Default::default()
    }
}

fn delete_request(d: &DeleteRangeRequest) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        key: d.range.key.as_bytes().to_vec(),
        range_end: range_end(&d.range.range_end),
        prev_kv: d.prev_kv,
    }
}

fn put_request(p: &PutRequest) -> pb::PutRequest {
    pb::PutRequest {
        key: p.key.as_bytes().to_vec(),
        value: p.value.as_bytes().to_vec(),
        lease: p.lease,
        prev_kv: p.prev_kv,
        ..Default::default()
    }
}

fn compare(c: &Compare) -> pb::Compare {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match c.op {
        CompareOp::Equal => R::Equal,
        CompareOp::Greater => R::Greater,
        CompareOp::Less => R::Less,
        CompareOp::NotEqual => R::NotEqual,
    };
    let (target, union) = match &c.target {
        CompareTarget::Value(v) => (T::Value, U::Value(v.as_bytes().to_vec())),
        CompareTarget::Version(v) => (T::Version, U::Version(*v)),
        CompareTarget::Create(v) => (T::Create, U::CreateRevision(*v)),
        CompareTarget::Mod(v) => (T::Mod, U::ModRevision(*v)),
        CompareTarget::Lease(v) => (T::Lease, U::Lease(*v)),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: c.range.key.as_bytes().to_vec(),
        range_end: range_end(&c.range.range_end),
        target_union: Some(union),
    }
}

fn txn_op(op: &RequestOp) -> pb::RequestOp {
    use pb::request_op::Request;
    let request = match op {
        RequestOp::Range(r) => Request::RequestRange(range_request(r, false)),
        RequestOp::Put(p) => Request::RequestPut(put_request(p)),
        RequestOp::DeleteRange(d) => Request::RequestDeleteRange(delete_request(d)),
        RequestOp::Txn(t) => Request::RequestTxn(txn_request(t)),
    };
    pb::RequestOp {
        request: Some(request),
    }
}

fn txn_request(t: &TxnRequest) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: t.compare.iter().map(compare).collect(),
        success: t.success.iter().map(txn_op).collect(),
        failure: t.failure.iter().map(txn_op).collect(),
    }
}

fn range_result(r: &pb::RangeResponse) -> RangeResult {
    RangeResult {
        kvs: r.kvs.iter().map(kv).collect(),
        count: r.count,
        more: r.more,
    }
}

/// A put's answer: its previous value only when the request asked for it.
fn put_result(p: &pb::PutResponse, asked_prev_kv: bool) -> OpResult {
    OpResult::Put {
        prev_kv: p.prev_kv.as_ref().filter(|_| asked_prev_kv).map(kv),
    }
}

fn delete_result(d: &pb::DeleteRangeResponse, asked_prev_kv: bool) -> OpResult {
    OpResult::DeleteRange {
        deleted: d.deleted,
        prev_kvs: if asked_prev_kv {
            d.prev_kvs.iter().map(kv).collect()
        } else {
            Vec::new()
        },
    }
}

fn txn_result(r: &pb::TxnResponse, t: &TxnRequest) -> OpResult {
    use pb::response_op::Response;
    let branch = if r.succeeded { &t.success } else { &t.failure };
    let responses = r
        .responses
        .iter()
        .zip(branch.iter())
        .filter_map(|(resp, req)| match (resp.response.as_ref()?, req) {
            (Response::ResponseRange(g), _) => Some(OpResult::Range(range_result(g))),
            (Response::ResponsePut(p), RequestOp::Put(pr)) => Some(put_result(p, pr.prev_kv)),
            (Response::ResponsePut(p), _) => Some(put_result(p, true)),
            (Response::ResponseDeleteRange(d), _) => Some(delete_result(d, true)),
            (Response::ResponseTxn(inner), RequestOp::Txn(it)) => Some(txn_result(inner, it)),
            (Response::ResponseTxn(inner), _) => Some(txn_result(inner, &TxnRequest::default())),
        })
        .collect();
    OpResult::Txn {
        succeeded: r.succeeded,
        responses,
    }
}

fn rev(h: Option<&pb::ResponseHeader>) -> i64 {
    h.map(|h| h.revision).unwrap_or(0)
}

/// Sends `req` through `c` (a serializable read when `serializable`), giving up after
/// `timeout` of (simulated) time. Definite errors come back as `Ok(EtcdResponse::Error)`.
pub async fn execute(
    c: &mut Client,
    req: &EtcdRequest,
    serializable: bool,
    timeout: Duration,
) -> Result<EtcdResponse, Failure> {
    match tokio::time::timeout(timeout, execute_inner(c, req, serializable)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Unknown("client timeout".into())),
    }
}

/// Who issued a request, for its record.
pub struct Issuer<'a> {
    /// Client id (one per logical client process).
    pub client: u64,
    /// The client host.
    pub host: &'a str,
    /// The member the request goes to.
    pub member: &'a str,
    /// The operation's kind in the traffic profile.
    pub kind: &'a str,
}

/// Executes `req` and returns its record: simulated call and return times, and the response or
/// the reason its outcome is unknown.
pub async fn execute_recorded(
    c: &mut Client,
    req: EtcdRequest,
    serializable: bool,
    timeout: Duration,
    by: Issuer<'_>,
) -> crate::history::Record {
    let call_us = crate::history::now_us();
    let res = execute(c, &req, serializable, timeout).await;
    let ret_us = crate::history::now_us();
    let (response, error, refused) = match res {
        Ok(r) => (Some(r), None, false),
        Err(Failure::Unknown(e)) => (None, Some(e), false),
        Err(Failure::Refused(e)) => (None, Some(e), true),
    };
    crate::history::Record {
        client: by.client,
        host: by.host.to_string(),
        member: by.member.to_string(),
        kind: by.kind.to_string(),
        call_us,
        ret_us,
        serializable,
        request: req,
        response,
        error,
        refused,
    }
}

async fn execute_inner(
    c: &mut Client,
    req: &EtcdRequest,
    serializable: bool,
) -> Result<EtcdResponse, Failure> {
    let ok = |revision, result| Ok(EtcdResponse::Ok { revision, result });
    let answer = match req {
        EtcdRequest::Range(r) => {
            c.kv.range(range_request(r, serializable))
                .await
                .map(|resp| {
                    let resp = resp.into_inner();
                    (
                        rev(resp.header.as_ref()),
                        OpResult::Range(range_result(&resp)),
                    )
                })
        }
        EtcdRequest::Put(p) => c.kv.put(put_request(p)).await.map(|resp| {
            let resp = resp.into_inner();
            (rev(resp.header.as_ref()), put_result(&resp, p.prev_kv))
        }),
        EtcdRequest::DeleteRange(d) => c.kv.delete_range(delete_request(d)).await.map(|resp| {
            let resp = resp.into_inner();
            (rev(resp.header.as_ref()), delete_result(&resp, d.prev_kv))
        }),
        EtcdRequest::Txn(t) => c.kv.txn(txn_request(t)).await.map(|resp| {
            let resp = resp.into_inner();
            (rev(resp.header.as_ref()), txn_result(&resp, t))
        }),
        EtcdRequest::LeaseGrant { id, ttl } => {
            let grant = pb::LeaseGrantRequest { ttl: *ttl, id: *id };
            c.lease.lease_grant(grant).await.map(|resp| {
                let resp = resp.into_inner();
                let result = OpResult::LeaseGrant {
                    id: resp.id,
                    ttl: resp.ttl,
                };
                (rev(resp.header.as_ref()), result)
            })
        }
        EtcdRequest::LeaseRevoke { id } => {
            let revoke = pb::LeaseRevokeRequest { id: *id };
            c.lease.lease_revoke(revoke).await.map(|resp| {
                (
                    rev(resp.into_inner().header.as_ref()),
                    OpResult::LeaseRevoke,
                )
            })
        }
        EtcdRequest::Compact { revision } => {
            let compact = pb::CompactionRequest {
                revision: *revision,
                physical: false,
            };
            c.kv.compact(compact)
                .await
                .map(|resp| (rev(resp.into_inner().header.as_ref()), OpResult::Compact))
        }
        EtcdRequest::LeaseExpire { .. } => {
            return Err(Failure::Unknown(
                "LeaseExpire is an event, not a request".into(),
            ))
        }
    };
    match answer {
        Ok((revision, result)) => ok(revision, result),
        Err(status) => classify(&status),
    }
}

/// etcd's prefix end ([`etcd_api::client::prefix_range_end`]) as a string (ASCII prefixes
/// only: the checker's keys are strings).
pub fn prefix_end(prefix: &str) -> String {
    let end = etcd_api::client::prefix_range_end(prefix.as_bytes());
    String::from_utf8_lossy(&end).into_owned()
}
