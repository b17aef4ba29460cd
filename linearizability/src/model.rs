//! The `Model` trait: the sequential specification a history is checked against.
//!
//! Owns: the contract between models and the checker. Must never contain checker logic or any
//! concrete model.

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::Operation;

/// A sequential specification.
///
/// Models may be nondeterministic: [`Model::step`] reports every state the object may be in
/// after the operation. States are compared with `Eq` and hashed with `Hash`; two equal states
/// must behave identically for all future operations.
pub trait Model: Sync {
    /// The object's state.
    type State: Clone + Eq + Hash + Debug + Send + Sync;
    /// A request.
    type Input: Debug + Sync;
    /// A response.
    type Output: Debug + Sync;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// Appends to `next` every state the object may be in after applying `input` in `state`
    /// and answering `output`. Appending nothing means the operation cannot be linearized here.
    ///
    /// `output == None` means the response is unknown: report the states the operation leads to
    /// if it takes effect now, whatever it answered. Contract: for `None` this must append at
    /// least one state (an operation can always be answered somehow); the possibility that the
    /// operation never took effect is handled by the checker (it places it after everything).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
        next: &mut Vec<Self::State>,
    );

    /// Whether an operation with this output leaves every state in which it is legal unchanged
    /// (a read; a compare-and-set that failed). Only such an operation is placed without a
    /// choice point when it fits (see `checker::search`): a write that happens to leave the
    /// current state as it is (writing the value already there) is not one, since placed later
    /// it would change what follows. Must be sound; `false` is always safe.
    fn never_changes_state(&self, _input: &Self::Input, _output: &Self::Output) -> bool {
        false
    }

    /// An optional progress measure that never decreases along any step (etcd: the revision).
    /// Together with [`Model::progress_bound`] it lets the checker abandon a branch as soon as
    /// some unplaced operation can no longer be placed.
    fn progress(&self, _state: &Self::State) -> Option<i64> {
        None
    }

    /// For an operation with a known response: the highest progress of a state in which it can
    /// be applied (etcd: the response's header revision). `None` means no bound. Must be sound:
    /// `step` from a state with higher progress must never accept the operation.
    fn progress_bound(&self, _input: &Self::Input, _output: &Self::Output) -> Option<i64> {
        None
    }

    /// For an unknown-outcome operation the responses prove took effect: the highest progress
    /// of a state in which it can be applied (its deadline). `None` means it may never have
    /// happened. Must be sound: no linearization applies it later or leaves it out.
    fn unknown_deadline(&self, _input: &Self::Input) -> Option<i64> {
        None
    }

    /// Whether the search should try unknown-outcome operations latest call first (instead of
    /// earliest first) when no known-outcome operation fits. Right for models where every
    /// write is pinned in time by the revisions it creates (etcd): the most recently called
    /// unknown write is then the likeliest to have just taken effect, and one called long ago
    /// that was not needed yet probably never took effect. Only the order changes, never the
    /// verdict.
    fn unknown_recent_first(&self) -> bool {
        false
    }

    /// For an unknown-outcome operation: its gate (0..64), or `None` for none. Operations of
    /// one gate share a cheap test, [`Model::closed_gates`], of whether they can change a given
    /// state at all; the search does not try them where they cannot. Only speed changes.
    fn unknown_gate(&self, _input: &Self::Input) -> Option<u8> {
        None
    }

    /// The gates closed at `state` (bit `g` for gate `g`). Must be sound: from `state`, `step`
    /// of an unknown-outcome operation of a closed gate yields no state but `state` itself.
    fn closed_gates(&self, _state: &Self::State) -> u64 {
        0
    }

    /// A violation that needs no search, if the model can see one in near-linear time: the
    /// operation that cannot be placed (index into `history`) and why. Must be sound: `Some`
    /// only if no linearization exists (the search would say not linearizable too).
    fn certain_violation(
        &self,
        _history: &[Operation<Self::Input, Self::Output>],
    ) -> Option<(usize, String)> {
        None
    }

    /// Splits the history into independently checkable sub-histories (P-compositionality), as
    /// lists of operation indices. `None` checks the whole history as one.
    fn partition(
        &self,
        _history: &[Operation<Self::Input, Self::Output>],
    ) -> Option<Vec<Vec<usize>>> {
        None
    }

    /// Human-readable text for an operation (for explanations and the HTML view).
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(o) => format!("{input:?} -> {o:?}"),
            None => format!("{input:?} -> ?"),
        }
    }

    /// Human-readable text for a state.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}
