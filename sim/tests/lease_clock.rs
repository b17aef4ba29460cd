//! The leader's clock decides lease expiry: with a leader clock running twice as fast, a lease
//! nobody keeps alive dies after about half its TTL of simulated time; on a correct clock it
//! lives at least its TTL.

use etcd_api::client::{put_request, range_request};
use etcd_api::etcdserverpb as pb;
use sim::{Fault, NodeClock};
use sim::{SimConfig, Simulation};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

fn grant(ttl: i64) -> pb::LeaseGrantRequest {
    pb::LeaseGrantRequest { ttl, id: 0 }
}

/// A put of `key` = `v` attached to `lease` (none when 0).
fn put_with_lease(key: &str, lease: i64) -> pb::PutRequest {
    pb::PutRequest {
        lease,
        ..put_request(key, "v")
    }
}

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
        let Ok(mut c) = ctx.client(&leader) else {
            return;
        };
        let Ok(lease) = c.lease.lease_grant(grant(10)).await else {
            return;
        };
        let put = put_with_lease("k", lease.into_inner().id);
        if c.kv.put(put).await.is_err() {
            return;
        }
        let t0 = tokio::time::Instant::now();
        *g.borrow_mut() = Some(Duration::ZERO);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(r) = c.kv.range(range_request("k")).await {
                if r.into_inner().kvs.is_empty() {
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

/// etcd issue 15247: a leader stalled by a slow disk loses leadership while clients keep their
/// leases alive through another member; when its disk recovers it must not revoke those leases.
#[test]
fn a_leader_stalled_by_slow_fsync_does_not_revoke_leases_on_recovery() {
    use sim::LatencyModel;
    let mut s = Simulation::new(SimConfig::new(11, 3)).unwrap();
    let leader = s.await_leader(Duration::from_secs(10)).unwrap();
    let via = s.member_names().into_iter().find(|m| *m != leader).unwrap();
    let result: Rc<RefCell<Option<Result<(), String>>>> = Rc::default();
    let out = result.clone();
    let target = via.clone();
    s.client("c0", move |ctx| async move {
        let r = async {
            let mut c = ctx.client(&target)?;
            let lease = c
                .lease
                .lease_grant(grant(5))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            c.kv.put(put_with_lease("held", lease.id))
                .await
                .map_err(|e| e.to_string())?;
            let mut keeper = c.keep_alive(lease.id).await.map_err(|e| e.to_string())?;
            // Keep the lease alive for 25 s of simulated time through a follower.
            for _ in 0..25 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let again = pb::LeaseKeepAliveRequest { id: lease.id };
                if keeper.requests.send(again).await.is_ok() {
                    let ack = keeper.responses.message();
                    let _ = tokio::time::timeout(Duration::from_millis(500), ack).await;
                }
            }
            let r =
                c.kv.range(range_request("held"))
                    .await
                    .map_err(|e| e.to_string())?;
            if r.into_inner().kvs.is_empty() {
                return Err("the kept-alive lease's key was revoked".to_string());
            }
            Ok(())
        }
        .await;
        *out.borrow_mut() = Some(r);
    })
    .unwrap();
    // Write traffic, so the leader has entries to fdatasync.
    let writer_target = s.member_names();
    s.client("writer", move |ctx| async move {
        let mut clients = Vec::new();
        for m in &writer_target {
            if let Ok(c) = ctx.client(m) {
                clients.push(c);
            }
        }
        for n in 0..100u32 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(c) = clients.get_mut((n as usize) % writer_target.len().max(1)) {
                let put = c.kv.put(put_with_lease(&format!("w{n}"), 0));
                let _ = tokio::time::timeout(Duration::from_secs(2), put).await;
            }
        }
    })
    .unwrap();
    s.run_for(Duration::from_secs(3)).unwrap();
    s.set_disk_latency(&leader, LatencyModel::slow(Duration::from_secs(6)))
        .unwrap();
    s.run_for(Duration::from_secs(12)).unwrap();
    s.set_disk_latency(&leader, LatencyModel::healthy())
        .unwrap();
    s.run_clients(Duration::from_secs(40)).unwrap();
    assert!(
        s.leader_changes(&via) >= 2,
        "the slow disk did not cost the leader its leadership"
    );
    let r = result.borrow().clone();
    assert_eq!(r, Some(Ok(())), "trace hash {}", s.trace_hash());
}
