//! Simulated node clocks: the monotonic clock a member's server reads (lease expiry, raft's
//! tick rate) when its oscillator runs fast or slow.
//!
//! Fault model: a node's clock has a rate error (drift, ppm; positive = fast), set and changed
//! at run time by a `clock` fault and shared by every incarnation of the node. The wall-clock
//! step (skew) of that fault is the world's (`Simulation::wall_clock`): a step moves no
//! monotonic clock, as in etcd's Go.
//!
//! Guarantees: readings never go back (a new rate applies from the moment it is set); a timer
//! the node sets for `d` of its own time fires after `d / (1 + drift)` of tokio's, so a fast
//! node ticks raft faster and times elections out sooner, a slow one later; with no drift the
//! clock is tokio's exactly. Deterministic: no randomness, no OS time.

use crate::{SimError, Simulation};
use etcd_server::seam::Clock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

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

    fn drift(&self) -> i64 {
        self.drift_ppm.load(Ordering::Relaxed)
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

/// How much true time passes while a clock with `drift_ppm` advances by `local`.
fn true_time(local: Duration, drift_ppm: i64) -> Duration {
    let rate = 1_000_000 + i128::from(drift_ppm);
    if rate <= 0 {
        return Duration::MAX;
    }
    let us = local.as_micros() as i128 * 1_000_000 / rate;
    Duration::from_micros(us.clamp(0, i128::from(u64::MAX)) as u64)
}

impl Clock for SkewedClock {
    fn now(&self) -> Instant {
        let real = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = real.saturating_duration_since(last.0);
        let said = last.1 + adjust(elapsed, self.error.drift());
        *last = (real, said);
        said
    }

    fn tokio_duration(&self, local: Duration) -> Duration {
        true_time(local, self.error.drift())
    }
}

/// A node's simulated wall clock: `epoch + elapsed × (1 + drift_ppm / 10⁶) + skew`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeClock {
    /// Offset in milliseconds (negative: behind).
    pub skew_ms: i64,
    /// Rate error in parts per million (positive: runs fast).
    pub drift_ppm: i64,
}

impl Simulation {
    /// Sets the node's clock: its rate (the server's monotonic clock, so lease expiry and
    /// raft's ticks) and its wall-clock step.
    pub(crate) fn set_node_clock(&mut self, node: &str, clock: NodeClock) -> Result<(), SimError> {
        self.member(node)?.clock.set_drift(clock.drift_ppm);
        self.clocks.insert(node.to_string(), clock);
        Ok(())
    }

    /// The simulated wall clock of `node` (see [`NodeClock`]): what a wall-clock read on that
    /// node would return, as a duration since the Unix epoch.
    pub fn wall_clock(&self, node: &str) -> Duration {
        let c = self.clocks.get(node).copied().unwrap_or_default();
        let drifted = adjust(self.elapsed(), c.drift_ppm).as_micros() as i128;
        let epoch = self.turmoil_epoch().as_micros() as i128;
        let us = epoch + drifted + i128::from(c.skew_ms) * 1000;
        Duration::from_micros(us.max(0) as u64)
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

    #[test]
    fn a_fast_clocks_timers_fire_early_and_a_slow_ones_late() {
        let tick = Duration::from_millis(100);
        assert_eq!(true_time(tick, 0), tick);
        // 25% fast: 100 ms of its time pass in 80 ms.
        assert_eq!(true_time(tick, 250_000), Duration::from_millis(80));
        // 20% slow: in 125 ms.
        assert_eq!(true_time(tick, -200_000), Duration::from_millis(125));
        for drift in [-300_000, -10_000, 0, 10_000, 500_000] {
            let back = adjust(true_time(Duration::from_secs(7), drift), drift);
            let err = back.abs_diff(Duration::from_secs(7));
            assert!(err <= Duration::from_micros(2), "{drift}: {back:?}");
        }
    }
}
