//! Lease timing: no key dies before its lease could have expired, and none outlives it by more
//! than etcd's tolerance — judged from what the lease clients saw (simulated time), the drift of
//! the members' clocks in the schedule and when leaders changed, never from server state.
//!
//! The rules, for a lease with TTL `T` and a refresh (grant or keep-alive answered with TTL > 0)
//! called at `c` and answered at `r`:
//! - *early*: the leader refreshed the lease at or after `c`, and its clock, running at most
//!   `fast` ppm fast, counts `T` in at least `T / (1 + fast)` of real time; a read answered
//!   "absent" before `c + T / (1 + fast)` proves the key died early.
//! - *late*: the leader refreshed at or before `r`; its clock, at most `slow` ppm slow, counts
//!   `T` in at most `T / (1 − slow)`; etcd checks expiry every 500 ms and revokes through raft,
//!   so a read called after `r + T / (1 − slow) +` [`TOLERANCE`] that still sees the key proves
//!   it outlived the lease — unless a leader changed meanwhile: a new leader extends every lease
//!   to a full TTL plus an election timeout from its promotion (etcd without checkpoints).
//!
//! Owns: [`check`] and its [`LeaseSummary`]. Must never: read server state.

use crate::history::LeaseLog;
use serde::{Deserialize, Serialize};

/// How much later than its TTL etcd may revoke a lease: the 500 ms expiry check, the revoke's
/// trip through raft and the client's read.
pub const TOLERANCE_US: u64 = 2_000_000;
/// What a new leader adds to every lease on promotion: the election timeout (1 s by default in
/// the simulator's members) plus the expiry check interval.
pub const PROMOTION_EXTEND_US: u64 = 1_500_000;

/// What the lease check found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseSummary {
    /// Leases granted (confirmed).
    pub granted: usize,
    /// Leases whose key was seen gone after being let go.
    pub expired: usize,
    /// Keep-alives answered with TTL > 0.
    pub refreshes: usize,
    /// Clock drift bounds used (ppm): fastest and slowest member clock in the schedule.
    pub fast_ppm: i64,
    /// See `fast_ppm`.
    pub slow_ppm: i64,
    /// Violations, one line each.
    pub violations: Vec<String>,
}

fn scaled(ttl_s: i64, ppm: i64) -> u64 {
    let us = ttl_s.max(0) as f64 * 1e6;
    (us * 1e6 / (1e6 + ppm as f64)) as u64
}

/// Checks every lease log. `fast_ppm` ≥ 0 and `slow_ppm` ≥ 0 bound how fast and how slow any
/// member's clock ran; `leader_changes_us` are the times new leaders appeared.
pub fn check(
    logs: &[LeaseLog],
    fast_ppm: i64,
    slow_ppm: i64,
    leader_changes_us: &[u64],
) -> LeaseSummary {
    let mut s = LeaseSummary {
        fast_ppm,
        slow_ppm,
        ..Default::default()
    };
    for l in logs.iter().filter(|l| !l.refreshes.is_empty()) {
        s.granted += 1;
        s.refreshes += l.refreshes.len() - 1;
        let gone = l.reads.iter().find(|(_, _, present)| !present);
        if gone.is_some() {
            s.expired += 1;
        }
        // Early: no "absent" answer before the earliest possible expiry of any refresh made
        // before that answer.
        if let Some(&(_, gone_ret, _)) = gone {
            if let Some(&(c, _)) = l.refreshes.iter().rev().find(|(c, _)| *c < gone_ret) {
                let earliest = c + scaled(l.ttl, fast_ppm);
                if gone_ret < earliest && l.attached {
                    s.violations.push(format!(
                        "lease {:x} (TTL {} s): key {} seen gone at {} ms, but the lease was \
                         refreshed at {} ms and cannot expire before {} ms",
                        l.id,
                        l.ttl,
                        l.key,
                        gone_ret / 1000,
                        c / 1000,
                        earliest / 1000
                    ));
                }
            }
        }
        // Late: no "present" answer to a read called after the latest possible expiry.
        let Some(&(last_c, last_r)) = l.refreshes.last() else {
            continue;
        };
        let ttl_late = scaled(l.ttl, -slow_ppm.min(999_999));
        let mut latest = last_r + ttl_late + TOLERANCE_US;
        for &t in leader_changes_us.iter().filter(|t| **t >= last_c) {
            latest = latest.max(t + ttl_late + PROMOTION_EXTEND_US + TOLERANCE_US);
        }
        if let Some(&(seen_c, _, _)) = l
            .reads
            .iter()
            .find(|(c, _, present)| *present && *c > latest)
        {
            s.violations.push(format!(
                "lease {:x} (TTL {} s): key {} still there at {} ms, but the lease was last \
                 refreshed at {} ms and should be gone by {} ms",
                l.id,
                l.ttl,
                l.key,
                seen_c / 1000,
                last_r / 1000,
                latest / 1000
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(refresh: (u64, u64), reads: Vec<(u64, u64, bool)>) -> LeaseLog {
        LeaseLog {
            id: 7,
            key: "/lease/k".into(),
            ttl: 5,
            refreshes: vec![refresh],
            reads,
            attached: true,
        }
    }

    #[test]
    fn on_time_expiry_passes_early_and_late_fail() {
        let s = 1_000_000;
        let ok = lease(
            (0, 10_000),
            vec![(4 * s, 4 * s + 1, true), (6 * s, 6 * s + 1, false)],
        );
        let r = check(&[ok], 0, 0, &[]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!((r.granted, r.expired), (1, 1));

        let early = lease((0, 10_000), vec![(4 * s, 4 * s + 1, false)]);
        let r = check(std::slice::from_ref(&early), 0, 0, &[]);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert!(r.violations[0].contains("cannot expire before 5000 ms"));
        // A leader clock 30 % fast may kill it at ~3.85 s: 4 s is then on time.
        assert!(check(&[early], 300_000, 0, &[]).violations.is_empty());

        let late = lease((0, 10_000), vec![(8 * s, 8 * s + 1, true)]);
        let r = check(std::slice::from_ref(&late), 0, 0, &[]);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert!(r.violations[0].contains("still there at 8000 ms"));
        // A new leader at 2 s extends it to 2 + 5 + 1.5 + 2 = 10.5 s.
        assert!(check(&[late], 0, 0, &[2 * s]).violations.is_empty());
    }
}
