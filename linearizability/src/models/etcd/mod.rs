//! The etcd model: revisions, MVCC reads at past revisions, compaction, leases, and
//! transactions with nested operations; exact response matching including header revisions.
//!
//! Owns: the `Model` implementation for etcd (matching observed responses against the
//! sequential semantics in `apply`). Must never depend on the server crate (its request and
//! response types are our own, in `types`), nor know about the search. There is no per-key
//! partition: one global revision orders every write.

mod apply;
pub mod certain;
mod describe;
mod hints;
pub mod reduce;
mod state;
mod types;

pub use apply::compare_holds;
pub use hints::{Hints, SeenChange, WatchEvidence};
pub use state::{EtcdState, Live, Version};
pub use types::*;

use std::sync::Arc;

use crate::history::Operation;
use crate::model::Model;

/// The etcd model.
#[derive(Debug, Clone)]
pub struct Etcd {
    /// Keep every key version since the last compaction (needed for reads at past revisions).
    pub keep_history: bool,
    /// The store's revision before the first operation (1 for a fresh etcd).
    pub initial_revision: i64,
    /// Evidence about unknown-outcome writes (see [`Hints`]); empty means none.
    pub hints: Arc<Hints>,
}

impl Default for Etcd {
    fn default() -> Self {
        Etcd {
            keep_history: true,
            initial_revision: 1,
            hints: Arc::default(),
        }
    }
}

impl Etcd {
    /// A model for `history`: keeps old versions only if some read asks for a past revision
    /// (smaller states make the search faster), and gathers [`Hints`] about unknown-outcome
    /// writes from the responses.
    pub fn for_history(history: &[Operation<EtcdRequest, EtcdResponse>]) -> Self {
        Self::for_history_with(history, &WatchEvidence::default())
    }

    /// Like [`Etcd::for_history`], also using what watchers saw (key-values, deletions, and
    /// exactly which watched keys changed at a revision) as evidence about unknown-outcome
    /// writes and lease expiries.
    pub fn for_history_with(
        history: &[Operation<EtcdRequest, EtcdResponse>],
        watched: &WatchEvidence,
    ) -> Self {
        fn past_read(op: &RequestOp) -> bool {
            match op {
                RequestOp::Range(r) => r.revision != 0,
                RequestOp::Txn(t) => t.success.iter().chain(&t.failure).any(past_read),
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
            }
        }
        let keep_history = history.iter().any(|op| match &op.input {
            EtcdRequest::Range(r) => r.revision != 0,
            EtcdRequest::Txn(t) => t.success.iter().chain(&t.failure).any(past_read),
            _ => false,
        });
        Etcd {
            keep_history,
            initial_revision: 1,
            hints: Arc::new(Hints::gather_with(history, watched)),
        }
    }

    /// Applies a request, returning the new state and etcd's response.
    pub fn apply(&self, state: &EtcdState, req: &EtcdRequest) -> (EtcdState, EtcdResponse) {
        let mut next = state.clone();
        let resp = apply::apply(&mut next, req, self.keep_history);
        (next, resp)
    }
}

impl Model for Etcd {
    type State = EtcdState;
    type Input = EtcdRequest;
    type Output = EtcdResponse;

    fn never_changes_state(&self, input: &EtcdRequest, output: &EtcdResponse) -> bool {
        fn reads_only(ops: &[RequestOp]) -> bool {
            ops.iter().all(|op| matches!(op, RequestOp::Range(_)))
        }
        match (input, output) {
            (EtcdRequest::Range(_), _) => true,
            (
                EtcdRequest::Txn(t),
                EtcdResponse::Ok {
                    result: OpResult::Txn { succeeded, .. },
                    ..
                },
            ) => reads_only(if *succeeded { &t.success } else { &t.failure }),
            // Legal only where nothing in the range exists, and then it deletes nothing.
            (
                EtcdRequest::DeleteRange(_),
                EtcdResponse::Ok {
                    result: OpResult::DeleteRange { deleted: 0, .. },
                    ..
                },
            ) => true,
            _ => false,
        }
    }

    fn init(&self) -> EtcdState {
        EtcdState::new(self.initial_revision)
    }

    fn step(
        &self,
        state: &EtcdState,
        input: &EtcdRequest,
        output: Option<&EtcdResponse>,
        next: &mut Vec<EtcdState>,
    ) {
        // A lease granted with id 0 gets its id from the server: take it from the response.
        let chosen;
        let input = match (input, output) {
            (
                EtcdRequest::LeaseGrant { id: 0, ttl },
                Some(EtcdResponse::Ok {
                    result: OpResult::LeaseGrant { id, .. },
                    ..
                }),
            ) => {
                chosen = EtcdRequest::LeaseGrant { id: *id, ttl: *ttl };
                &chosen
            }
            _ => input,
        };
        // The header revision says where a known response can be linearized: at the current
        // revision for a read-only request, right after it for a write. Checking this first
        // spares applying (and copying the store for) every misplaced candidate.
        if let Some(EtcdResponse::Ok { revision, result }) = output {
            let fits = match result {
                OpResult::LeaseRevoke => {
                    *revision == state.revision || *revision == state.revision + 1
                }
                r if hints::wrote(r) => *revision == state.revision + 1,
                _ => *revision == state.revision,
            };
            if !fits {
                return;
            }
        }
        if let (None, EtcdRequest::LeaseExpire { id }) = (output, input) {
            if self.hints.expiry_unobservable(*id, state) {
                next.push(state.clone());
                return;
            }
        }
        if output.is_none() && !self.hints.may_create_next(input, state) {
            // It cannot have written here; whatever else it did changes nothing.
            if matches!(
                input,
                EtcdRequest::Put(_) | EtcdRequest::DeleteRange(_) | EtcdRequest::Txn(_)
            ) {
                next.push(state.clone());
                return;
            }
        }
        let (after, resp) = self.apply(state, input);
        match output {
            // An unknown write cannot create a revision another write is known to have created.
            None if !self.hints.allows(input, state, &after) => next.push(state.clone()),
            None => next.push(after),
            Some(o) if *o == resp && self.hints.versions_fit(input, &after) => next.push(after),
            Some(_) => {}
        }
    }

    fn unknown_recent_first(&self) -> bool {
        true
    }

    fn certain_violation(
        &self,
        history: &[Operation<EtcdRequest, EtcdResponse>],
    ) -> Option<(usize, String)> {
        certain::find(history).map(|v| (v.op, v.reason))
    }

    fn unknown_deadline(&self, input: &EtcdRequest) -> Option<i64> {
        self.hints.deadline(input)
    }

    fn unknown_gate(&self, input: &EtcdRequest) -> Option<u8> {
        self.hints.gate(input)
    }

    fn closed_gates(&self, state: &EtcdState) -> u64 {
        // `step` answers an unknown write with the state unchanged when `may_create_next`
        // says no, which is what a closed gate means.
        self.hints.closed_gates(state)
    }

    fn progress(&self, state: &EtcdState) -> Option<i64> {
        Some(state.revision)
    }

    fn progress_bound(&self, _input: &EtcdRequest, output: &EtcdResponse) -> Option<i64> {
        match output {
            // The revision after the request is the header's; a write created it.
            EtcdResponse::Ok { revision, result } => Some(if hints::wrote(result) {
                revision - 1
            } else {
                *revision
            }),
            EtcdResponse::Error(_) => None,
        }
    }

    fn describe_operation(&self, input: &EtcdRequest, output: Option<&EtcdResponse>) -> String {
        let out = output.map_or_else(|| "?".to_string(), describe::response);
        format!("{} -> {out}", describe::request(input))
    }

    fn describe_state(&self, s: &EtcdState) -> String {
        let mut parts = vec![format!("revision {}", s.revision)];
        if s.compact_revision > 0 {
            parts.push(format!("compacted at {}", s.compact_revision));
        }
        for (k, versions) in s.keys() {
            if let Some(v) = versions.last() {
                if let Some(l) = &v.live {
                    let lease = if l.lease != 0 {
                        format!(" lease={}", l.lease)
                    } else {
                        String::new()
                    };
                    parts.push(format!(
                        "{k:?}={:?} (create={} mod={} version={}{lease})",
                        l.value, l.create_revision, v.revision, l.version
                    ));
                }
            }
        }
        if s.lease_count() > 0 {
            let ls: Vec<String> = s
                .leases()
                .map(|(id, ttl)| format!("{id}(ttl {ttl})"))
                .collect();
            parts.push(format!("leases {}", ls.join(" ")));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests;
