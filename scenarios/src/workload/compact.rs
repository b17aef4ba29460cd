//! Periodic compaction, as etcd's robustness traffic runs beside its clients: one compactor
//! client compacts a few revisions below the newest revision it has seen, every period.
//!
//! Owns: the compactor's request choice. Its requests go through the same closed-loop driver
//! and recorder as every traffic client, so the checker sees each compaction (and the
//! `compacted` / `future revision` errors it may answer) in the history.
//!
//! Must never: draw randomness from anything but its `workload/k0` stream.

use super::Traffic;
use linearizability::models::etcd::{EtcdRequest, EtcdResponse, KeyRange, RangeRequest};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// At most this many revisions behind the newest seen (etcd's robustness keeps 0-100).
const MAX_BEHIND: i64 = 100;

/// The compactor's traffic.
#[derive(Debug, Default)]
pub struct Compactor {
    /// The newest revision an answer has shown.
    newest: i64,
}

impl Traffic for Compactor {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, EtcdRequest, bool) {
        if self.newest <= 1 {
            // Learn the revision first: a one-key read of anything.
            let req = EtcdRequest::Range(RangeRequest {
                range: KeyRange::range("/", "0"),
                limit: 1,
                keys_only: true,
                ..Default::default()
            });
            return ("compact-probe", req, false);
        }
        let behind = rng.gen_range(0..=MAX_BEHIND);
        let revision = (self.newest - behind).max(1);
        ("compact", EtcdRequest::Compact { revision }, false)
    }

    fn observe(&mut self, _req: &EtcdRequest, resp: Option<&EtcdResponse>) {
        if let Some(EtcdResponse::Ok { revision, .. }) = resp {
            self.newest = self.newest.max(*revision);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn it_probes_then_compacts_below_what_it_saw() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut c = Compactor::default();
        assert_eq!(c.next(&mut rng).0, "compact-probe");
        c.observe(
            &EtcdRequest::Compact { revision: 1 },
            Some(&EtcdResponse::Ok {
                revision: 500,
                result: linearizability::models::etcd::OpResult::Compact,
            }),
        );
        for _ in 0..50 {
            let (kind, req, _) = c.next(&mut rng);
            assert_eq!(kind, "compact");
            let EtcdRequest::Compact { revision } = req else {
                panic!("not a compaction: {req:?}");
            };
            assert!((400..=500).contains(&revision), "{revision}");
        }
    }
}
