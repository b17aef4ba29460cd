//! Every scenario of the catalogue passes on two seeds, replays to the same trace hash, and
//! differs between seeds (DESIGN.md §2's determinism proof, per scenario).

use scenarios::catalogue;
use scenarios::runner::{run, RunOptions};

fn passes_and_replays(name: &str) {
    let sc = catalogue::find(name).expect("scenario exists");
    let opts = RunOptions::default();
    let a = run(&sc, 1, &opts).expect("run seed 1");
    assert_eq!(
        a.summary.verdict, "pass",
        "{name} seed 1 failed: {:#?}",
        a.summary.failures
    );
    let again = run(&sc, 1, &opts).expect("rerun seed 1");
    assert_eq!(
        a.summary.trace_hash, again.summary.trace_hash,
        "{name}: same seed, different trace"
    );
    assert_eq!(a.trace, again.trace);
    assert_eq!(a.records, again.records);
    let b = run(&sc, 2, &opts).expect("run seed 2");
    assert_eq!(
        b.summary.verdict, "pass",
        "{name} seed 2 failed: {:#?}",
        b.summary.failures
    );
    assert_ne!(
        a.summary.trace_hash, b.summary.trace_hash,
        "{name}: seeds 1 and 2 gave the same trace"
    );
    // Every run checks something real.
    assert!(a.summary.ops.writes_ok > 20, "{name}: {:?}", a.summary.ops);
    assert_eq!(a.summary.checker.result, "linearizable");
}

#[test]
fn baseline() {
    passes_and_replays("baseline");
}

#[test]
fn partition_leader() {
    passes_and_replays("partition-leader");
}

#[test]
fn partition_one_way() {
    passes_and_replays("partition-one-way");
}

#[test]
fn partition_minority() {
    passes_and_replays("partition-minority");
}

#[test]
fn flaky_links() {
    passes_and_replays("flaky-links");
}

#[test]
fn crash_restart() {
    passes_and_replays("crash-restart");
}

#[test]
fn crash_all() {
    passes_and_replays("crash-all");
}

#[test]
fn slow_fsync_leader() {
    passes_and_replays("slow-fsync-leader");
}

#[test]
fn disk_latency_sweep() {
    passes_and_replays("disk-latency-sweep");
}

#[test]
fn the_catalogue_is_what_the_tests_cover() {
    let names: Vec<&str> = catalogue::catalogue().iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "partition-leader",
            "partition-one-way",
            "partition-minority",
            "flaky-links",
            "crash-restart",
            "crash-all",
            "slow-fsync-leader",
            "disk-latency-sweep"
        ]
    );
}
