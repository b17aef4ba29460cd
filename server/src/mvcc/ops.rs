//! Range, Put and DeleteRange as etcd's applier runs them (`apply.go` / `txn.go`): limits,
//! `more`, counts, filters, sorting, `prev_kv`, `ignore_value`/`ignore_lease`.

use super::consts::{sort_order, sort_target};
use super::error::MvccError;
use super::exec::{Exec, KeyRange, RangeOptions};
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;
use std::cmp::Ordering;

/// A response header carrying only the store revision (the caller fills the rest).
pub(crate) fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// etcd's `rangeLimit`: fetch everything when sorting or filtering, else one extra for `more`.
fn range_limit(r: &pb::RangeRequest) -> i64 {
    let mut limit = r.limit;
    if r.sort_order != sort_order::NONE
        || r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0
    {
        limit = 0;
    }
    if limit > 0 {
        limit += 1;
    }
    limit
}

/// etcd's applier `Range`.
pub(crate) fn range(ex: &Exec<'_>, r: &pb::RangeRequest) -> Result<pb::RangeResponse, MvccError> {
    if !(sort_order::NONE..=sort_order::DESCEND).contains(&r.sort_order)
        || !(sort_target::KEY..=sort_target::VALUE).contains(&r.sort_target)
    {
        return Err(MvccError::InvalidSortOption);
    }
    let ro = RangeOptions {
        limit: range_limit(r),
        rev: r.revision,
        count: r.count_only,
    };
    let rr = ex.range_keys(&KeyRange::new(&r.key, &r.range_end), ro)?;
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }

    let mut order = r.sort_order;
    if r.sort_target != sort_target::KEY && order == sort_order::NONE {
        // Results come in key order; any other target sorts ascending by default.
        order = sort_order::ASCEND;
    } else if r.sort_target == sort_target::KEY && order == sort_order::ASCEND {
        // Already in ascending key order.
        order = sort_order::NONE;
    }
    if order != sort_order::NONE {
        let cmp: fn(&mvccpb::KeyValue, &mvccpb::KeyValue) -> Ordering = match r.sort_target {
            sort_target::VERSION => |a, b| a.version.cmp(&b.version),
            sort_target::CREATE => |a, b| a.create_revision.cmp(&b.create_revision),
            sort_target::MOD => |a, b| a.mod_revision.cmp(&b.mod_revision),
            sort_target::VALUE => |a, b| a.value.cmp(&b.value),
            _ => |a, b| a.key.cmp(&b.key),
        };
        // Stable: ties stay in key order in both directions (as Go's insertion sort leaves
        // them for small results).
        if order == sort_order::DESCEND {
            kvs.sort_by(|a, b| cmp(b, a));
        } else {
            kvs.sort_by(cmp);
        }
    }

    let mut more = false;
    if r.limit > 0 && kvs.len() as i64 > r.limit {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(pb::RangeResponse {
        header: header(rr.rev),
        kvs,
        more,
        count: rr.count,
    })
}

/// The key's current key-value, as later ops of the request see it.
pub(crate) fn current(ex: &Exec<'_>, key: &[u8]) -> Result<Option<mvccpb::KeyValue>, MvccError> {
    let rr = ex.range_keys(&KeyRange::Single(key.to_vec()), RangeOptions::default())?;
    Ok(rr.kvs.into_iter().next())
}

/// etcd's applier `Put` (the lease existence check is the caller's).
pub(crate) fn put(ex: &mut Exec<'_>, p: &pb::PutRequest) -> Result<pb::PutResponse, MvccError> {
    if p.ignore_value && !p.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        current(ex, &p.key)?
    } else {
        None
    };
    let (mut value, mut lease) = (None, p.lease);
    if p.ignore_value || p.ignore_lease {
        let Some(prev) = &prev else {
            return Err(MvccError::KeyNotFound);
        };
        if p.ignore_value {
            value = Some(prev.value.clone());
        }
        if p.ignore_lease {
            lease = prev.lease;
        }
    }
    let value = value.unwrap_or_else(|| p.value.clone());
    let rev = ex.put(&p.key, value, lease)?;
    Ok(pb::PutResponse {
        header: header(rev),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

/// etcd's applier `DeleteRange`.
pub(crate) fn delete_range(
    ex: &mut Exec<'_>,
    d: &pb::DeleteRangeRequest,
) -> Result<pb::DeleteRangeResponse, MvccError> {
    let range = KeyRange::new(&d.key, &d.range_end);
    let prev_kvs = if d.prev_kv {
        ex.range_keys(&range, RangeOptions::default())?.kvs
    } else {
        Vec::new()
    };
    let (deleted, rev) = ex.delete_range(&range)?;
    Ok(pb::DeleteRangeResponse {
        header: header(rev),
        deleted,
        prev_kvs,
    })
}
