//! The proof of determinism: the same seed gives a byte-identical trace, another seed a
//! different one, for the reference scenario (`sim::demo`: a writing client, a leader
//! partition, a power loss and restart, a slow-fsync window).

use sim::demo;

fn first_difference(a: &[String], b: &[String]) -> String {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return format!("line {i}:\n  {x}\n  {y}");
        }
    }
    format!("lengths {} vs {}", a.len(), b.len())
}

fn check(members: usize, seed: u64, other: u64) {
    let a = demo::run(seed, members).unwrap();
    let b = demo::run(seed, members).unwrap();
    assert_eq!(a.error, None, "seed {seed}: scenario stopped early");
    assert!(a.acked > 200, "too few acknowledged writes: {}", a.acked);
    assert!(a.leader_changes > members as u64, "no leader change: {a:?}");
    for msg in [
        "fault",
        "member starting",
        "raft leader changed",
        "put ok",
        "slow fdatasync",
        "status",
    ] {
        let needle = format!("\"msg\":\"{msg}\"");
        assert!(
            a.trace.iter().any(|l| l.contains(&needle)),
            "{msg:?} missing from the trace"
        );
    }
    assert_eq!(
        a.trace_hash,
        b.trace_hash,
        "seed {seed}: same seed, different traces: {}",
        first_difference(&a.trace, &b.trace)
    );
    let c = demo::run(other, members).unwrap();
    assert_ne!(
        a.trace_hash, c.trace_hash,
        "seeds {seed} and {other} gave the same trace"
    );
}

#[test]
fn same_seed_same_trace_three_members() {
    check(3, 11, 12);
}

#[test]
fn same_seed_same_trace_five_members() {
    check(5, 21, 22);
}
