//! History types: the operations a checker consumes, independent of any model.
//!
//! Owns: the serde representation of an operation (client, call/return time, input, output or
//! "unknown outcome") and structural validation. Must never interpret inputs or outputs (that is
//! the model's job) nor depend on the server or simulator crates.

use serde::{Deserialize, Serialize};

/// One client operation as observed from outside the system.
///
/// Times are opaque monotonically comparable numbers (nanoseconds, simulator ticks or line
/// numbers). Two operations are concurrent unless one's `ret` is strictly smaller than the
/// other's `call`.
///
/// An operation whose `output` is `None` has an *unknown outcome* (the request failed
/// indeterminately or timed out): it may or may not have taken effect, at any time after `call`.
/// The checker treats its return time as infinity; `ret` is then only the time the client gave
/// up, kept for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation<I, O> {
    /// The client (process) that issued the operation; used for display only.
    pub client: u64,
    /// Invocation time.
    pub call: u64,
    /// Completion time (for unknown-outcome operations: when the client gave up).
    pub ret: u64,
    /// The request.
    pub input: I,
    /// The response, or `None` when the outcome is unknown.
    #[serde(default = "none")]
    pub output: Option<O>,
}

fn none<O>() -> Option<O> {
    None
}

impl<I, O> Operation<I, O> {
    /// An operation that completed with a known response.
    pub fn new(client: u64, call: u64, ret: u64, input: I, output: O) -> Self {
        Operation {
            client,
            call,
            ret,
            input,
            output: Some(output),
        }
    }

    /// An operation whose outcome is unknown (timed out / failed indeterminately).
    pub fn unknown(client: u64, call: u64, gave_up: u64, input: I) -> Self {
        Operation {
            client,
            call,
            ret: gave_up,
            input,
            output: None,
        }
    }

    /// Whether the outcome of this operation is unknown.
    pub fn is_unknown(&self) -> bool {
        self.output.is_none()
    }
}

/// A problem with the structure of a history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// An operation returned before it was called.
    #[error("operation {index} (client {client}) returns at {ret}, before its call at {call}")]
    ReturnBeforeCall {
        /// Index of the operation in the history.
        index: usize,
        /// Its client.
        client: u64,
        /// Its call time.
        call: u64,
        /// Its return time.
        ret: u64,
    },
}

/// Checks that every known-outcome operation returns no earlier than it is called.
pub fn validate<I, O>(ops: &[Operation<I, O>]) -> Result<(), HistoryError> {
    for (index, op) in ops.iter().enumerate() {
        if op.output.is_some() && op.ret < op.call {
            return Err(HistoryError::ReturnBeforeCall {
                index,
                client: op.client,
                call: op.call,
                ret: op.ret,
            });
        }
    }
    Ok(())
}

/// A time window during which a fault was active, for the HTML view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// Start time (same unit as operation times).
    pub start: u64,
    /// End time.
    pub end: u64,
    /// What the fault was ("partition n1|n2,n3", "crash n2", ...).
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_return_before_call() {
        let ops = vec![Operation::new(0, 5, 3, (), ())];
        assert!(matches!(
            validate(&ops),
            Err(HistoryError::ReturnBeforeCall { index: 0, .. })
        ));
        let ok = vec![
            Operation::new(0, 3, 3, (), ()),
            Operation::unknown(1, 9, 2, ()),
        ];
        assert_eq!(validate(&ok), Ok(()));
    }

    #[test]
    fn serde_round_trip_with_missing_output() {
        let op: Operation<u32, u32> =
            serde_json::from_str(r#"{"client":1,"call":2,"ret":3,"input":7}"#).unwrap();
        assert!(op.is_unknown());
        let back: Operation<u32, u32> =
            serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(op, back);
    }
}
