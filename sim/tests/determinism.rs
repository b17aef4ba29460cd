//! The proof of determinism: the same seed gives a byte-identical trace, another seed a
//! different one, for a scenario with a writing client, a leader partition, a crash and
//! restart, and a slow-fsync window.

use sim::{LatencyModel, SimConfig, Simulation};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tracing::Level;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs the scenario and returns (trace hash, trace lines, acknowledged writes).
fn scenario(seed: u64, members: usize) -> (String, Vec<String>, usize) {
    let cfg = SimConfig::new(seed, members).trace_level(Level::DEBUG);
    let mut s = Simulation::new(cfg).unwrap();
    let leader = s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let names = s.member_names();
    let writes = sim::workload::start_writer(
        &mut s,
        "c0",
        names.clone(),
        Duration::from_millis(20),
        stop.clone(),
    )
    .unwrap();
    s.run_for(secs(1.0)).unwrap();
    // Leader partition.
    s.isolate(&leader).unwrap();
    s.run_for(secs(3.0)).unwrap();
    s.heal().unwrap();
    s.run_for(secs(1.0)).unwrap();
    // Crash and restart of a member that is not the current leader.
    let cur = s.leader().unwrap_or_default();
    let victim = names.iter().find(|n| **n != cur).unwrap().clone();
    s.power_loss(&victim).unwrap();
    s.run_for(secs(1.0)).unwrap();
    s.restart(&victim).unwrap();
    s.run_for(secs(1.0)).unwrap();
    // Slow fsync on the current leader.
    let cur = s.leader().unwrap_or_else(|| names[0].clone());
    s.set_disk_latency(&cur, LatencyModel::slow(secs(1.5)))
        .unwrap();
    s.run_for(secs(3.0)).unwrap();
    s.set_disk_latency(&cur, LatencyModel::healthy()).unwrap();
    s.run_for(secs(2.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(20.0)).unwrap();
    let acked = writes.borrow().acked.len();
    (s.trace_hash(), s.trace().lines(), acked)
}

fn first_difference(a: &[String], b: &[String]) -> String {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return format!("line {i}:\n  {x}\n  {y}");
        }
    }
    format!("lengths {} vs {}", a.len(), b.len())
}

fn check(members: usize, seed: u64, other: u64) {
    let (h1, l1, acked) = scenario(seed, members);
    let (h2, l2, _) = scenario(seed, members);
    assert!(acked > 50, "too few acknowledged writes: {acked}");
    assert!(
        l1.iter().any(|l| l.contains("\"msg\":\"fault\"")),
        "faults missing from the trace"
    );
    assert_eq!(
        h1,
        h2,
        "same seed, different traces: {}",
        first_difference(&l1, &l2)
    );
    let (h3, _, _) = scenario(other, members);
    assert_ne!(h1, h3, "seeds {seed} and {other} gave the same trace");
}

#[test]
fn same_seed_same_trace_three_members() {
    check(3, 11, 12);
}

#[test]
fn same_seed_same_trace_five_members() {
    check(5, 21, 22);
}
