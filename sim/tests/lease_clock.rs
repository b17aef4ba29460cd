//! The leader's clock decides lease expiry: with a leader clock running twice as fast, a lease
//! nobody keeps alive dies after about half its TTL of simulated time; on a correct clock it
//! lives at least its TTL.

use sim::faults::{Fault, NodeClock};
use sim::{SimConfig, Simulation};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Grants a 10 s lease, attaches a key, and reports when (sim time) the key disappeared.
fn key_lifetime(seed: u64, leader_drift_ppm: i64) -> Duration {
    let mut s = Simulation::new(SimConfig::new(seed, 3)).unwrap();
    let leader = s.await_leader(Duration::from_secs(10)).unwrap();
    s.apply(Fault::Clock {
        node: leader.clone(),
        clock: NodeClock {
            skew_ms: 0,
            drift_ppm: leader_drift_ppm,
        },
    })
    .unwrap();
    let granted_at: Rc<RefCell<Option<Duration>>> = Rc::default();
    let gone_at: Rc<RefCell<Option<Duration>>> = Rc::default();
    let (g, d) = (granted_at.clone(), gone_at.clone());
    let start = s.elapsed();
    s.client("c0", move |ctx| async move {
        let Ok(mut c) = ctx.client(&leader).await else {
            return;
        };
        let Ok(lease) = c.lease_grant(10, None).await else {
            return;
        };
        let opts = etcd_client::PutOptions::new().with_lease(lease.id());
        if c.put("k", "v", Some(opts)).await.is_err() {
            return;
        }
        let t0 = tokio::time::Instant::now();
        *g.borrow_mut() = Some(Duration::ZERO);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(r) = c.get("k", None).await {
                if r.kvs().is_empty() {
                    *d.borrow_mut() = Some(t0.elapsed());
                    return;
                }
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return;
            }
        }
    })
    .unwrap();
    s.run_clients(Duration::from_secs(40)).unwrap();
    assert!(
        granted_at.borrow().is_some(),
        "the lease was never granted (started {start:?})"
    );
    let gone = *gone_at.borrow();
    gone.expect("the key outlived its lease by more than 20 s")
}

#[test]
fn a_fast_leader_clock_expires_leases_early_a_correct_one_does_not() {
    let correct = key_lifetime(5, 0);
    assert!(
        correct >= Duration::from_secs(10) && correct <= Duration::from_secs(12),
        "correct clock: key lived {correct:?} for a 10 s lease"
    );
    let fast = key_lifetime(5, 1_000_000);
    assert!(
        fast < Duration::from_secs(7),
        "a leader clock twice as fast should expire the 10 s lease in ~5 s, key lived {fast:?}"
    );
}
