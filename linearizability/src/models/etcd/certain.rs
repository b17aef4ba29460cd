//! Certain violations: anomalies of an etcd history that no linearization can explain, found in
//! O(n log n) before any search.
//!
//! Owns: the near-linear checks below, each relying only on facts every linearization of an
//! etcd history obeys: a known response's header is the store's revision right after the
//! request (a write created it), the revision never goes back, an operation that returned
//! before another was called comes first, and a read at revision v sees the newest version of
//! each key at or below v. The checks:
//! - **revision went back**: operation A returned header `ra` before B was called, and B
//!   answered `rb < ra` (or `rb <= ra` when B created `rb`);
//! - **revision created twice**: two known writes answered the same header revision;
//! - **read from the future**: a read at `v` returned a key-value modified above `v`;
//! - **value nobody wrote**: a read returned a (key, value) that no request in the history
//!   puts, or that the known write which created its mod revision did not put;
//! - **missed write**: a read at `v` returned key k modified at `m`, and a known write put k at
//!   a revision in `(m, v]`.
//!
//! Reads inside txns that wrote are not used (see `hints::reads`). Must never report what some
//! linearization could explain: the search stays the judge of everything else (unknown
//! outcomes, lease expiries, values a later write could have restored).

use std::collections::{HashMap, HashSet};

use super::hints::{known_puts, reads, request_puts, wrote, Read};
use super::types::{EtcdRequest, EtcdResponse, OpResult};
use crate::history::Operation;

/// A violation found without search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertainViolation {
    /// The operation that cannot be placed (index into the history).
    pub op: usize,
    /// Why, naming the other operations involved.
    pub reason: String,
}

/// A known successful response: index, times, header, whether it created its header.
struct Known {
    index: usize,
    call: u64,
    ret: u64,
    header: i64,
    created: bool,
}

fn known_ops(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Vec<Known> {
    history
        .iter()
        .enumerate()
        .filter_map(|(index, op)| match &op.output {
            Some(EtcdResponse::Ok { revision, result }) => Some(Known {
                index,
                call: op.call,
                ret: op.ret,
                header: *revision,
                created: creates(&op.input, result),
            }),
            _ => None,
        })
        .collect()
}

/// Whether a known request created its header revision (a lease revoke may or may not have:
/// it does only if the lease had keys, so it is not counted).
fn creates(req: &EtcdRequest, result: &OpResult) -> bool {
    matches!(
        req,
        EtcdRequest::Put(_) | EtcdRequest::DeleteRange(_) | EtcdRequest::Txn(_)
    ) && wrote(result)
}

/// The violation whose operation returns first (then the lowest index): the one a reader meets
/// first on the timeline.
pub fn find(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Option<CertainViolation> {
    let known = known_ops(history);
    let mut found = Vec::new();
    revision_went_back(&known, &mut found);
    revision_created_twice(&known, &mut found);
    reads_against_writes(history, &mut found);
    found.into_iter().min_by_key(|v| (history[v.op].ret, v.op))
}

/// Revision went back: sweeps the operations by call time against the highest header among
/// those that returned before.
fn revision_went_back(known: &[Known], out: &mut Vec<CertainViolation>) {
    let mut by_ret: Vec<&Known> = known.iter().collect();
    by_ret.sort_by_key(|k| (k.ret, k.index));
    // Highest (header, index) among the first i operations by return time.
    let mut best: Option<(i64, usize)> = None;
    let prefix: Vec<(i64, usize)> = by_ret
        .iter()
        .map(|k| {
            let b = match best {
                Some((h, i)) if h >= k.header => (h, i),
                _ => (k.header, k.index),
            };
            best = Some(b);
            b
        })
        .collect();
    for b in known {
        let n = by_ret.partition_point(|k| k.ret < b.call);
        let Some(&(ra, a)) = n.checked_sub(1).map(|i| &prefix[i]) else {
            continue;
        };
        let back = if b.created {
            b.header <= ra
        } else {
            b.header < ra
        };
        if back {
            out.push(CertainViolation {
                op: b.index,
                reason: format!(
                    "revision went back: it {} revision {}, but operation #{a} had already returned revision {ra} before it was called",
                    if b.created { "created" } else { "answered at" },
                    b.header
                ),
            });
        }
    }
}

/// Revision created twice: of two known writes answering the same header, the one returning
/// later is reported.
fn revision_created_twice(known: &[Known], out: &mut Vec<CertainViolation>) {
    let mut creators: Vec<&Known> = known.iter().filter(|k| k.created).collect();
    creators.sort_by_key(|k| (k.header, k.ret, k.index));
    for pair in creators.windows(2) {
        if pair[0].header == pair[1].header {
            out.push(CertainViolation {
                op: pair[1].index,
                reason: format!(
                    "revision created twice: operation #{} also created revision {}",
                    pair[0].index, pair[0].header
                ),
            });
        }
    }
}

/// (key, value) pairs a request put.
type Puts<'a> = Vec<(&'a str, &'a str)>;

/// Read from the future, value nobody wrote, missed write.
fn reads_against_writes(
    history: &[Operation<EtcdRequest, EtcdResponse>],
    out: &mut Vec<CertainViolation>,
) {
    // Every (key, value) any request may put, whatever its outcome.
    let mut any_put: HashSet<(&str, &str)> = HashSet::new();
    // Revision to (writer, what it put), for known writes.
    let mut creator: HashMap<i64, (usize, Puts)> = HashMap::new();
    // Key to the sorted (revision, writer) of its known puts.
    let mut puts_of: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
    let mut all_reads: Vec<(usize, Read)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        any_put.extend(request_puts(&op.input));
        let Some(EtcdResponse::Ok { revision, result }) = &op.output else {
            continue;
        };
        if creates(&op.input, result) {
            let puts = known_puts(&op.input, result);
            for &(k, _) in &puts {
                puts_of.entry(k).or_default().push((*revision, i));
            }
            creator.entry(*revision).or_insert((i, puts));
        }
        let mut rs = Vec::new();
        reads(&op.input, result, *revision, &mut rs);
        all_reads.extend(rs.into_iter().map(|r| (i, r)));
    }
    for list in puts_of.values_mut() {
        list.sort_unstable();
    }
    for (i, read) in &all_reads {
        for kv in read.kvs {
            let (k, m, v) = (kv.key.as_str(), kv.mod_revision, read.at);
            let reason = if m > v {
                Some(format!(
                    "read from the future: it read revision {v} and returned {k} modified at {m}"
                ))
            } else if !any_put.contains(&(k, kv.value.as_str())) {
                Some(format!(
                    "value nobody wrote: it returned {k}={:?}, which no request in the history puts",
                    kv.value
                ))
            } else if let Some((w, _)) = creator
                .get(&m)
                .filter(|(_, puts)| !puts.contains(&(k, kv.value.as_str())))
            {
                Some(format!(
                    "value nobody wrote: it returned {k}={:?} modified at {m}, but operation #{w}, which created revision {m}, did not put that",
                    kv.value
                ))
            } else {
                puts_of.get(k).and_then(|list| {
                    let j = list.partition_point(|&(r, _)| r <= m);
                    list.get(j).filter(|&&(r, _)| r <= v).map(|&(r, w)| {
                        format!(
                            "missed write: it read revision {v} and returned {k} modified at {m}, but operation #{w} put {k} at revision {r}"
                        )
                    })
                })
            };
            if let Some(reason) = reason {
                out.push(CertainViolation { op: *i, reason });
                break;
            }
        }
    }
}
