//! Evidence about unknown-outcome writes, gathered from the whole history before the search.
//!
//! Owns: facts read off known responses that say where an unknown-outcome write can *not* have
//! taken effect:
//! - revisions created by known-outcome writes ("claimed": nobody else creates them);
//! - pins: an unknown put whose value no other put writes, seen in a response at mod revision
//!   m, created m;
//! - keys written at a revision: a key seen with mod revision m (or create revision c) was
//!   written by whatever created m (c); a key seen deleted at r (a watch DELETE event) was
//!   deleted by whatever created r;
//! - absent keys: a complete read (or a held txn compare `mod == 0`) at revision v that does
//!   not show key k, when only known-outcome requests can delete k, rules out unknown puts of
//!   k since the last of those (see `absent_intervals`); a held compare `mod(k) == m` at v
//!   shows k written at m and rules out unknown writes of k in (m, v];
//! - unchanged keys: a key seen with mod revision m at revision v was not written in (m, v];
//! - live keys: a key seen with create revision c at revision v was not deleted in (c, v]
//!   (a deletion would have made the next put create it anew);
//! - fully explained versions: a key seen with (create c, mod m, version n) was put exactly n
//!   times in [c, m]; if known-outcome writes account for all n, no unknown write put it then;
//!   if exactly as many unknown-outcome requests as are missing could, each did (deadlines);
//!   and any write of it in [c, m] must leave a version the known puts after it can still
//!   bring to n (`versions_fit`, also applied to known writes);
//!
//! - the same from key-values observed outside the history (watch PUT events and previous
//!   key-values), if given;
//! - exactly what changed at a revision in a watched range: a watcher gets all of a
//!   revision's events in its range (of the kinds its filters keep) in one response (the
//!   atomic guarantee), so whatever created that revision changed no other key in the range
//!   that way; and a revision up to the newest it heard of (an event or a progress
//!   notification) at which it got no event changed nothing in its range that way;
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::state::EtcdState;
use super::types::{
    CompareOp, CompareTarget, EtcdRequest, EtcdResponse, KeyRange, KeyValue, OpResult,
    RangeRequest, RangeResult, RequestOp,
};
use crate::history::Operation;

/// The gate of unknown-outcome writes without a pin.
pub const GATE_UNPINNED_WRITE: u8 = 0;
/// The gate of unknown-outcome writes with a pin.
pub const GATE_PINNED_WRITE: u8 = 1;

/// Revision evidence for one history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// Revisions created by known-outcome writes and by pinned unknown-outcome writes.
    pub claimed: HashSet<i64>,
    /// Key, then value, of an unknown-outcome put with a value no other put writes, to the
    /// revision at which some response shows it.
    pub pins: HashMap<String, HashMap<String, i64>>,
    /// Keys seen deleted at this revision (watch DELETE events): whatever created it deleted
    /// them, so it found them alive and left them gone.
    pub deleted_at: HashMap<i64, BTreeSet<String>>,
    /// Keys seen with this mod revision (so written by whatever created it).
    pub written_at: HashMap<i64, BTreeSet<String>>,
    /// Per revision, what watchers saw change in their ranges at that revision (see
    /// [`SeenChange`]).
    pub changed_exactly: HashMap<i64, Vec<SeenChange>>,
    /// Per key, sorted disjoint revision intervals in which no unknown-outcome write changed it
    /// (neither put nor deleted it: every source of an interval rules out both, see
    /// [`Hints::allows`]).
    pub no_unknown_puts: HashMap<String, Vec<(i64, i64)>>,
    /// Per key, sorted disjoint revision intervals in which it was not deleted: a key seen
    /// with create revision c at revision v existed throughout (c, v].
    pub never_deleted: HashMap<String, Vec<(i64, i64)>>,
    /// (key, value) of an unknown-outcome put that must have taken effect, to the highest
    /// revision of a state it can have been applied in: a key seen with (create c, mod m,
    /// version n) was put n times in [c, m]; when the known puts in [c, m] number n - u and
    /// exactly u unknown-outcome requests that may put the key could take effect by m, each of
    /// them did (and put it: a txn took the branch that does).
    pub must_happen_by: HashMap<(String, String), i64>,
    /// Per key, (mod, create, version) of every key-value seen of it, sorted: the versions a
    /// state must agree with (see [`Hints::versions_fit`]).
    pub versions_seen: HashMap<String, Vec<(i64, i64, i64)>>,
    /// Per key, the sorted revisions at which known-outcome writes put it.
    pub known_put_revs: HashMap<String, Vec<i64>>,
    /// No unknown-outcome write creates a revision above this.
    pub max_revision: Option<i64>,
    /// The revisions of the pins (what pinned unknown-outcome writes may create).
    pub pinned_revisions: HashSet<i64>,
    /// Lease id to the highest header revision of a known-outcome request that names it
    /// (`i64::MAX` when an unknown-outcome or failed request names it, or it is granted more
    /// than once): above it, nothing can observe the lease any more.
    pub lease_observed_until: HashMap<i64, i64>,
    /// Leases granted once in the history whose absence nothing observes: no known request
    /// naming them failed with "lease not found". An expiry of one that has no keys is never
    /// needed (see [`Hints::expiry_unobservable`]).
    pub lease_absence_unobserved: HashSet<i64>,
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

/// Sorts revision intervals and merges the overlapping or adjacent ones.
fn merge_intervals(mut iv: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    iv.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(iv.len());
    for (a, b) in iv {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// Whether `rev` lies in one of the sorted disjoint `intervals`.
fn in_intervals(intervals: Option<&Vec<(i64, i64)>>, rev: i64) -> bool {
    intervals.is_some_and(|iv| {
        let i = iv.partition_point(|&(_, b)| b < rev);
        iv.get(i).is_some_and(|&(a, _)| a <= rev)
    })
}

/// The key ranges a request deletes, nested ones included.
fn delete_ranges<'a>(req: &'a EtcdRequest, out: &mut Vec<&'a KeyRange>) {
    fn in_ops<'a>(ops: &'a [RequestOp], out: &mut Vec<&'a KeyRange>) {
        for op in ops {
            match op {
                RequestOp::DeleteRange(d) => out.push(&d.range),
                RequestOp::Txn(t) => {
                    in_ops(&t.success, out);
                    in_ops(&t.failure, out);
                }
                RequestOp::Range(_) | RequestOp::Put(_) => {}
            }
        }
    }
    match req {
        EtcdRequest::DeleteRange(d) => out.push(&d.range),
        EtcdRequest::Txn(t) => {
            in_ops(&t.success, out);
            in_ops(&t.failure, out);
        }
        _ => {}
    }
}

/// Whether a request may delete `key` (attached to `lease`) by itself.
pub(super) fn may_delete(req: &EtcdRequest, key: &str, lease: i64) -> bool {
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

/// (key, value) pairs a known txn put (in the branch it took, as its responses show).
fn txn_puts<'a>(
    ops: &'a [RequestOp],
    succeeded_branch: &'a [OpResult],
    out: &mut Vec<(&'a str, &'a str)>,
) {
    for (op, res) in ops.iter().zip(succeeded_branch) {
        match (op, res) {
            (RequestOp::Put(p), OpResult::Put { .. }) => out.push((&p.key, &p.value)),
            (
                RequestOp::Txn(t),
                OpResult::Txn {
                    succeeded,
                    responses,
                },
            ) => {
                let branch = if *succeeded { &t.success } else { &t.failure };
                txn_puts(branch, responses, out);
            }
            _ => {}
        }
    }
}

fn known_put_keys<'a>(req: &'a EtcdRequest, result: &'a OpResult) -> Vec<&'a str> {
    known_puts(req, result)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// The (key, value) pairs a known-outcome request put, as its result shows.
pub(super) fn known_puts<'a>(
    req: &'a EtcdRequest,
    result: &'a OpResult,
) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    match (req, result) {
        (EtcdRequest::Put(p), OpResult::Put { .. }) => out.push((p.key.as_str(), p.value.as_str())),
        (
            EtcdRequest::Txn(t),
            OpResult::Txn {
                succeeded,
                responses,
            },
        ) => {
            let branch = if *succeeded { &t.success } else { &t.failure };
            txn_puts(branch, responses, &mut out);
        }
        _ => {}
    }
    out
}

/// One read a known response shows.
pub(super) struct Read<'a> {
    /// The keys asked for.
    pub(super) range: &'a KeyRange,
    /// The revision read at (the header's, or the one the request asked for).
    pub(super) at: i64,
    /// What it returned.
    pub(super) kvs: &'a [KeyValue],
    /// Whether every live key of the range at `at` is in `kvs` (no limit cut it).
    pub(super) complete: bool,
}

fn read<'a>(r: &'a RangeRequest, result: &'a RangeResult, header: i64) -> Option<Read<'a>> {
    // A keys-only read carries no values, a count-only one no keys: neither is evidence here.
    (!r.keys_only && !r.count_only).then_some(Read {
        range: &r.range,
        at: if r.revision > 0 { r.revision } else { header },
        kvs: &result.kvs,
        complete: !result.more,
    })
}

fn branch_reads<'a>(
    ops: &'a [RequestOp],
    results: &'a [OpResult],
    header: i64,
    out: &mut Vec<Read<'a>>,
) {
    for (op, result) in ops.iter().zip(results) {
        match (op, result) {
            (RequestOp::Range(r), OpResult::Range(rr)) => out.extend(read(r, rr, header)),
            (
                RequestOp::Txn(t),
                OpResult::Txn {
                    succeeded,
                    responses,
                },
            ) => {
                let branch = if *succeeded { &t.success } else { &t.failure };
                branch_reads(branch, responses, header, out);
            }
            _ => {}
        }
    }
}

/// The reads a known response shows, nested ones included. Reads inside a txn that wrote are
/// left out: they ran partly before and partly after the txn's own writes, at no one revision.
pub(super) fn reads<'a>(
    req: &'a EtcdRequest,
    result: &'a OpResult,
    header: i64,
    out: &mut Vec<Read<'a>>,
) {
    match (req, result) {
        (EtcdRequest::Range(r), OpResult::Range(rr)) => out.extend(read(r, rr, header)),
        (
            EtcdRequest::Txn(t),
            OpResult::Txn {
                succeeded,
                responses,
            },
        ) if !wrote(result) => {
            let branch = if *succeeded { &t.success } else { &t.failure };
            branch_reads(branch, responses, header, out);
        }
        _ => {}
    }
}

/// What a known txn's compares show when they all held: `mod(k) == m` on a single key means
/// k's mod revision was m (0: k did not exist) where the txn ran, which is the revision
/// before its header's if it wrote, else the header's. Pushes (key, m, revision).
fn compared<'a>(
    req: &'a EtcdRequest,
    result: &OpResult,
    header: i64,
    out: &mut Vec<(&'a str, i64, i64)>,
) {
    let (
        EtcdRequest::Txn(t),
        OpResult::Txn {
            succeeded: true, ..
        },
    ) = (req, result)
    else {
        return;
    };
    let at = if wrote(result) { header - 1 } else { header };
    for c in &t.compare {
        if let (None, CompareOp::Equal, CompareTarget::Mod(m)) =
            (&c.range.range_end, c.op, &c.target)
        {
            out.push((&c.range.key, *m, at));
        }
    }
}

/// Previous key-values a write's result shows, each with the revision at which it was current
/// (the one before the write's). Reads are [`reads`]'.
fn observed<'a>(result: &'a OpResult, header: i64, out: &mut Vec<(&'a KeyValue, i64)>) {
    match result {
        OpResult::Put { prev_kv } => out.extend(prev_kv.iter().map(|kv| (kv, header - 1))),
        OpResult::DeleteRange { prev_kvs, .. } => {
            out.extend(prev_kvs.iter().map(|kv| (kv, header - 1)))
        }
        OpResult::Txn { responses, .. } => responses.iter().for_each(|r| observed(r, header, out)),
        _ => {}
    }
}

/// What one watcher saw change at one revision: every key of its range with an event of a
/// kind it asked for (all of a revision's events come in one response, and a watcher gets
/// every event from its start up to the newest revision it heard of). An empty set: nothing of
/// those kinds changed in the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenChange {
    /// The watched range.
    pub range: KeyRange,
    /// Whether the watcher gets PUT events (no `noput` filter).
    pub puts: bool,
    /// Whether the watcher gets DELETE events (no `nodelete` filter).
    pub deletes: bool,
    /// The keys with such an event at the revision.
    pub keys: BTreeSet<String>,
}

impl SeenChange {
    /// Whether this watcher's view allows `key` to have been put (`put`) or deleted at the
    /// revision.
    fn allows(&self, key: &str, put: bool) -> bool {
        let watched = if put { self.puts } else { self.deletes };
        !watched || !self.range.contains(key) || self.keys.contains(key)
    }
}

/// What watchers saw outside the history, as evidence about the writes in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchEvidence {
    /// Key-values each current at its own mod revision (watch PUT events' key-values and every
    /// event's previous key-value).
    pub observed: Vec<KeyValue>,
    /// Deletions as (key, revision) (watch DELETE events).
    pub deleted: Vec<(String, i64)>,
    /// (revision, what a watcher saw change at it): the revisions at which it got events.
    pub changed_exactly: Vec<(i64, SeenChange)>,
    /// (revision, a watcher's range and kinds with no key): the revisions up to the newest it
    /// heard of at which it got no event. Kept apart so that a check can do without them (see
    /// [`WatchEvidence::without_silence`]).
    pub unchanged: Vec<(i64, SeenChange)>,
}

impl WatchEvidence {
    /// The same evidence without what watchers' silences say.
    pub fn without_silence(&self) -> WatchEvidence {
        WatchEvidence {
            unchanged: Vec::new(),
            ..self.clone()
        }
    }
}

impl Hints {
    /// Gathers the evidence in `history`.
    pub fn gather(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Hints {
        Self::gather_with(history, &WatchEvidence::default())
    }

    /// Gathers the evidence in `history` plus what watchers saw (`watched`).
    pub fn gather_with(
        history: &[Operation<EtcdRequest, EtcdResponse>],
        watched: &WatchEvidence,
    ) -> Hints {
        let extra = watched.observed.as_slice();
        let mut hints = Hints::default();
        for (rev, seen) in watched.changed_exactly.iter().chain(&watched.unchanged) {
            let at = hints.changed_exactly.entry(*rev).or_default();
            if !at.contains(seen) {
                at.push(seen.clone());
            }
        }
        for (key, rev) in &watched.deleted {
            hints
                .deleted_at
                .entry(*rev)
                .or_default()
                .insert(key.clone());
        }
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
        let mut all_reads: Vec<Read> = Vec::new();
        let mut compared_mods: Vec<(&str, i64, i64)> = Vec::new();
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
            reads(&op.input, result, *revision, &mut all_reads);
            compared(&op.input, result, *revision, &mut compared_mods);
        }
        for &(key, m, at) in compared_mods.iter().filter(|c| c.1 > 0) {
            // Written at m, then unchanged up to where the txn ran.
            hints
                .written_at
                .entry(m)
                .or_default()
                .insert(key.to_string());
            if at > m {
                intervals
                    .entry(key.to_string())
                    .or_default()
                    .push((m + 1, at));
            }
        }
        kvs.extend(
            all_reads
                .iter()
                .flat_map(|r| r.kvs.iter().map(|kv| (kv, r.at))),
        );
        let compared_absent: Vec<(&str, i64)> = compared_mods
            .iter()
            .filter(|&&(_, m, _)| m == 0)
            .map(|&(k, _, at)| (k, at))
            .collect();
        // A key-value created at c says its key was absent at c - 1.
        let created: BTreeSet<(&str, i64)> = kvs
            .iter()
            .filter(|(kv, _)| kv.create_revision > 1)
            .map(|(kv, _)| (kv.key.as_str(), kv.create_revision - 1))
            .collect();
        let created: Vec<(&str, i64)> = created.into_iter().collect();
        let earliest = earliest_revisions(history);
        absent_intervals(
            history,
            &earliest,
            &all_reads,
            &compared_absent,
            &created,
            &mut intervals,
        );
        let mut live: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for (kv, current_at) in kvs {
            // Alive from its create revision to where it was seen: not deleted in between.
            if kv.create_revision > 0 && current_at > kv.create_revision {
                live.entry(kv.key.clone())
                    .or_default()
                    .push((kv.create_revision + 1, current_at));
            }
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
            // Whatever created its create revision created the key.
            if kv.create_revision > 0 {
                hints
                    .written_at
                    .entry(kv.create_revision)
                    .or_default()
                    .insert(kv.key.clone());
            }
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
                        hints.pinned_revisions.insert(rev);
                    }
                }
            }
        }
        hints.max_revision = max_revision.filter(|&m| m > i64::MIN);
        hints.lease_observed_until = lease_observers(history);
        hints.lease_absence_unobserved = leases_never_missed(history);
        hints.expiry_pins = expiry_pins(history, extra, &watched.deleted, &hints.claimed);
        hints.claimed.extend(hints.expiry_pins.values().copied());
        for revs in known_puts.values_mut() {
            revs.sort_unstable();
            revs.dedup();
        }
        // Per key, the unknown-outcome requests that may put it (a txn in either branch; at
        // most one put of a key per request), with the lowest revision each can create and the
        // values it may put there.
        let mut unknown_puts: HashMap<&str, Vec<(i64, Vec<&str>)>> = HashMap::new();
        let mut put_count: HashMap<(&str, &str), usize> = HashMap::new();
        for (op, &from) in history.iter().zip(&earliest) {
            if op.output.is_some() {
                continue;
            }
            let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (k, v) in request_puts(&op.input) {
                *put_count.entry((k, v)).or_default() += 1;
                by_key.entry(k).or_default().push(v);
            }
            for (k, values) in by_key {
                unknown_puts.entry(k).or_default().push((from, values));
            }
        }
        for &(key, create, modr, version) in &snapshots {
            let known = known_puts.get(key).map_or(0, |revs| {
                let lo = revs.partition_point(|&r| r < create);
                let hi = revs.partition_point(|&r| r <= modr);
                hi - lo
            });
            // Exactly `version - known` unknown-outcome requests put the key in [create, modr]:
            // if that many could, each of them did, by `modr`.
            let missing = version - known as i64;
            let could: Vec<&Vec<&str>> = unknown_puts.get(key).map_or(Vec::new(), |list| {
                list.iter()
                    .filter(|&&(from, _)| from <= modr)
                    .map(|(_, values)| values)
                    .collect()
            });
            if missing > 0 && could.len() as i64 == missing {
                // Deadlines are looked up by (key, value): only for values no other
                // unknown-outcome request puts.
                for v in could.into_iter().flatten() {
                    if put_count.get(&(key, *v)) == Some(&1) {
                        let by = hints
                            .must_happen_by
                            .entry((key.to_string(), v.to_string()))
                            .or_insert(modr - 1);
                        *by = (*by).min(modr - 1);
                    }
                }
            }
            if known as i64 == version {
                intervals
                    .entry(key.to_string())
                    .or_default()
                    .push((create, modr));
            }
        }
        for &(key, create, modr, version) in &snapshots {
            hints
                .versions_seen
                .entry(key.to_string())
                .or_default()
                .push((modr, create, version));
        }
        for seen in hints.versions_seen.values_mut() {
            seen.sort_unstable();
            seen.dedup();
        }
        hints.known_put_revs = known_puts
            .iter()
            .map(|(k, revs)| (k.to_string(), revs.clone()))
            .collect();
        for (key, iv) in intervals {
            hints.no_unknown_puts.insert(key, merge_intervals(iv));
        }
        for (key, iv) in live {
            hints.never_deleted.insert(key, merge_intervals(iv));
        }
        hints.tighten_deadlines();
        hints
    }

    /// Moves each deadline down to the last revision the request can still create: one that
    /// no unchanged interval of its key covers and no other write claims (`allows` refuses the
    /// others). Pinned requests keep theirs (the pin is exact).
    fn tighten_deadlines(&mut self) {
        let mut tightened = Vec::new();
        for ((key, value), &by) in &self.must_happen_by {
            if self.pins.get(key).is_some_and(|p| p.contains_key(value)) {
                continue;
            }
            let intervals = self.no_unknown_puts.get(key);
            // The latest revision it can create.
            let mut rev = by + 1;
            loop {
                if let Some(&(a, _)) = intervals.and_then(|iv| {
                    let i = iv.partition_point(|&(_, b)| b < rev);
                    iv.get(i).filter(|&&(a, _)| a <= rev)
                }) {
                    rev = a - 1;
                } else if self.claimed.contains(&rev) {
                    rev -= 1;
                } else {
                    break;
                }
            }
            if rev - 1 < by {
                tightened.push(((key.clone(), value.clone()), rev - 1));
            }
        }
        self.must_happen_by.extend(tightened);
    }

    /// Whether an unknown-outcome expiry of `lease` taking effect at `state` can be left out:
    /// it would delete no key (none is attached), so it changes only the lease set, and either
    /// every request that names the lease is known and answered at a revision below `state`'s
    /// (none is left to place after it), or nothing in the history observes the lease missing.
    ///
    /// The second case, proof: take a linearization that applies the expiry here and drop it.
    /// Keys and revisions stay the same; the lease lives on. A known request naming the lease
    /// after this point succeeded in the original (none failed with "lease not found"), so it
    /// did not run while the lease was missing, and it succeeds the same way; an unknown-outcome
    /// one that failed for the missing lease changed nothing, so leave it out too; the lease is
    /// granted only once, so no grant needed it gone.
    pub fn expiry_unobservable(&self, lease: i64, state: &EtcdState) -> bool {
        (self.lease_absence_unobserved.contains(&lease)
            || self
                .lease_observed_until
                .get(&lease)
                .is_some_and(|&until| state.revision > until))
            && state.keys_with_lease(lease).is_empty()
    }

    /// Whether the keys `req` put at `after.revision` agree with the key-values seen of them:
    /// for a key-value seen with (create c, mod m, version n) where c <= rev <= m, the key
    /// written at rev has create revision c, and its version plus the known-outcome puts of it
    /// in (rev, m] is at most n (exactly n when rev = m): versions grow by one per put and the
    /// key is not deleted between c and m. A state that breaks this has no linearization.
    pub fn versions_fit(&self, req: &EtcdRequest, after: &EtcdState) -> bool {
        if self.versions_seen.is_empty() {
            return true;
        }
        let rev = after.revision;
        request_puts(req).into_iter().all(|(k, _)| {
            let (Some(seen), Some(kv)) = (self.versions_seen.get(k), after.get_at(k, rev)) else {
                return true;
            };
            if kv.mod_revision != rev {
                return true;
            }
            let known = self.known_put_revs.get(k);
            let known_in = |lo: i64, hi: i64| {
                known.map_or(0, |revs| {
                    (revs.partition_point(|&r| r <= hi) - revs.partition_point(|&r| r <= lo)) as i64
                })
            };
            let from = seen.partition_point(|&(m, _, _)| m < rev);
            seen[from..]
                .iter()
                .take_while(|&&(_, c, _)| c <= rev)
                .all(|&(m, c, n)| {
                    kv.create_revision == c
                        && kv.version + known_in(rev, m) <= n
                        && (m != rev || kv.version == n)
                })
        })
    }

    /// For an unknown-outcome request that must have taken effect: the highest revision of a
    /// state it can be applied in (see [`Hints::must_happen_by`]).
    pub fn deadline(&self, req: &EtcdRequest) -> Option<i64> {
        if self.must_happen_by.is_empty() {
            return None;
        }
        let due = |(k, v): &(&str, &str)| {
            self.must_happen_by
                .get(&(k.to_string(), v.to_string()))
                .copied()
        };
        let by = request_puts(req).iter().filter_map(due).min()?;
        let EtcdRequest::Txn(t) = req else {
            return Some(by);
        };
        // A txn that must put a value only its success branch puts took that branch, so its
        // compares held where it ran: `mod(k) == m > 0` holds only before the first known put
        // of k above m.
        let mut failure = Vec::new();
        puts_of(&t.failure, &mut failure);
        let mut success = Vec::new();
        puts_of(&t.success, &mut success);
        if !success
            .iter()
            .any(|p| due(p).is_some() && !failure.contains(p))
        {
            return Some(by);
        }
        let cas_bound = t
            .compare
            .iter()
            .filter_map(|c| match (&c.range.range_end, c.op, &c.target) {
                // (A key's mod revision returns to 0 when it is deleted, never to m > 0.)
                (None, CompareOp::Equal, CompareTarget::Mod(m)) if *m > 0 => {
                    let revs = self.known_put_revs.get(&c.range.key)?;
                    revs.get(revs.partition_point(|&r| r <= *m)).map(|&r| r - 1)
                }
                _ => None,
            })
            .min();
        Some(cas_bound.map_or(by, |c| c.min(by)))
    }

    /// The revision a pin fixes for an unknown-outcome `req`'s write, if any.
    fn pin(&self, req: &EtcdRequest) -> Option<i64> {
        self.pin_of(&request_puts(req))
    }

    /// The revision a pin fixes for a write putting `puts` (its `request_puts`), if any.
    fn pin_of(&self, puts: &[(&str, &str)]) -> Option<i64> {
        puts.iter()
            .find_map(|(k, v)| self.pins.get(*k).and_then(|m| m.get(*v)).copied())
    }

    /// The search gate of an unknown-outcome request (see `Model::unknown_gate`): writes (put,
    /// delete, txn) change a state only by creating its next revision, which
    /// [`Hints::may_create_next`] limits to unclaimed revisions ([`GATE_UNPINNED_WRITE`]) or to
    /// the write's pin ([`GATE_PINNED_WRITE`]). Other requests are not gated.
    pub fn gate(&self, req: &EtcdRequest) -> Option<u8> {
        match req {
            EtcdRequest::Put(_) | EtcdRequest::DeleteRange(_) | EtcdRequest::Txn(_) => {
                Some(if self.pin(req).is_some() {
                    GATE_PINNED_WRITE
                } else {
                    GATE_UNPINNED_WRITE
                })
            }
            _ => None,
        }
    }

    /// The gates closed at `before`: bit `g` is set when no unknown-outcome request of gate
    /// `g` may create `before.revision + 1` — exactly when [`Hints::may_create_next`] says no
    /// for every request of that gate.
    pub fn closed_gates(&self, before: &EtcdState) -> u64 {
        let rev = before.revision + 1;
        let mut closed = 0;
        if self.claimed.contains(&rev) || self.max_revision.is_some_and(|m| rev > m) {
            closed |= 1 << GATE_UNPINNED_WRITE;
        }
        if !self.pinned_revisions.contains(&rev) {
            closed |= 1 << GATE_PINNED_WRITE;
        }
        closed
    }

    /// The revision an unknown-outcome lease expiry is pinned to (see the module doc).
    fn expiry_pin(&self, req: &EtcdRequest) -> Option<i64> {
        match req {
            EtcdRequest::LeaseExpire { id } => self.expiry_pins.get(id).copied(),
            _ => None,
        }
    }

    /// Whether an unknown-outcome `req` applied to `before` may create revision
    /// `before.revision + 1` at all (checks that need no knowledge of what it writes).
    pub fn may_create_next(&self, req: &EtcdRequest, before: &EtcdState) -> bool {
        let rev = before.revision + 1;
        if let Some(p) = self.expiry_pin(req).or_else(|| self.pin(req)) {
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
        if let Some(p) = self.expiry_pin(req) {
            return p == rev;
        }
        let puts = request_puts(req);
        let pin = self.pin_of(&puts);
        if let Some(p) = pin {
            // The pin says where (its revision is claimed by it); the rest of the evidence
            // about that revision must still hold.
            if p != rev {
                return false;
            }
        } else if self.claimed.contains(&rev) || self.max_revision.is_some_and(|m| rev > m) {
            return false;
        }
        let written_now = |k: &str| {
            after
                .versions(k)
                .and_then(|v| v.last())
                .is_some_and(|v| v.revision == rev && v.live.is_some())
        };
        if let Some(keys) = self.written_at.get(&rev) {
            if !keys.iter().all(|k| written_now(k)) {
                return false;
            }
        }
        if let Some(keys) = self.deleted_at.get(&rev) {
            let deleted_now = |k: &str| {
                before.get_at(k, before.revision).is_some() && after.get_at(k, rev).is_none()
            };
            if !keys.iter().all(|k| deleted_now(k)) {
                return false;
            }
        }
        let unchanged_at_rev = |k: &str| in_intervals(self.no_unknown_puts.get(k), rev);
        // A pinned write was seen there: a read saying its keys were unchanged then is what
        // is wrong, and must be where the search fails (for its deletions too, below).
        if pin.is_none()
            && puts
                .iter()
                .any(|(k, _)| written_now(k) && unchanged_at_rev(k))
        {
            return false;
        }
        if !self.versions_fit(req, after) {
            return false;
        }
        let mut ranges = Vec::new();
        delete_ranges(req, &mut ranges);
        // Keys in a deleted range alive before and gone after (the txn branch taken).
        let deleted_now = || {
            ranges
                .iter()
                .flat_map(|range| before.range_at(range, before.revision))
                .filter(|kv| after.get_at(&kv.key, rev).is_none())
        };
        if deleted_now().any(|kv| {
            (pin.is_none() && unchanged_at_rev(&kv.key))
                || in_intervals(self.never_deleted.get(&kv.key), rev)
        }) {
            return false;
        }
        // Every key it changed in a watched range is one the watcher saw change at `rev`.
        // Keys deleted through a lease are not counted: leaving them out only allows more.
        let Some(seen) = self.changed_exactly.get(&rev) else {
            return true;
        };
        puts.iter()
            .filter(|(k, _)| written_now(k))
            .all(|(k, _)| seen.iter().all(|s| s.allows(k, true)))
            && deleted_now().all(|kv| seen.iter().all(|s| s.allows(&kv.key, false)))
    }
}

/// See [`Hints::lease_absence_unobserved`].
fn leases_never_missed(history: &[Operation<EtcdRequest, EtcdResponse>]) -> HashSet<i64> {
    let uses = super::reduce::lease_uses(history);
    let missed: HashSet<i64> = history
        .iter()
        .filter(|op| {
            matches!(
                op.output,
                Some(EtcdResponse::Error(super::types::EtcdError::LeaseNotFound))
            )
        })
        .flat_map(|op| super::reduce::leases_named(&op.input))
        .collect();
    uses.into_iter()
        .filter(|(id, u)| u.grants == 1 && !missed.contains(id))
        .map(|(id, _)| id)
        .collect()
}

/// See [`Hints::lease_observed_until`].
fn lease_observers(history: &[Operation<EtcdRequest, EtcdResponse>]) -> HashMap<i64, i64> {
    let mut until: HashMap<i64, i64> = HashMap::new();
    for (id, uses) in super::reduce::lease_uses(history) {
        if uses.grants > 1 {
            until.insert(id, i64::MAX);
        }
    }
    for op in history {
        let mut named = super::reduce::leases_named(&op.input);
        if let EtcdRequest::LeaseGrant { id, .. } = &op.input {
            named.push(*id);
        }
        let at = match &op.output {
            Some(EtcdResponse::Ok { revision, .. }) => *revision,
            _ => i64::MAX,
        };
        for l in named {
            let e = until.entry(l).or_insert(at);
            *e = (*e).max(at);
        }
    }
    until
}

/// Whether a request may delete any key.
pub(super) fn deletes_something(req: &EtcdRequest) -> bool {
    let mut ranges = Vec::new();
    delete_ranges(req, &mut ranges);
    !ranges.is_empty()
}

/// Keys of the puts in `ops` (nested ones included) that attach a lease.
fn leased_put_keys<'a>(ops: &'a [RequestOp], out: &mut Vec<&'a str>) {
    for op in ops {
        match op {
            RequestOp::Put(p) if p.lease != 0 => out.push(&p.key),
            RequestOp::Txn(t) => {
                leased_put_keys(&t.success, out);
                leased_put_keys(&t.failure, out);
            }
            _ => {}
        }
    }
}

/// For every operation, the lowest revision it can create if it writes: one above the
/// highest header revision of a known response that returned before it was called (the
/// revision never goes back, so it took effect in a state at least that new).
pub(super) fn earliest_revisions(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Vec<i64> {
    let mut returned: Vec<(u64, i64)> = history
        .iter()
        .filter_map(|op| match &op.output {
            Some(EtcdResponse::Ok { revision, .. }) => Some((op.ret, *revision)),
            _ => None,
        })
        .collect();
    returned.sort_unstable();
    // Running maximum of the header revisions, in return order.
    let mut best = i64::MIN;
    let prefix_max: Vec<i64> = returned
        .iter()
        .map(|&(_, r)| {
            best = best.max(r);
            best
        })
        .collect();
    history
        .iter()
        .map(|op| {
            let n = returned.partition_point(|&(ret, _)| ret < op.call);
            if n == 0 {
                i64::MIN
            } else {
                prefix_max[n - 1] + 1
            }
        })
        .collect()
}

/// Absent keys: a complete read at revision `v` that does not return key `k`, a held compare
/// `mod(k) == 0` at `v`, or a key-value of `k` created at `c` (absent at `v = c - 1`) says `k`
/// did not exist at `v`. Let `d` be the revision of the last known-outcome request at or below
/// `v` that may delete `k`. If no unknown-outcome request can delete `k` at or below `v` (none
/// may delete it, or each can take effect only above `v`, see [`earliest_revisions`]), and no
/// put ever attaches `k` to a lease, then no unknown-outcome put wrote `k` in `(d, v]`: nothing
/// could have deleted it again by `v`. Adds those intervals for the keys unknown-outcome puts
/// write.
fn absent_intervals(
    history: &[Operation<EtcdRequest, EtcdResponse>],
    earliest: &[i64],
    reads: &[Read],
    absent: &[(&str, i64)],
    created: &[(&str, i64)],
    intervals: &mut HashMap<String, Vec<(i64, i64)>>,
) {
    let mut keys: BTreeSet<&str> = history
        .iter()
        .filter(|op| op.output.is_none())
        .flat_map(|op| request_puts(&op.input).into_iter().map(|(k, _)| k))
        .collect();
    let mut leased = Vec::new();
    for op in history {
        match &op.input {
            EtcdRequest::Put(p) if p.lease != 0 => leased.push(p.key.as_str()),
            EtcdRequest::Txn(t) => {
                leased_put_keys(&t.success, &mut leased);
                leased_put_keys(&t.failure, &mut leased);
            }
            _ => {}
        }
    }
    for k in leased {
        keys.remove(k);
    }
    let keys_deleted_by = |req: &EtcdRequest| -> Vec<&str> {
        match req {
            EtcdRequest::DeleteRange(d) if d.range.range_end.is_none() => keys
                .get(d.range.key.as_str())
                .copied()
                .into_iter()
                .collect(),
            _ => keys
                .iter()
                .filter(|k| may_delete(req, k, 0))
                .copied()
                .collect(),
        }
    };
    // Per key: the revisions of known deleters, and the lowest revision an unknown one may
    // delete it at.
    let mut deleters: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut unknown_from: HashMap<&str, i64> = HashMap::new();
    for (op, &from) in history.iter().zip(earliest) {
        if !deletes_something(&op.input) {
            continue;
        }
        match &op.output {
            None => {
                for k in keys_deleted_by(&op.input) {
                    let e = unknown_from.entry(k).or_insert(from);
                    *e = (*e).min(from);
                }
            }
            Some(EtcdResponse::Ok { revision, .. }) => {
                for k in keys_deleted_by(&op.input) {
                    deleters.entry(k).or_default().push(*revision);
                }
            }
            Some(EtcdResponse::Error(_)) => {}
        }
    }
    for revs in deleters.values_mut() {
        revs.sort_unstable();
    }
    let mut facts: Vec<(&str, i64)> = absent
        .iter()
        .chain(created)
        .filter_map(|&(k, at)| keys.get(k).map(|&k| (k, at)))
        .collect();
    for r in reads.iter().filter(|r| r.complete) {
        let in_range: Vec<&str> = match &r.range.range_end {
            None => keys
                .get(r.range.key.as_str())
                .copied()
                .into_iter()
                .collect(),
            Some(_) => keys
                .range::<str, _>((
                    std::ops::Bound::Included(r.range.key.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|k| r.range.contains(k))
                .copied()
                .collect(),
        };
        facts.extend(
            in_range
                .into_iter()
                .filter(|k| !r.kvs.iter().any(|kv| kv.key == *k))
                .map(|k| (k, r.at)),
        );
    }
    for (k, at) in facts {
        if unknown_from.get(k).is_some_and(|&from| from <= at) {
            continue;
        }
        let d = deleters.get(k).map_or(0, |revs| {
            let i = revs.partition_point(|&x| x <= at);
            if i == 0 {
                0
            } else {
                revs[i - 1]
            }
        });
        if d < at {
            intervals
                .entry(k.to_string())
                .or_default()
                .push((d + 1, at));
        }
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
