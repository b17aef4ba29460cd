//! The fsync latency model of one simulated disk.
//!
//! Owns: the distribution a `sync_data`/`sync_dir` latency is drawn from (fixed, or log-normal
//! fitted to a p50 and a p99), sampled from the node's seeded disk stream.
//!
//! Must never: sample from anything but the `ChaCha8Rng` it is handed.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// z-score of the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// No single fsync takes longer than this, whatever the distribution's tail says.
pub const MAX_SYNC_LATENCY: Duration = Duration::from_secs(120);

/// How long an fsync/fdatasync takes on a node's disk. Changeable mid-run
/// ([`crate::SimDisk::set_latency`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyModel {
    /// Every sync takes exactly this long.
    Fixed(Duration),
    /// Log-normal with the given median and 99th percentile (p99 ≥ p50), the usual shape of
    /// storage latency: most syncs near p50, a long tail.
    LogNormal {
        /// Median.
        p50: Duration,
        /// 99th percentile.
        p99: Duration,
    },
}

impl Default for LatencyModel {
    /// A healthy SSD: p50 1 ms, p99 4 ms (etcd's guidance: WAL fsync p99 < 10 ms).
    fn default() -> Self {
        LatencyModel::healthy()
    }
}

impl LatencyModel {
    /// A healthy SSD: p50 1 ms, p99 4 ms.
    pub fn healthy() -> Self {
        LatencyModel::LogNormal {
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(4),
        }
    }

    /// A disk whose syncs take about `p50` (p99 = 1.5 × p50): a stalled or overloaded disk.
    pub fn slow(p50: Duration) -> Self {
        LatencyModel::LogNormal {
            p50,
            p99: p50 + p50 / 2,
        }
    }

    /// Draws one latency.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Duration {
        let d = match *self {
            LatencyModel::Fixed(d) => d,
            LatencyModel::LogNormal { p50, p99 } => {
                let median = p50.as_secs_f64();
                if median <= 0.0 {
                    return Duration::ZERO;
                }
                let ratio = (p99.as_secs_f64() / median).max(1.0);
                let sigma = ratio.ln() / Z99;
                let secs = median * (sigma * standard_normal(rng)).exp();
                Duration::try_from_secs_f64(secs).unwrap_or(MAX_SYNC_LATENCY)
            }
        };
        // Round to whole microseconds so the trace prints stable values.
        Duration::from_micros(d.min(MAX_SYNC_LATENCY).as_micros() as u64)
    }
}

/// Box–Muller: one draw from N(0, 1).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lognormal_matches_its_percentiles() {
        let m = LatencyModel::LogNormal {
            p50: Duration::from_millis(10),
            p99: Duration::from_millis(100),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut v: Vec<Duration> = (0..20_000).map(|_| m.sample(&mut rng)).collect();
        v.sort();
        let p50 = v[v.len() / 2].as_secs_f64();
        let p99 = v[v.len() * 99 / 100].as_secs_f64();
        assert!((0.009..0.011).contains(&p50), "p50 {p50}");
        assert!((0.085..0.115).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn fixed_is_fixed() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = Duration::from_millis(3);
        assert_eq!(LatencyModel::Fixed(d).sample(&mut rng), d);
    }
}
