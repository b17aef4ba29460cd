//! Errors of the simulator's own API (not of the server under test, whose failures are
//! recorded per member and in the trace).
//!
//! Owns: `SimError`. Must never: carry a panic where an error can be returned.

use std::time::Duration;
use thiserror::Error;

/// What can go wrong driving a simulation.
#[derive(Debug, Error)]
pub enum SimError {
    /// The world was configured with something it cannot run.
    #[error("invalid simulation config: {0}")]
    Config(String),
    /// A member's flags were rejected by the server's flag parser.
    #[error("flags for member {member} rejected: {message}")]
    Flags {
        /// The member.
        member: String,
        /// clap's message.
        message: String,
    },
    /// A name that is not a member (or client) of this simulation.
    #[error("unknown host {0:?}")]
    UnknownHost(String),
    /// A condition did not hold within the allowed simulated time.
    #[error("timed out after {after:?} of simulated time waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// turmoil reported a failure (a host's software returned an error).
    #[error("turmoil: {0}")]
    Turmoil(String),
}
