//! Scenario-specific expectations hold for the reasons the scenarios state, a summary keeps its
//! shape (insta), and the harness can fail: the negative control is caught as not
//! linearizable and its replay reproduces it.

use scenarios::catalogue::{self, NEGATIVE_CONTROL};
use scenarios::runner::{run, RunOptions};

#[test]
fn slow_fsync_leader_loses_leadership_and_its_healthy_twin_does_not() {
    let sc = catalogue::find("slow-fsync-leader").unwrap();
    let o = run(&sc, 3, &RunOptions::default()).unwrap();
    let s = &o.summary;
    assert_eq!(s.verdict, "pass", "{:#?}", s.failures);
    assert!(s.leader_changes >= 1, "{s:#?}");
    assert!(s.slow_wal_fsyncs >= 1, "{s:#?}");
    for (msg, n) in &s.trace_matches {
        assert!(*n > 0, "trace lacks {msg:?}");
    }
    assert!(o.trace.contains("slow fdatasync"));
    assert!(o
        .trace
        .contains("leader failed to send out heartbeat on time"));
    let twin = s.healthy_twin.as_ref().expect("twin ran");
    assert_eq!(twin.leader_changes, 0);
    assert_ne!(twin.trace_hash, s.trace_hash);
}

#[test]
fn negative_control_is_caught_and_replays() {
    let sc = catalogue::find(NEGATIVE_CONTROL).unwrap();
    let opts = RunOptions::default();
    // Bounded: a stale read must be caught within a few seeds.
    let caught = (1..=5u64).find_map(|seed| {
        let o = run(&sc, seed, &opts).unwrap();
        (o.summary.checker.result == "not linearizable").then_some((seed, o))
    });
    let (seed, o) = caught.expect("no seed in 1..=5 exposed the stale reads");
    assert_eq!(o.summary.verdict, "fail");
    assert!(
        o.summary
            .failures
            .iter()
            .any(|f| f.contains("not linearizable")),
        "{:#?}",
        o.summary.failures
    );
    assert!(o
        .summary
        .replay
        .contains(&format!("run {NEGATIVE_CONTROL} --seed {seed}")));
    let replay = run(&sc, seed, &opts).unwrap();
    assert_eq!(replay.summary.trace_hash, o.summary.trace_hash);
    assert_eq!(replay.summary.checker.result, "not linearizable");
    assert_eq!(replay.summary.checker.detail, o.summary.checker.detail);
    assert!(o.html.contains("not linearizable"));
}

#[test]
fn server_defect_skipping_read_index_is_caught_and_replays() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_SKIP_READ_INDEX,
        1..=5,
        "not linearizable",
    );
}

#[test]
fn lease_revocation_by_a_stalled_leader_is_caught_and_the_fix_passes() {
    let sc = catalogue::find(catalogue::DEFECT_REVOKE_WITHOUT_LEADERSHIP_CHECK).unwrap();
    assert!(sc
        .flags
        .iter()
        .any(|f| f.contains("revoke-without-leadership-check")));
    let opts = RunOptions::default();
    let caught = (1..=3u64).find_map(|seed| {
        let o = run(&sc, seed, &opts).unwrap();
        let leases = o.summary.leases.clone().expect("lease check ran");
        (!leases.violations.is_empty()).then_some((seed, o))
    });
    let (seed, o) = caught.expect("no seed in 1..=3 exposed the revoked leases");
    assert_eq!(o.summary.verdict, "fail");
    assert!(
        o.summary
            .failures
            .iter()
            .any(|f| f.contains("lease timing") && f.contains("cannot expire before")),
        "{:#?}",
        o.summary.failures
    );
    // The same scenario with the fix (etcd's ensureLeadership) passes on that seed.
    let fixed = catalogue::find("slow-fsync-leases").unwrap();
    let ok = run(&fixed, seed, &opts).unwrap();
    assert_eq!(ok.summary.verdict, "pass", "{:#?}", ok.summary.failures);
}

/// A defect scenario fails on some seed in `seeds` with a failure mentioning `check`, replays
/// to the same trace, and passes on that seed with the defect off.
fn defect_is_caught_and_the_fix_passes(
    name: &str,
    seeds: std::ops::RangeInclusive<u64>,
    check: &str,
) {
    let sc = catalogue::find(name).unwrap();
    let opts = RunOptions::default();
    let caught = seeds.clone().find_map(|seed| {
        let o = run(&sc, seed, &opts).unwrap();
        (o.summary.verdict == "fail").then_some((seed, o))
    });
    let (seed, o) = caught.unwrap_or_else(|| panic!("no seed in {seeds:?} caught {name}"));
    assert!(
        o.summary.failures.iter().any(|f| f.contains(check)),
        "{name}: {:#?}",
        o.summary.failures
    );
    assert!(o
        .summary
        .replay
        .contains(&format!("run {name} --seed {seed}")));
    let replay = run(&sc, seed, &opts).unwrap();
    assert_eq!(replay.summary.trace_hash, o.summary.trace_hash);
    let mut fixed = sc.clone();
    fixed.flags.retain(|f| !f.starts_with("--unsafe-test"));
    let ok = run(&fixed, seed, &opts).unwrap();
    assert_eq!(
        ok.summary.verdict, "pass",
        "{name} without the defect: {:#?}",
        ok.summary.failures
    );
}

#[test]
fn consistent_index_before_apply_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(catalogue::DEFECT_CONSISTENT_INDEX_BEFORE_APPLY, 1..=6, "");
}

#[test]
fn progress_overtaking_queued_events_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_PROGRESS_BYPASSES_WATCH_QUEUE,
        1..=6,
        "bookmarkable",
    );
}

#[test]
fn synced_watchers_replaying_after_a_snapshot_are_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_SYNCED_WATCHER_KEEPS_START_REV,
        1..=4,
        "ordered",
    );
}

#[test]
fn a_sole_member_answering_before_its_wal_sync_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_APPLY_BEFORE_WAL_SYNC,
        1..=3,
        "not linearizable",
    );
}

#[test]
fn a_defrag_commit_without_the_consistent_index_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_DEFRAG_WITHOUT_CONSISTENT_INDEX,
        1..=4,
        "",
    );
}

#[test]
fn compaction_dropping_the_tombstone_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(catalogue::DEFECT_COMPACT_DROPS_TOMBSTONE, 1..=6, "watch");
}

#[test]
fn summary_snapshot() {
    let sc = catalogue::find("partition-leader").unwrap();
    let o = run(&sc, 7, &RunOptions::default()).unwrap();
    // Values that depend on the build, the machine or the server's timing are redacted; the
    // shape, the verdicts and the fault schedule drawn from the seed are pinned.
    insta::assert_json_snapshot!(o.summary, {
        ".git_commit" => "[commit]",
        ".wall_seconds" => "[wall]",
        ".trace_hash" => "[hash]",
        ".trace_lines" => "[n]",
        ".sim_seconds" => "[sim-s]",
        ".ops" => "[ops]",
        ".leader_changes" => "[n]",
        ".leaders" => "[leaders]",
        ".leader_changes_seen_total" => "[n]",
        ".wal_fsync_p99_ms" => "[ms]",
        ".faults[].start_ms" => "[ms]",
        ".faults[].end_ms" => "[ms]",
        ".faults[].what" => "[what]",
        ".checker.seconds" => "[s]",
        ".checker.operations" => "[n]",
        ".checker.serializable_reads_checked" => "[n]",
        ".checker.serializable_reads_ambiguous" => "[n]",
        ".watch.batches" => "[n]",
        ".watch.events" => "[n]",
        ".watch.streams" => "[n]",
        ".watch.interruptions" => "[n]",
        ".liveness.leader_after_heal_ms" => "[ms]",
        ".liveness.write_after_heal_ms" => "[ms]",
    });
}

#[test]
fn lying_disks_on_every_member_lose_acknowledged_writes_and_the_checker_says_so() {
    let sc = catalogue::find(catalogue::LYING_MAJORITY).unwrap();
    let opts = RunOptions::default();
    let caught = (1..=5u64).find_map(|seed| {
        let o = run(&sc, seed, &opts).unwrap();
        (o.summary.verdict == "fail").then_some((seed, o))
    });
    let (seed, o) = caught.expect("no seed in 1..=5 lost an acknowledged write");
    assert_ne!(
        o.summary.checker.result, "linearizable",
        "{:#?}",
        o.summary.failures
    );
    let replay = run(&sc, seed, &opts).unwrap();
    assert_eq!(replay.summary.trace_hash, o.summary.trace_hash);
}

#[test]
fn stripping_a_txns_reads_on_members_without_a_waiter_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(catalogue::DEFECT_STRIP_TXN_RANGES, 1..=3, "");
}

#[test]
fn a_restore_skipping_tombstone_only_keys_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(catalogue::DEFECT_RESTORE_SKIPS_TOMBSTONES, 1..=5, "watch");
}

#[test]
fn a_compacted_watcher_skipping_ahead_when_its_queue_is_full_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_COMPACTED_WATCHER_SKIPS_AHEAD,
        1..=3,
        "watch",
    );
}

#[test]
fn a_restore_ignoring_the_scheduled_compaction_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_RESTORE_IGNORES_SCHEDULED_COMPACTION,
        0..=3,
        "revision went back",
    );
}

#[test]
fn a_restore_lowering_future_watchers_is_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_RESTORE_LOWERS_FUTURE_WATCHERS,
        0..=4,
        "only events at or after the start revision",
    );
}

#[test]
fn followers_acking_before_their_wal_sync_are_caught_and_the_fix_passes() {
    defect_is_caught_and_the_fix_passes(
        catalogue::DEFECT_FOLLOWER_ACKS_BEFORE_WAL_SYNC,
        0..=5,
        "not linearizable",
    );
}
