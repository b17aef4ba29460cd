//! The clock the server reads for decisions that depend on elapsed time rather than on timers:
//! lease expiry on the leader.
//!
//! Owns: `Clock` and its two implementations: `TokioClock` (tokio's clock, which the simulator
//! controls) and `SkewedClock` (tokio's clock with a rate error, so a simulated node's clock
//! can run fast or slow).
//!
//! The clock is monotonic, as Go's `time.Now()` readings that etcd compares are: a step of the
//! node's wall clock (NTP correcting an offset) does not move it, so it cannot expire or extend
//! a lease; only the rate of the node's oscillator (drift) does.
//!
//! Must never: read the OS wall clock.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A monotonic-ish clock.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// tokio's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A node's clock rate error, changeable at run time (shared by every incarnation of the node).
#[derive(Debug, Default)]
pub struct ClockError {
    drift_ppm: AtomicI64,
}

impl ClockError {
    /// Sets the rate error (ppm; positive = fast). A new rate applies to the whole time since
    /// the clock was made, so change it only forwards in a run's story (as the simulator does).
    pub fn set_drift(&self, drift_ppm: i64) {
        self.drift_ppm.store(drift_ppm, Ordering::Relaxed);
    }
}

/// tokio's clock as seen by a node whose clock runs at a wrong rate. The rate error applies
/// from the moment it is set (the clock integrates elapsed time at the rate in force when it
/// is read), so changing it never makes the clock go back.
#[derive(Debug)]
pub struct SkewedClock {
    error: Arc<ClockError>,
    /// (tokio instant of the last reading, what the clock said then).
    last: Mutex<(Instant, Instant)>,
}

impl SkewedClock {
    /// A clock starting now with the node's (shared, changeable) error.
    pub fn new(error: Arc<ClockError>) -> Self {
        let now = Instant::now();
        SkewedClock {
            error,
            last: Mutex::new((now, now)),
        }
    }
}

/// Elapsed time as seen by a clock with `drift_ppm` rate error.
fn adjust(elapsed: Duration, drift_ppm: i64) -> Duration {
    let el = elapsed.as_micros() as i128;
    let adjusted = el + el * i128::from(drift_ppm) / 1_000_000;
    Duration::from_micros(adjusted.max(0) as u64)
}

impl Clock for SkewedClock {
    fn now(&self) -> Instant {
        let real = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = real.saturating_duration_since(last.0);
        let said = last.1 + adjust(elapsed, self.error.drift_ppm.load(Ordering::Relaxed));
        *last = (real, said);
        said
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift() {
        let ten = Duration::from_secs(10);
        assert_eq!(adjust(ten, 0), ten);
        assert_eq!(adjust(ten, 100_000), Duration::from_secs(11));
        assert_eq!(adjust(ten, -100_000), Duration::from_secs(9));
        assert_eq!(adjust(ten, -2_000_000), Duration::ZERO);
    }
}
