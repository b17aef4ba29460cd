//! The clock the server reads for decisions that depend on elapsed time: lease expiry on the
//! leader, and the rate of raft's ticks.
//!
//! Owns: the `Clock` trait and `TokioClock` (tokio's clock, which the simulator controls). A
//! clock that runs fast or slow is the simulator's (`sim::clock`); the server only reads one.
//!
//! The clock is monotonic, as Go's `time.Now()` readings that etcd compares are: a step of the
//! node's wall clock (NTP correcting an offset) does not move it, so it cannot expire or extend
//! a lease; only the rate of the node's oscillator (drift) does.
//!
//! Must never: read the OS wall clock.

use std::fmt::Debug;
use std::time::Duration;
use tokio::time::Instant;

/// A monotonic clock, possibly running at a rate other than tokio's.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now.
    fn now(&self) -> Instant;
    /// How much tokio time passes while this clock advances by `local`: a timer the node sets
    /// for `local` (raft's tick) fires after that long. Identity for a correct clock.
    fn tokio_duration(&self, local: Duration) -> Duration {
        local
    }
}

/// tokio's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
