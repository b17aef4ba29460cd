//! Seeded randomness: one independent `ChaCha8Rng` stream per concern, all derived from the
//! run's seed.
//!
//! Owns: the mapping from (seed, concern name) to a random stream, so that adding draws to one
//! concern (say, the fault schedule) never reshuffles another (the workload). Concerns used by
//! the simulator: `turmoil` (tokio's and turmoil's own RNG), `network`, `faults`, `workload`,
//! `disk/<node>`, `raft/<node>` (the seed handed to the member in `World::seed`).
//!
//! Must never: draw from `thread_rng`, `rand::random`, the OS, or the wall clock.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The run's seed and the streams derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    seed: u64,
}

/// FNV-1a: a stable 64-bit hash of a concern's name (std's hasher is not stable across
/// releases, and must not decide a replay).
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Seeds {
    /// Streams for the run with this seed.
    pub fn new(seed: u64) -> Self {
        Seeds { seed }
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The independent stream for `concern`: same seed and name, same stream.
    pub fn stream(&self, concern: &str) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stable_hash(concern));
        rng
    }

    /// A 64-bit value derived from the stream for `concern` (e.g. a member's `World::seed`).
    pub fn derive(&self, concern: &str) -> u64 {
        use rand::RngCore;
        self.stream(concern).next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_stable_and_independent() {
        let s = Seeds::new(7);
        assert_eq!(s.stream("a").next_u64(), s.stream("a").next_u64());
        assert_ne!(s.stream("a").next_u64(), s.stream("b").next_u64());
        assert_ne!(
            Seeds::new(8).stream("a").next_u64(),
            s.stream("a").next_u64()
        );
    }
}
