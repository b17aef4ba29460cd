//! Executing a request written in the checker's etcd vocabulary against a real etcd v3 client,
//! and translating the answer back into that vocabulary.
//!
//! Owns: the mapping `EtcdRequest` → `etcd_client` call and `etcd_client` response →
//! `EtcdResponse`, and the classification of errors into *definite* (the request did not take
//! effect: compacted, future revision, lease not found/exists) and *unknown outcome* (anything
//! else: unavailable, timeout, leader changed, connection reset).
//!
//! Must never: invent a response field the server did not send, or classify an error as
//! definite unless etcd guarantees the request had no effect.

use etcd_client::{
    Client, Compare as EcCompare, CompareOp as EcOp, DeleteOptions, GetOptions, LeaseGrantOptions,
    PutOptions, Txn, TxnOp, TxnOpResponse,
};
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

/// Converts an `etcd_client` key-value.
pub fn kv(k: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(k.key()).into_owned(),
        value: String::from_utf8_lossy(k.value()).into_owned(),
        create_revision: k.create_revision(),
        mod_revision: k.mod_revision(),
        version: k.version(),
        lease: k.lease(),
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

fn classify(e: etcd_client::Error) -> Result<EtcdResponse, Failure> {
    let msg = match &e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    };
    match definite(&msg) {
        Some(d) => Ok(EtcdResponse::Error(d)),
        None if msg.contains("database space exceeded") => Err(Failure::Refused(msg)),
        None => Err(Failure::Unknown(msg)),
    }
}

fn get_options(r: &RangeRequest, serializable: bool) -> GetOptions {
    let mut o = GetOptions::new();
    if let Some(end) = &r.range.range_end {
        o = o.with_range(end.as_bytes().to_vec());
    }
    if r.revision != 0 {
        o = o.with_revision(r.revision);
    }
    if r.limit != 0 {
        o = o.with_limit(r.limit);
    }
    if r.count_only {
        o = o.with_count_only();
    }
    if r.keys_only {
        o = o.with_keys_only();
    }
    if serializable {
        o = o.with_serializable();
    }
    o
}

fn delete_options(d: &DeleteRangeRequest) -> DeleteOptions {
    let mut o = DeleteOptions::new();
    if let Some(end) = &d.range.range_end {
        o = o.with_range(end.as_bytes().to_vec());
    }
    if d.prev_kv {
        o = o.with_prev_key();
    }
    o
}

fn put_options(p: &PutRequest) -> PutOptions {
    let mut o = PutOptions::new();
    if p.lease != 0 {
        o = o.with_lease(p.lease);
    }
    if p.prev_kv {
        o = o.with_prev_key();
    }
    o
}

fn compare(c: &Compare) -> EcCompare {
    let op = match c.op {
        CompareOp::Equal => EcOp::Equal,
        CompareOp::Greater => EcOp::Greater,
        CompareOp::Less => EcOp::Less,
        CompareOp::NotEqual => EcOp::NotEqual,
    };
    let key = c.range.key.as_str();
    let cmp = match &c.target {
        CompareTarget::Value(v) => EcCompare::value(key, op, v.as_str()),
        CompareTarget::Version(v) => EcCompare::version(key, op, *v),
        CompareTarget::Create(v) => EcCompare::create_revision(key, op, *v),
        CompareTarget::Mod(v) => EcCompare::mod_revision(key, op, *v),
        CompareTarget::Lease(v) => EcCompare::lease(key, op, *v),
    };
    match &c.range.range_end {
        Some(end) => cmp.with_range(end.as_bytes().to_vec()),
        None => cmp,
    }
}

fn txn_op(op: &RequestOp) -> TxnOp {
    match op {
        RequestOp::Range(r) => TxnOp::get(r.range.key.as_str(), Some(get_options(r, false))),
        RequestOp::Put(p) => TxnOp::put(p.key.as_str(), p.value.as_str(), Some(put_options(p))),
        RequestOp::DeleteRange(d) => TxnOp::delete(d.range.key.as_str(), Some(delete_options(d))),
        RequestOp::Txn(t) => TxnOp::txn(txn(t)),
    }
}

fn txn(t: &TxnRequest) -> Txn {
    Txn::new()
        .when(t.compare.iter().map(compare).collect::<Vec<_>>())
        .and_then(t.success.iter().map(txn_op).collect::<Vec<_>>())
        .or_else(t.failure.iter().map(txn_op).collect::<Vec<_>>())
}

fn range_result(r: &etcd_client::GetResponse) -> RangeResult {
    RangeResult {
        kvs: r.kvs().iter().map(kv).collect(),
        count: r.count(),
        more: r.more(),
    }
}

fn txn_result(r: &etcd_client::TxnResponse, t: &TxnRequest) -> OpResult {
    let branch = if r.succeeded() {
        &t.success
    } else {
        &t.failure
    };
    let responses = r
        .op_responses()
        .iter()
        .zip(branch.iter())
        .map(|(resp, req)| match (resp, req) {
            (TxnOpResponse::Get(g), _) => OpResult::Range(range_result(g)),
            (TxnOpResponse::Put(p), RequestOp::Put(pr)) => OpResult::Put {
                prev_kv: if pr.prev_kv {
                    p.prev_key().map(kv)
                } else {
                    None
                },
            },
            (TxnOpResponse::Put(p), _) => OpResult::Put {
                prev_kv: p.prev_key().map(kv),
            },
            (TxnOpResponse::Delete(d), _) => OpResult::DeleteRange {
                deleted: d.deleted(),
                prev_kvs: d.prev_kvs().iter().map(kv).collect(),
            },
            (TxnOpResponse::Txn(inner), RequestOp::Txn(it)) => txn_result(inner, it),
            (TxnOpResponse::Txn(inner), _) => txn_result(inner, &TxnRequest::default()),
        })
        .collect();
    OpResult::Txn {
        succeeded: r.succeeded(),
        responses,
    }
}

fn rev(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map(|h| h.revision()).unwrap_or(0)
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
    let ok = |revision, result| EtcdResponse::Ok { revision, result };
    match req {
        EtcdRequest::Range(r) => match c
            .get(r.range.key.as_str(), Some(get_options(r, serializable)))
            .await
        {
            Ok(resp) => Ok(ok(rev(resp.header()), OpResult::Range(range_result(&resp)))),
            Err(e) => classify(e),
        },
        EtcdRequest::Put(p) => {
            match c
                .put(p.key.as_str(), p.value.as_str(), Some(put_options(p)))
                .await
            {
                Ok(resp) => Ok(ok(
                    rev(resp.header()),
                    OpResult::Put {
                        prev_kv: if p.prev_kv {
                            resp.prev_key().map(kv)
                        } else {
                            None
                        },
                    },
                )),
                Err(e) => classify(e),
            }
        }
        EtcdRequest::DeleteRange(d) => match c
            .delete(d.range.key.as_str(), Some(delete_options(d)))
            .await
        {
            Ok(resp) => Ok(ok(
                rev(resp.header()),
                OpResult::DeleteRange {
                    deleted: resp.deleted(),
                    prev_kvs: if d.prev_kv {
                        resp.prev_kvs().iter().map(kv).collect()
                    } else {
                        Vec::new()
                    },
                },
            )),
            Err(e) => classify(e),
        },
        EtcdRequest::Txn(t) => match c.txn(txn(t)).await {
            Ok(resp) => Ok(ok(rev(resp.header()), txn_result(&resp, t))),
            Err(e) => classify(e),
        },
        EtcdRequest::LeaseGrant { id, ttl } => {
            match c
                .lease_grant(*ttl, Some(LeaseGrantOptions::new().with_id(*id)))
                .await
            {
                Ok(resp) => Ok(ok(
                    rev(resp.header()),
                    OpResult::LeaseGrant {
                        id: resp.id(),
                        ttl: resp.ttl(),
                    },
                )),
                Err(e) => classify(e),
            }
        }
        EtcdRequest::LeaseRevoke { id } => match c.lease_revoke(*id).await {
            Ok(resp) => Ok(ok(rev(resp.header()), OpResult::LeaseRevoke)),
            Err(e) => classify(e),
        },
        EtcdRequest::Compact { revision } => match c.compact(*revision, None).await {
            Ok(resp) => Ok(ok(rev(resp.header()), OpResult::Compact)),
            Err(e) => classify(e),
        },
        EtcdRequest::LeaseExpire { .. } => Err(Failure::Unknown(
            "LeaseExpire is an event, not a request".into(),
        )),
    }
}

/// etcd's prefix end: the prefix with its last byte incremented (ASCII prefixes only).
pub fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0x7f {
            b.push(last + 1);
            return String::from_utf8_lossy(&b).into_owned();
        }
    }
    "\0".to_string()
}
