//! What the raft loop publishes for the API: leader, term, indexes, counters.
//!
//! Owns: `RaftStatus` (a snapshot the loop overwrites after every iteration) and
//! `ServerMetrics` (monotonic counters and the WAL fsync histogram with etcd's metric names).
//!
//! Must never: be written by anyone but the raft loop (the API only reads).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The raft loop's view, refreshed every iteration.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    /// Known leader id (0: none).
    pub leader: u64,
    /// Whether this member leads.
    pub is_leader: bool,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Leader changes seen by this member.
    pub leader_changes: u64,
    /// On the leader: each member's matched log index, by id.
    pub progress: Vec<(u64, u64)>,
    /// On the leader: when it heard from each peer (for the strict reconfiguration check).
    pub contacts: super::reconfig::PeerContacts,
}

/// Upper bounds (seconds) of etcd's `etcd_disk_wal_fsync_duration_seconds` buckets.
pub const FSYNC_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// A latency histogram over [`FSYNC_BUCKETS`]: counts per bucket (last = +Inf), sum in µs.
#[derive(Debug, Default)]
struct Histogram(Mutex<(Vec<u64>, u64)>);

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = FSYNC_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(FSYNC_BUCKETS.len());
        let mut h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if h.0.is_empty() {
            h.0 = vec![0; FSYNC_BUCKETS.len() + 1];
        }
        h.0[bucket] += 1;
        h.1 += d.as_micros() as u64;
    }

    fn get(&self) -> (Vec<u64>, Duration) {
        let h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (h.0.clone(), Duration::from_micros(h.1))
    }
}

/// Counters and histograms, named after etcd's metrics.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes: AtomicU64,
    /// `etcd_server_heartbeat_send_failures_total`.
    pub heartbeat_send_failures: AtomicU64,
    /// `etcd_disk_wal_fsync_duration_seconds`.
    wal_fsync: Histogram,
    /// `etcd_disk_backend_commit_duration_seconds` (same buckets as etcd's).
    backend_commit: Histogram,
}

impl ServerMetrics {
    /// Records one WAL fdatasync.
    pub fn observe_wal_fsync(&self, d: Duration) {
        self.wal_fsync.observe(d);
    }

    /// WAL fsync counts per bucket (cumulative is computed by the exporter) and sum.
    pub fn wal_fsync(&self) -> (Vec<u64>, Duration) {
        self.wal_fsync.get()
    }

    /// Records one backend commit (write and syncs).
    pub fn observe_backend_commit(&self, d: Duration) {
        self.backend_commit.observe(d);
    }

    /// Backend commit counts per bucket and sum.
    pub fn backend_commit(&self) -> (Vec<u64>, Duration) {
        self.backend_commit.get()
    }

    /// `etcd_server_leader_changes_seen_total`.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }
}
