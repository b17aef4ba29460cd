//! Evidence about unknown-outcome writes, gathered from the whole history before the search.
//!
//! Owns: facts read off known responses that say where an unknown-outcome write can *not* have
//! taken effect:
//! - revisions created by known-outcome writes ("claimed": nobody else creates them);
//! - pins: an unknown put whose value no other put writes, seen in a response at mod revision
//!   m, created m;
//! - keys written at a revision: a key seen with mod revision m was written by whatever created m;
//! - unchanged keys: a key seen with mod revision m at revision v was not written in (m, v];
//! - fully explained versions: a key seen with (create c, mod m, version n) was put exactly n
//!   times in [c, m]; if known-outcome writes account for all n, no unknown write put it then.
//!
//! - the same from key-values observed outside the history (watch PUT events), if given;
//! - lease expiry pins: a key put with lease L (the last put before R) and deleted at revision
//!   R (a watch DELETE event), when no request in the history could have deleted it — no
//!   delete covering the key, no revoke of L — was deleted by L's expiry, which therefore
//!   created R;
//! - the highest revision any known response carries: an unknown write creating a higher one
//!   would come after every known operation, which is the same as never happening (only used
//!   when no known response is an error, since an error may follow such a write).
//!
//! The model uses them to refuse placing an unknown write where it would create a revision
//! against the evidence. Must never make the check stricter than the semantics: every refused
//! placement is impossible in any valid linearization.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::state::EtcdState;
use super::types::{EtcdRequest, EtcdResponse, KeyValue, OpResult, RequestOp};
use crate::history::Operation;

/// Revision evidence for one history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// Revisions created by known-outcome writes and by pinned unknown-outcome writes.
    pub claimed: HashSet<i64>,
    /// Key, then value, of an unknown-outcome put with a value no other put writes, to the
    /// revision at which some response shows it.
    pub pins: HashMap<String, HashMap<String, i64>>,
    /// Keys seen with this mod revision (so written by whatever created it).
    pub written_at: HashMap<i64, BTreeSet<String>>,
    /// Per key, sorted disjoint revision intervals in which no unknown-outcome write put it.
    pub no_unknown_puts: HashMap<String, Vec<(i64, i64)>>,
    /// No unknown-outcome write creates a revision above this.
    pub max_revision: Option<i64>,
    /// Lease id to the revision its expiry created (see the module doc).
    pub expiry_pins: HashMap<i64, i64>,
}

/// Whether `ops` may delete `key`.
fn ops_may_delete(ops: &[RequestOp], key: &str) -> bool {
    ops.iter().any(|op| match op {
        RequestOp::DeleteRange(d) => d.range.contains(key),
        RequestOp::Txn(t) => ops_may_delete(&t.success, key) || ops_may_delete(&t.failure, key),
        RequestOp::Range(_) | RequestOp::Put(_) => false,
    })
}

/// Whether a request may delete `key` (attached to `lease`) by itself.
fn may_delete(req: &EtcdRequest, key: &str, lease: i64) -> bool {
    match req {
        EtcdRequest::DeleteRange(d) => d.range.contains(key),
        EtcdRequest::Txn(t) => ops_may_delete(&t.success, key) || ops_may_delete(&t.failure, key),
        EtcdRequest::LeaseRevoke { id } => *id == lease,
        _ => false,
    }
}

fn puts_of<'a>(ops: &'a [RequestOp], out: &mut Vec<(&'a str, &'a str)>) {
    for op in ops {
        match op {
            RequestOp::Put(p) => out.push((&p.key, &p.value)),
            RequestOp::Txn(t) => {
                puts_of(&t.success, out);
                puts_of(&t.failure, out);
            }
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
        }
    }
}

/// Every (key, value) a request may put.
pub fn request_puts(req: &EtcdRequest) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    match req {
        EtcdRequest::Put(p) => out.push((p.key.as_str(), p.value.as_str())),
        EtcdRequest::Txn(t) => {
            puts_of(&t.success, &mut out);
            puts_of(&t.failure, &mut out);
        }
        _ => {}
    }
    out
}

/// Whether a known result shows a write (so the request created its header revision).
pub(crate) fn wrote(result: &OpResult) -> bool {
    match result {
        OpResult::Put { .. } => true,
        OpResult::DeleteRange { deleted, .. } => *deleted > 0,
        OpResult::Txn { responses, .. } => responses.iter().any(wrote),
        _ => false,
    }
}

/// Keys a known txn put (in the branch it took, as its responses show).
fn txn_put_keys<'a>(
    ops: &'a [RequestOp],
    succeeded_branch: &'a [OpResult],
    out: &mut Vec<&'a str>,
) {
    for (op, res) in ops.iter().zip(succeeded_branch) {
        match (op, res) {
            (RequestOp::Put(p), OpResult::Put { .. }) => out.push(&p.key),
            (
                RequestOp::Txn(t),
                OpResult::Txn {
                    succeeded,
                    responses,
                },
            ) => {
                let branch = if *succeeded { &t.success } else { &t.failure };
                txn_put_keys(branch, responses, out);
            }
            _ => {}
        }
    }
}

fn known_put_keys<'a>(req: &'a EtcdRequest, result: &'a OpResult) -> Vec<&'a str> {
    let mut out = Vec::new();
    match (req, result) {
        (EtcdRequest::Put(p), OpResult::Put { .. }) => out.push(p.key.as_str()),
        (
            EtcdRequest::Txn(t),
            OpResult::Txn {
                succeeded,
                responses,
            },
        ) => {
            let branch = if *succeeded { &t.success } else { &t.failure };
            txn_put_keys(branch, responses, &mut out);
        }
        _ => {}
    }
    out
}

/// Key-values a result shows, each with the revision at which it was current (`header` for
/// reads, the revision before the write for previous key-values).
fn observed<'a>(result: &'a OpResult, header: i64, out: &mut Vec<(&'a KeyValue, i64)>) {
    match result {
        OpResult::Range(r) => out.extend(r.kvs.iter().map(|kv| (kv, header))),
        OpResult::Put { prev_kv } => out.extend(prev_kv.iter().map(|kv| (kv, header - 1))),
        OpResult::DeleteRange { prev_kvs, .. } => {
            out.extend(prev_kvs.iter().map(|kv| (kv, header - 1)))
        }
        OpResult::Txn { responses, .. } => responses.iter().for_each(|r| observed(r, header, out)),
        _ => {}
    }
}

impl Hints {
    /// Gathers the evidence in `history`.
    pub fn gather(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Hints {
        Self::gather_with(history, &[], &[])
    }

    /// Gathers the evidence in `history` plus key-values observed elsewhere, each current at
    /// its own mod revision (e.g. the key-values of watch PUT events), and deletions observed
    /// elsewhere as (key, revision) (watch DELETE events).
    pub fn gather_with(
        history: &[Operation<EtcdRequest, EtcdResponse>],
        extra: &[KeyValue],
        deleted: &[(String, i64)],
    ) -> Hints {
        let mut hints = Hints::default();
        let mut put_count: HashMap<(&str, &str), usize> = HashMap::new();
        for op in history {
            for kv in request_puts(&op.input) {
                *put_count.entry(kv).or_default() += 1;
            }
        }
        let mut seen: HashMap<(&str, &str), i64> = HashMap::new();
        let mut snapshots: HashSet<(&str, i64, i64, i64)> = HashSet::new();
        let mut intervals: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        let mut known_puts: HashMap<&str, Vec<i64>> = HashMap::new();
        let mut max_revision = Some(i64::MIN);
        let mut kvs: Vec<(&KeyValue, i64)> = extra.iter().map(|kv| (kv, kv.mod_revision)).collect();
        for op in history {
            if let Some(EtcdResponse::Error(_)) = &op.output {
                max_revision = None;
            }
            let Some(EtcdResponse::Ok { revision, result }) = &op.output else {
                continue;
            };
            max_revision = max_revision.map(|m| m.max(*revision));
            if matches!(
                op.input,
                EtcdRequest::Put(_) | EtcdRequest::DeleteRange(_) | EtcdRequest::Txn(_)
            ) && wrote(result)
            {
                hints.claimed.insert(*revision);
            }
            for k in known_put_keys(&op.input, result) {
                known_puts.entry(k).or_default().push(*revision);
            }
            observed(result, *revision, &mut kvs);
        }
        for (kv, current_at) in kvs {
            // Unchanged from its mod revision to where it was seen.
            if current_at > kv.mod_revision {
                intervals
                    .entry(kv.key.clone())
                    .or_default()
                    .push((kv.mod_revision + 1, current_at));
            }
            seen.insert((&kv.key, &kv.value), kv.mod_revision);
            snapshots.insert((&kv.key, kv.create_revision, kv.mod_revision, kv.version));
            hints
                .written_at
                .entry(kv.mod_revision)
                .or_default()
                .insert(kv.key.clone());
        }
        for op in history.iter().filter(|op| op.output.is_none()) {
            for kv in request_puts(&op.input) {
                if put_count.get(&kv) == Some(&1) {
                    if let Some(&rev) = seen.get(&kv) {
                        hints
                            .pins
                            .entry(kv.0.to_string())
                            .or_default()
                            .insert(kv.1.to_string(), rev);
                        hints.claimed.insert(rev);
                    }
                }
            }
        }
        hints.max_revision = max_revision.filter(|&m| m > i64::MIN);
        hints.expiry_pins = expiry_pins(history, extra, deleted, &hints.claimed);
        hints.claimed.extend(hints.expiry_pins.values().copied());
        for revs in known_puts.values_mut() {
            revs.sort_unstable();
            revs.dedup();
        }
        for (key, create, modr, version) in snapshots {
            let known = known_puts.get(key).map_or(0, |revs| {
                let lo = revs.partition_point(|&r| r < create);
                let hi = revs.partition_point(|&r| r <= modr);
                hi - lo
            });
            if known as i64 == version {
                intervals
                    .entry(key.to_string())
                    .or_default()
                    .push((create, modr));
            }
        }
        for (key, mut iv) in intervals {
            iv.sort_unstable();
            let mut merged: Vec<(i64, i64)> = Vec::with_capacity(iv.len());
            for (a, b) in iv {
                match merged.last_mut() {
                    Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            hints.no_unknown_puts.insert(key, merged);
        }
        hints
    }

    /// Whether an unknown-outcome `req` applied to `before` may create revision
    /// `before.revision + 1` at all (checks that need no knowledge of what it writes).
    pub fn may_create_next(&self, req: &EtcdRequest, before: &EtcdState) -> bool {
        let rev = before.revision + 1;
        if let EtcdRequest::LeaseExpire { id } = req {
            if let Some(&p) = self.expiry_pins.get(id) {
                return p == rev;
            }
        }
        if let Some(p) = request_puts(req)
            .iter()
            .find_map(|(k, v)| self.pins.get(*k).and_then(|m| m.get(*v)).copied())
        {
            return p == rev;
        }
        !self.claimed.contains(&rev) && self.max_revision.is_none_or(|m| rev <= m)
    }

    /// Whether an unknown-outcome `req`, applied to `before` giving `after`, may have created
    /// revision `after.revision`.
    pub fn allows(&self, req: &EtcdRequest, before: &EtcdState, after: &EtcdState) -> bool {
        let rev = after.revision;
        if rev == before.revision {
            return true;
        }
        if let EtcdRequest::LeaseExpire { id } = req {
            if let Some(&p) = self.expiry_pins.get(id) {
                return p == rev;
            }
        }
        let puts = request_puts(req);
        if let Some(p) = puts
            .iter()
            .find_map(|(k, v)| self.pins.get(*k).and_then(|m| m.get(*v)).copied())
        {
            return p == rev;
        }
        if self.claimed.contains(&rev) || self.max_revision.is_some_and(|m| rev > m) {
            return false;
        }
        let written_now = |k: &str| {
            after
                .keys()
                .get(k)
                .and_then(|v| v.last())
                .is_some_and(|v| v.revision == rev && v.live.is_some())
        };
        if let Some(keys) = self.written_at.get(&rev) {
            if !keys.iter().all(|k| written_now(k)) {
                return false;
            }
        }
        for (k, _) in puts {
            if let Some(iv) = self.no_unknown_puts.get(k) {
                let i = iv.partition_point(|&(_, b)| b < rev);
                if iv.get(i).is_some_and(|&(a, _)| a <= rev) && written_now(k) {
                    return false;
                }
            }
        }
        true
    }
}

/// Lease expiry pins (see the module doc): for each observed deletion of a key whose last put
/// before it carried a lease, when nothing in `history` but that lease's expiry can have
/// deleted it and a `LeaseExpire` of the lease is in the history.
fn expiry_pins(
    history: &[Operation<EtcdRequest, EtcdResponse>],
    extra: &[KeyValue],
    deleted: &[(String, i64)],
    claimed: &HashSet<i64>,
) -> HashMap<i64, i64> {
    let expiring: HashSet<i64> = history
        .iter()
        .filter_map(|op| match op.input {
            EtcdRequest::LeaseExpire { id } => Some(id),
            _ => None,
        })
        .collect();
    let mut pins = HashMap::new();
    if expiring.is_empty() {
        return pins;
    }
    let mut puts: HashMap<&str, Vec<(i64, i64)>> = HashMap::new(); // key → (mod rev, lease)
    for kv in extra {
        puts.entry(kv.key.as_str())
            .or_default()
            .push((kv.mod_revision, kv.lease));
    }
    for op in history {
        if let (EtcdRequest::Put(p), Some(EtcdResponse::Ok { revision, .. })) =
            (&op.input, &op.output)
        {
            puts.entry(p.key.as_str())
                .or_default()
                .push((*revision, p.lease));
        }
    }
    for v in puts.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    let mut conflicting = HashSet::new();
    for (key, rev) in deleted {
        if claimed.contains(rev) {
            continue;
        }
        let Some(lease) = puts.get(key.as_str()).and_then(|v| {
            let i = v.partition_point(|&(m, _)| m < *rev);
            i.checked_sub(1).map(|j| v[j].1)
        }) else {
            continue;
        };
        if lease == 0 || !expiring.contains(&lease) {
            continue;
        }
        if history.iter().any(|op| may_delete(&op.input, key, lease)) {
            continue;
        }
        match pins.insert(lease, *rev) {
            Some(other) if other != *rev => {
                conflicting.insert(lease);
            }
            _ => {}
        }
    }
    // Two revisions for one expiry: the evidence contradicts itself; pin nothing for it.
    for l in conflicting {
        pins.remove(&l);
    }
    pins
}
