//! The clock the server reads for decisions that depend on elapsed time rather than on timers:
//! lease expiry on the leader.
//!
//! Owns: `Clock` and its two implementations: `TokioClock` (tokio's clock, which the simulator
//! controls) and `SkewedClock` (tokio's clock with an offset and a rate error, so a simulated
//! node's clock can run fast, slow or be off).
//!
//! Must never: read the OS wall clock.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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

/// A node's clock error, changeable at run time (shared by every incarnation of the node).
#[derive(Debug, Default)]
pub struct ClockError {
    skew_ms: AtomicI64,
    drift_ppm: AtomicI64,
}

impl ClockError {
    /// Sets the offset (ms; negative = behind) and the rate error (ppm; positive = fast).
    pub fn set(&self, skew_ms: i64, drift_ppm: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
        self.drift_ppm.store(drift_ppm, Ordering::Relaxed);
    }
}

/// tokio's clock as seen by a node whose clock is off by an offset and runs at a wrong rate,
/// measured from when the clock was made (one incarnation of the node).
#[derive(Debug)]
pub struct SkewedClock {
    origin: Instant,
    error: Arc<ClockError>,
}

impl SkewedClock {
    /// A clock starting now with the node's (shared, changeable) error.
    pub fn new(error: Arc<ClockError>) -> Self {
        SkewedClock {
            origin: Instant::now(),
            error,
        }
    }
}

/// Elapsed time as seen by a clock with `skew_ms` offset and `drift_ppm` rate error.
fn adjust(elapsed: Duration, skew_ms: i64, drift_ppm: i64) -> Duration {
    let el = elapsed.as_micros() as i128;
    let adjusted = el + el * i128::from(drift_ppm) / 1_000_000 + i128::from(skew_ms) * 1000;
    Duration::from_micros(adjusted.max(0) as u64)
}

impl Clock for SkewedClock {
    fn now(&self) -> Instant {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        self.origin
            + adjust(
                elapsed,
                self.error.skew_ms.load(Ordering::Relaxed),
                self.error.drift_ppm.load(Ordering::Relaxed),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_and_drift() {
        let ten = Duration::from_secs(10);
        assert_eq!(adjust(ten, 0, 0), ten);
        assert_eq!(adjust(ten, 0, 100_000), Duration::from_secs(11));
        assert_eq!(adjust(ten, 500, 0), Duration::from_millis(10_500));
        assert_eq!(adjust(ten, 0, -100_000), Duration::from_secs(9));
        assert_eq!(adjust(Duration::from_secs(1), -5000, 0), Duration::ZERO);
    }
}
