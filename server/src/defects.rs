//! Switchable server defects for testing the harness (never for production): each reproduces a
//! class of real etcd bug, so that a scenario can prove the checker catches it.
//!
//! Owns: the names of the defects and parsing `--unsafe-test-defects`.
//!
//! Must never: be on unless that hidden flag names it and the hidden `--unsafe-test-opt-in`
//! is given too (a deployment that copies one flag by mistake still refuses to start).

/// A deliberate defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Defect {
    /// Linearizable reads are served from local state without ReadIndex: a member cut off from
    /// the leader answers with stale data (the class of etcd's stale-read bugs).
    SkipReadIndex,
    /// The leader revokes expired leases without first confirming it still leads (etcd issue
    /// 15247): a leader stalled by a slow disk wakes up and revokes leases the new leader kept
    /// alive meanwhile.
    RevokeWithoutLeadershipCheck,
    /// etcd issue 13766 (3.5.0-3.5.2): the consistent index is set before the entry is applied,
    /// and a backend commit can land in between, making the entry's index durable without its
    /// writes; after a crash the member replays from the next entry and never applies that
    /// one, so its revisions fall behind the other members'. In etcd the commit is the
    /// backend's periodic one, which lands in the window now and then; here it comes at every
    /// entry (our periodic commit runs on the apply task and cannot interleave), so the window
    /// is open whenever a crash comes.
    ConsistentIndexBeforeApply,
    /// etcd issue 18089 (before 3.5.16 / 3.4.34): compaction at revision r drops a key's
    /// tombstone at exactly r, so a watch from r misses that deletion.
    CompactDropsTombstoneAtRevision,
    /// etcd issue 15220 (before 3.4.25 / 3.5.8): a requested progress notification is sent
    /// straight to the client at the store's revision (etcd's ctrlStream) instead of through
    /// the watchers' queue, so it can overtake events already queued for the stream: the
    /// client hears "everything up to R was sent" and then gets events at or below R.
    ProgressBypassesWatchQueue,
    /// etcd issue 15271 (before 3.4.25 / 3.5.8): a watcher served while synced never has its
    /// next revision advanced (only the slow-watcher path did that), so when a snapshot from
    /// the leader makes every watcher catch up from the history, it replays events it already
    /// sent: the watch goes back in time.
    SyncedWatcherKeepsStartRev,
    /// etcd issue 14370 (3.5.0-3.5.4): in a cluster of one voter, raft committed an entry as
    /// soon as it was appended and etcd applied it, answering the client, in parallel with
    /// saving it to the WAL; a power loss before the fdatasync loses an acknowledged write.
    ApplyBeforeWalSync,
    /// etcd issue 14685 (before 3.5.6): defragmentation commits the pending writes
    /// without the consistent index; a crash before the next regular commit makes the member
    /// re-apply entries it already holds, and its revisions run ahead of the others'.
    DefragCommitWithoutConsistentIndex,
    /// etcd issue 18667 (every release before 3.7): a member that did not propose a txn (no
    /// waiter for its answer) strips the txn's top-level range requests before applying it
    /// (etcd's `removeNeedlessRangeReqs`). A range at a compacted or future revision makes
    /// the proposer refuse the whole txn while the others apply its writes: the members'
    /// data and revisions part ways.
    StripTxnRangesWithoutWaiter,
    /// etcd issue 19179 (3.4 before 3.4.36, 3.5 before 3.5.18, after the 18089 fix kept the
    /// tombstone at the compaction revision): the index rebuild at start-up skips a key whose
    /// first stored revision is a tombstone. A member that crashed in the middle of a
    /// compaction at r (deletions durable, finished mark not) resumes it from that index, so
    /// it deletes the tombstones at r the compaction must keep: a watch from r on that member
    /// misses those deletions, and its key space differs from the others'.
    RestoreSkipsTombstoneOnlyKeys,
    /// etcd issue 17529 (3.4 before 3.4.31, 3.5 before 3.5.13): a catch-up round that cannot
    /// queue a watcher's "compacted" response (its stream's queue is full) leaves the watcher
    /// in the round, which moves every watcher it serves to the round's revisions: the
    /// watcher is never told its start revision was compacted and silently skips the events
    /// from there to the oldest revision the round serves.
    CompactedWatcherSkipsAhead,
    /// etcd issue 17780 (3.4 before 3.4.32, 3.5 before 3.5.14): the store revision restored at
    /// start-up ignores the scheduled compaction. Comes with the releases' 18089 drop and
    /// batched compaction: a member that crashed in a compaction at its newest revision, a
    /// delete whose tombstone the compaction removed, restarts with a revision below one it
    /// already handed out, and gives it out again.
    RestoreIgnoresScheduledCompaction,
    /// etcd issue 20221 ("watch on future revision returns old events"; 3.4 before 3.4.38,
    /// 3.5 before 3.5.22, 3.6 before 3.6.2): a snapshot from the leader moves every watcher,
    /// one waiting for a future revision too, into the catch-up round, and the round sets
    /// each watcher's next revision to the store's plus one: the future watcher gets the
    /// events before the revision it asked to start from.
    RestoreLowersFutureWatchers,
    /// The class of etcd issue 14143 ("loss of committed write with loss of un-fsynced
    /// data"): a member that does not lead sends its raft messages (append and vote
    /// responses among them) before its WAL fdatasync, as etcd lets only the leader do (raft
    /// thesis 10.2.1). An entry can then commit with a single durable copy, the leader's; if
    /// every member loses power, the followers that lost it can elect one of themselves and
    /// overwrite it.
    FollowerAcksBeforeWalSync,
}

/// Every defect with its flag name.
pub const DEFECTS: [(&str, Defect); 14] = [
    ("skip-read-index", Defect::SkipReadIndex),
    (
        "revoke-without-leadership-check",
        Defect::RevokeWithoutLeadershipCheck,
    ),
    (
        "consistent-index-before-apply",
        Defect::ConsistentIndexBeforeApply,
    ),
    (
        "compact-drops-tombstone-at-revision",
        Defect::CompactDropsTombstoneAtRevision,
    ),
    (
        "progress-bypasses-watch-queue",
        Defect::ProgressBypassesWatchQueue,
    ),
    (
        "synced-watcher-keeps-start-rev",
        Defect::SyncedWatcherKeepsStartRev,
    ),
    ("apply-before-wal-sync", Defect::ApplyBeforeWalSync),
    (
        "defrag-commit-without-consistent-index",
        Defect::DefragCommitWithoutConsistentIndex,
    ),
    (
        "strip-txn-ranges-without-waiter",
        Defect::StripTxnRangesWithoutWaiter,
    ),
    (
        "restore-skips-tombstone-only-keys",
        Defect::RestoreSkipsTombstoneOnlyKeys,
    ),
    (
        "compacted-watcher-skips-ahead",
        Defect::CompactedWatcherSkipsAhead,
    ),
    (
        "restore-ignores-scheduled-compaction",
        Defect::RestoreIgnoresScheduledCompaction,
    ),
    (
        "restore-lowers-future-watchers",
        Defect::RestoreLowersFutureWatchers,
    ),
    (
        "follower-acks-before-wal-sync",
        Defect::FollowerAcksBeforeWalSync,
    ),
];

/// Parses a comma-separated list of defect names.
pub fn parse(s: &str) -> Result<Vec<Defect>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let d = DEFECTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .ok_or_else(|| {
                let known: Vec<&str> = DEFECTS.iter().map(|(n, _)| *n).collect();
                format!("unknown defect {name:?} (known: {})", known.join(", "))
            })?;
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_is_refused() {
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("skip-read-index"), Ok(vec![Defect::SkipReadIndex]));
        assert_eq!(
            parse("skip-read-index, revoke-without-leadership-check"),
            Ok(vec![
                Defect::SkipReadIndex,
                Defect::RevokeWithoutLeadershipCheck
            ])
        );
        assert!(parse("bogus").unwrap_err().contains("unknown defect"));
    }
}
