//! Short human-readable text for etcd requests and responses (explanations, HTML view).
//!
//! Owns: formatting only. Must never be parsed back nor used for matching.

use super::types::{
    Compare, CompareOp, CompareTarget, EtcdRequest, EtcdResponse, KeyRange, KeyValue, OpResult,
    RangeRequest, RequestOp,
};

fn range(r: &KeyRange) -> String {
    match &r.range_end {
        None => r.key.clone(),
        Some(e) if e == "\0" => format!("{}..", r.key),
        Some(e) => format!("{}..{}", r.key, e),
    }
}

fn range_req(r: &RangeRequest) -> String {
    let mut s = format!("range {}", range(&r.range));
    if r.revision != 0 {
        s += &format!(" @{}", r.revision);
    }
    if r.limit != 0 {
        s += &format!(" limit {}", r.limit);
    }
    if r.count_only {
        s += " count";
    }
    if r.keys_only {
        s += " keys";
    }
    s
}

fn compare(c: &Compare) -> String {
    let op = match c.op {
        CompareOp::Equal => "==",
        CompareOp::NotEqual => "!=",
        CompareOp::Greater => ">",
        CompareOp::Less => "<",
    };
    let (what, v) = match &c.target {
        CompareTarget::Value(v) => ("value", format!("{v:?}")),
        CompareTarget::Version(v) => ("version", v.to_string()),
        CompareTarget::Create(v) => ("create", v.to_string()),
        CompareTarget::Mod(v) => ("mod", v.to_string()),
        CompareTarget::Lease(v) => ("lease", v.to_string()),
    };
    format!("{what}({}) {op} {v}", range(&c.range))
}

fn op(o: &RequestOp) -> String {
    match o {
        RequestOp::Range(r) => range_req(r),
        RequestOp::Put(p) => {
            let lease = if p.lease != 0 {
                format!(" lease {}", p.lease)
            } else {
                String::new()
            };
            format!(
                "put {}={:?}{lease}{}",
                p.key,
                p.value,
                if p.prev_kv { " prev" } else { "" }
            )
        }
        RequestOp::DeleteRange(d) => format!(
            "delete {}{}",
            range(&d.range),
            if d.prev_kv { " prev" } else { "" }
        ),
        RequestOp::Txn(t) => {
            let list = |ops: &[RequestOp]| ops.iter().map(op).collect::<Vec<_>>().join("; ");
            format!(
                "txn if {} then [{}] else [{}]",
                t.compare
                    .iter()
                    .map(compare)
                    .collect::<Vec<_>>()
                    .join(" && "),
                list(&t.success),
                list(&t.failure)
            )
        }
    }
}

/// Describes a request.
pub fn request(r: &EtcdRequest) -> String {
    match r {
        EtcdRequest::Range(x) => op(&RequestOp::Range(x.clone())),
        EtcdRequest::Put(x) => op(&RequestOp::Put(x.clone())),
        EtcdRequest::DeleteRange(x) => op(&RequestOp::DeleteRange(x.clone())),
        EtcdRequest::Txn(x) => op(&RequestOp::Txn(x.clone())),
        EtcdRequest::LeaseGrant { id, ttl } => format!("lease grant {id} ttl {ttl}"),
        EtcdRequest::LeaseRevoke { id } => format!("lease revoke {id}"),
        EtcdRequest::LeaseExpire { id } => format!("lease {id} expires"),
        EtcdRequest::Compact { revision } => format!("compact {revision}"),
    }
}

fn kv(k: &KeyValue) -> String {
    let lease = if k.lease != 0 {
        format!(" l{}", k.lease)
    } else {
        String::new()
    };
    format!(
        "{}={:?} (c{} m{} v{}{lease})",
        k.key, k.value, k.create_revision, k.mod_revision, k.version
    )
}

fn result(r: &OpResult) -> String {
    match r {
        OpResult::Range(x) => {
            let kvs: Vec<String> = x.kvs.iter().map(kv).collect();
            format!(
                "[{}] count {}{}",
                kvs.join(", "),
                x.count,
                if x.more { " more" } else { "" }
            )
        }
        OpResult::Put { prev_kv } => prev_kv
            .as_ref()
            .map_or_else(|| "ok".to_string(), |p| format!("prev {}", kv(p))),
        OpResult::DeleteRange { deleted, prev_kvs } => {
            let prev: Vec<String> = prev_kvs.iter().map(kv).collect();
            if prev.is_empty() {
                format!("deleted {deleted}")
            } else {
                format!("deleted {deleted} [{}]", prev.join(", "))
            }
        }
        OpResult::Txn {
            succeeded,
            responses,
        } => format!(
            "{} [{}]",
            if *succeeded { "then" } else { "else" },
            responses.iter().map(result).collect::<Vec<_>>().join("; ")
        ),
        OpResult::LeaseGrant { id, ttl } => format!("lease {id} ttl {ttl}"),
        OpResult::LeaseRevoke | OpResult::Compact => "ok".to_string(),
    }
}

/// Describes a response.
pub fn response(r: &EtcdResponse) -> String {
    match r {
        EtcdResponse::Ok {
            revision,
            result: res,
        } => format!("rev {revision}: {}", result(res)),
        EtcdResponse::Error(e) => format!("error {e:?}"),
    }
}
