//! Leases, like etcd's `server/lease` lessor.
//!
//! Owns: the leases (id, granted TTL, attached keys), their persistence in the `lease` bucket,
//! which keys are attached to which lease (kept up to date from applied events), and — on the
//! leader only — expiry times on the leader's clock: set on grant, renew and promotion (with
//! the remaining TTL extended by an election timeout, as etcd does), cleared on demotion.
//! With lease checkpointing on (gate `LeaseCheckpoint` or `--experimental-enable-lease-checkpoint`)
//! also etcd's checkpoint schedule: the leader picks, every checkpoint interval, the remaining
//! TTLs to propose; every member records applied checkpoints, and a new leader restarts a lease
//! from its checkpointed remaining TTL instead of its full TTL. Checkpointed TTLs live in memory
//! (as etcd 3.5 with LeaseCheckpointPersist off) unless persistence is on.
//!
//! Must never: revoke a lease by itself (the leader proposes a revoke through raft; every
//! member applies it), use expiry on a follower, or let the apply path depend on a clock: grant
//! and revoke apply identically on every member.

use crate::backend::{Backend, Bucket};
use crate::mvcc::consts::event_type;
use crate::mvcc::{MvccError, Store};
use etcd_api::mvccpb;
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// etcd's MaxLeaseTTL (9,000,000,000 s).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Lease errors with etcd's messages.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LeaseError {
    /// No such lease.
    #[error("etcdserver: requested lease not found")]
    NotFound,
    /// Grant of an id in use.
    #[error("etcdserver: lease already exists")]
    Exists,
    /// TTL above MaxLeaseTTL.
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
}

impl LeaseError {
    /// etcd's gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            LeaseError::NotFound => tonic::Status::not_found(self.to_string()),
            LeaseError::Exists => tonic::Status::failed_precondition(self.to_string()),
            LeaseError::TtlTooLarge => tonic::Status::out_of_range(self.to_string()),
        }
    }
}

/// One lease as stored in the `lease` bucket (etcd's leasepb.Lease).
#[derive(Clone, PartialEq, prost::Message)]
struct StoredLease {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

#[derive(Debug, Clone)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
    /// When the lease expires; `None` on followers (never expires there).
    expiry: Option<Instant>,
    /// The last checkpointed remaining TTL in seconds (0: none; the full TTL applies).
    remaining_ttl: i64,
}

impl Lease {
    /// etcd's `Lease.getRemainingTTL`: the checkpointed remaining TTL, else the TTL.
    fn remaining_or_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

/// Lease checkpointing settings (etcd's checkpointer and LeaseCheckpointPersist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointing {
    /// The checkpoint interval; `None`: checkpointing is off.
    pub interval: Option<Duration>,
    /// Whether applied checkpoints are written to the `lease` bucket.
    pub persist: bool,
}

/// The lessor of one member.
#[derive(Debug)]
pub struct Lessor {
    leases: BTreeMap<i64, Lease>,
    key_lease: BTreeMap<Vec<u8>, i64>,
    primary: bool,
    min_ttl: i64,
    checkpointing: Checkpointing,
    /// Leader only: when each lease is due for a checkpoint (etcd's leaseCheckpointHeap).
    schedule: BTreeSet<(Instant, i64)>,
}

fn bucket_key(id: i64) -> [u8; 8] {
    id.to_be_bytes()
}

impl Lessor {
    /// The minimum TTL etcd grants: ceil(1.5 election timeouts) in seconds.
    pub fn min_ttl_for(election_timeout: Duration) -> i64 {
        (election_timeout.as_secs_f64() * 1.5).ceil() as i64
    }

    /// Loads leases from the `lease` bucket and attaches the store's current keys to them.
    pub fn load(store: &Store, min_ttl: i64) -> Result<Lessor, MvccError> {
        let mut leases = BTreeMap::new();
        let mut bad = None;
        store.backend().for_each(Bucket::Lease, b"", None, |k, v| {
            match StoredLease::decode(v) {
                Ok(l) => {
                    leases.insert(
                        l.id,
                        Lease {
                            ttl: l.ttl,
                            keys: BTreeSet::new(),
                            expiry: None,
                            remaining_ttl: l.remaining_ttl,
                        },
                    );
                }
                Err(e) => bad = Some(MvccError::corrupt(k, format!("lease record: {e}"))),
            }
            bad.is_none()
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        let mut lessor = Lessor {
            leases,
            key_lease: BTreeMap::new(),
            primary: false,
            min_ttl,
            checkpointing: Checkpointing::default(),
            schedule: BTreeSet::new(),
        };
        for (key, lease) in store.leased_keys()? {
            lessor.attach(key, lease);
        }
        Ok(lessor)
    }

    /// Whether a lease exists (the store's lease check for puts).
    pub fn exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Applies a grant; returns the granted TTL (raised to the minimum TTL).
    pub fn grant(
        &mut self,
        backend: &mut Backend,
        id: i64,
        ttl: i64,
        now: Instant,
    ) -> Result<i64, LeaseError> {
        if ttl > MAX_LEASE_TTL {
            return Err(LeaseError::TtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        let ttl = ttl.max(self.min_ttl);
        let expiry = self.primary.then(|| now + secs(ttl));
        let lease = Lease {
            ttl,
            keys: BTreeSet::new(),
            expiry,
            remaining_ttl: 0,
        };
        persist(backend, id, &lease);
        if self.primary {
            self.schedule_checkpoint(id, lease.remaining_or_ttl(), now);
        }
        self.leases.insert(id, lease);
        Ok(ttl)
    }

    /// The checkpointing settings.
    pub fn checkpointing(&self) -> Checkpointing {
        self.checkpointing
    }

    /// Switches lease checkpointing on or off (set once at start, and kept across reloads).
    pub fn set_checkpointing(&mut self, c: Checkpointing) {
        self.checkpointing = c;
        if c.interval.is_none() {
            self.schedule.clear();
        }
    }

    /// etcd's scheduleCheckpointIfNeeded: a lease whose remaining TTL is longer than the
    /// checkpoint interval gets a checkpoint one interval from now.
    fn schedule_checkpoint(&mut self, id: i64, remaining_or_ttl: i64, now: Instant) {
        if let Some(interval) = self.checkpointing.interval {
            if remaining_or_ttl > interval.as_secs() as i64 {
                self.schedule.insert((now + interval, id));
            }
        }
    }

    /// Applies a checkpoint (every member): records the remaining TTL (0 clears it); the leader
    /// schedules the lease's next checkpoint. Unknown leases are ignored, as etcd does.
    pub fn checkpoint(&mut self, backend: &mut Backend, id: i64, remaining_ttl: i64, now: Instant) {
        let Some(l) = self.leases.get_mut(&id) else {
            return;
        };
        l.remaining_ttl = remaining_ttl;
        if self.checkpointing.persist {
            persist(backend, id, l);
        }
        let remaining = l.remaining_or_ttl();
        if self.primary {
            self.schedule_checkpoint(id, remaining, now);
        }
    }

    /// Leader: the checkpoints due now, at most `limit` (etcd's findDueScheduledCheckpoints):
    /// (lease, remaining TTL in whole seconds rounded up) for live leases that have used some
    /// of their TTL.
    pub fn due_checkpoints(&mut self, now: Instant, limit: usize) -> Vec<(i64, i64)> {
        let mut due = Vec::new();
        if self.checkpointing.interval.is_none() || !self.primary {
            return due;
        }
        while due.len() < limit {
            let Some(&(at, id)) = self.schedule.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.schedule.pop_first();
            let Some(l) = self.leases.get(&id) else {
                continue;
            };
            let Some(expiry) = l.expiry.filter(|e| *e > now) else {
                continue;
            };
            let remaining = (expiry - now).as_secs_f64().ceil() as i64;
            if remaining >= l.ttl {
                continue;
            }
            due.push((id, remaining));
        }
        due
    }

    /// Leader, before a renewal: whether the lease has a checkpointed remaining TTL that the
    /// renewal must first clear through raft (etcd's Renew with a checkpointer).
    pub fn must_clear_checkpoint(&self, id: i64) -> bool {
        self.checkpointing.interval.is_some()
            && self.leases.get(&id).is_some_and(|l| l.remaining_ttl > 0)
    }

    /// The keys a revoke must delete.
    pub fn keys_of(&self, id: i64) -> Result<Vec<Vec<u8>>, LeaseError> {
        let l = self.leases.get(&id).ok_or(LeaseError::NotFound)?;
        Ok(l.keys.iter().cloned().collect())
    }

    /// Removes a revoked lease (after its keys were deleted).
    pub fn remove(&mut self, backend: &mut Backend, id: i64) {
        if let Some(l) = self.leases.remove(&id) {
            for k in l.keys {
                self.key_lease.remove(&k);
            }
        }
        backend.delete(Bucket::Lease, &bucket_key(id));
    }

    fn attach(&mut self, key: Vec<u8>, id: i64) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.clone());
            self.key_lease.insert(key, id);
        }
    }

    fn detach(&mut self, key: &[u8]) {
        if let Some(old) = self.key_lease.remove(key) {
            if let Some(l) = self.leases.get_mut(&old) {
                l.keys.remove(key);
            }
        }
    }

    /// Follows attachments from applied events: a put moves the key to its new lease (or
    /// none), a delete detaches it.
    pub fn observe(&mut self, events: &[mvccpb::Event]) {
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            self.detach(&kv.key);
            if ev.r#type == event_type::PUT && kv.lease != 0 {
                self.attach(kv.key.clone(), kv.lease);
            }
        }
    }

    /// Leader: renews a lease; returns its TTL. An expired lease cannot be renewed.
    pub fn renew(&mut self, id: i64, now: Instant) -> Result<i64, LeaseError> {
        let l = self.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        if l.expiry.is_some_and(|e| e <= now) {
            return Err(LeaseError::NotFound);
        }
        l.expiry = Some(now + secs(l.ttl));
        Ok(l.ttl)
    }

    /// Remaining TTL in whole seconds (leader's view; elsewhere the checkpointed remaining
    /// TTL, if any, else the TTL), granted TTL and keys.
    pub fn time_to_live(&self, id: i64, now: Instant) -> Option<(i64, i64, Vec<Vec<u8>>)> {
        let l = self.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(now).as_secs() as i64,
            None => l.remaining_or_ttl(),
        };
        Some((remaining, l.ttl, l.keys.iter().cloned().collect()))
    }

    /// All lease ids, ascending.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// Becoming leader: every lease gets its checkpointed remaining TTL (else its full TTL)
    /// plus `extend` from now (etcd's Promote), so leases do not expire because of the election
    /// that made this member leader; checkpoints are scheduled.
    pub fn promote(&mut self, now: Instant, extend: Duration) {
        self.primary = true;
        self.schedule.clear();
        let mut scheduled = Vec::new();
        for (id, l) in self.leases.iter_mut() {
            l.expiry = Some(now + extend + secs(l.remaining_or_ttl()));
            scheduled.push((*id, l.remaining_or_ttl()));
        }
        for (id, remaining) in scheduled {
            self.schedule_checkpoint(id, remaining, now);
        }
    }

    /// Losing leadership: no lease expires here any more, and no checkpoints are scheduled.
    pub fn demote(&mut self) {
        self.primary = false;
        self.schedule.clear();
        for l in self.leases.values_mut() {
            l.expiry = None;
        }
    }

    /// Leader: leases past their expiry, at most `limit`, in id order.
    pub fn expired(&self, now: Instant, limit: usize) -> Vec<i64> {
        self.leases
            .iter()
            .filter(|(_, l)| l.expiry.is_some_and(|e| e <= now))
            .map(|(id, _)| *id)
            .take(limit)
            .collect()
    }

    /// The minimum TTL this lessor grants.
    pub fn min_ttl(&self) -> i64 {
        self.min_ttl
    }

    /// Whether this lessor is the leader's.
    pub fn is_primary(&self) -> bool {
        self.primary
    }
}

/// Writes a lease's record to the `lease` bucket (etcd's persistTo).
fn persist(backend: &mut Backend, id: i64, l: &Lease) {
    let rec = StoredLease {
        id,
        ttl: l.ttl,
        remaining_ttl: l.remaining_ttl,
    };
    backend.put(Bucket::Lease, &bucket_key(id), &rec.encode_to_vec());
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        assert_eq!(Lessor::min_ttl_for(Duration::from_millis(1000)), 2);
        assert_eq!(Lessor::min_ttl_for(Duration::from_millis(5000)), 8);
    }

    #[test]
    fn attachments_follow_events() {
        let mut l = Lessor {
            leases: BTreeMap::new(),
            key_lease: BTreeMap::new(),
            primary: true,
            min_ttl: 2,
            checkpointing: Checkpointing::default(),
            schedule: BTreeSet::new(),
        };
        for id in [1, 2] {
            l.leases.insert(
                id,
                Lease {
                    ttl: 10,
                    keys: BTreeSet::new(),
                    expiry: None,
                    remaining_ttl: 0,
                },
            );
        }
        let put = |k: &str, lease| mvccpb::Event {
            r#type: event_type::PUT,
            kv: Some(mvccpb::KeyValue {
                key: k.into(),
                lease,
                ..Default::default()
            }),
            prev_kv: None,
        };
        l.observe(&[put("a", 1), put("b", 1)]);
        assert_eq!(l.keys_of(1), Ok(vec![b"a".to_vec(), b"b".to_vec()]));
        l.observe(&[put("a", 2)]);
        assert_eq!(l.keys_of(1), Ok(vec![b"b".to_vec()]));
        assert_eq!(l.keys_of(2), Ok(vec![b"a".to_vec()]));
        let del = mvccpb::Event {
            r#type: event_type::DELETE,
            kv: Some(mvccpb::KeyValue {
                key: b"b".to_vec(),
                ..Default::default()
            }),
            prev_kv: None,
        };
        l.observe(&[del, put("a", 0)]);
        assert_eq!(l.keys_of(1), Ok(vec![]));
        assert_eq!(l.keys_of(2), Ok(vec![]));
        assert_eq!(l.keys_of(3), Err(LeaseError::NotFound));
    }

    /// An empty follower lessor (min TTL 2 s) with `checkpointing`.
    fn follower_lessor(checkpointing: Checkpointing) -> Lessor {
        Lessor {
            leases: BTreeMap::new(),
            key_lease: BTreeMap::new(),
            primary: false,
            min_ttl: 2,
            checkpointing,
            schedule: BTreeSet::new(),
        }
    }

    #[test]
    fn expiry_only_on_the_leader_and_promotion_extends() {
        let now = Instant::now();
        let mut l = follower_lessor(Checkpointing::default());
        l.leases.insert(
            7,
            Lease {
                ttl: 5,
                keys: BTreeSet::new(),
                expiry: None,
                remaining_ttl: 0,
            },
        );
        assert!(l.expired(now + Duration::from_secs(100), 10).is_empty());
        l.promote(now, Duration::from_secs(1));
        assert!(l.expired(now + Duration::from_millis(5900), 10).is_empty());
        assert_eq!(l.expired(now + Duration::from_secs(6), 10), vec![7]);
        l.demote();
        assert!(l.expired(now + Duration::from_secs(100), 10).is_empty());
    }

    #[test]
    fn checkpoints_are_scheduled_taken_and_used_on_promotion() {
        let now = Instant::now();
        let mut l = follower_lessor(Checkpointing {
            interval: Some(Duration::from_secs(2)),
            persist: false,
        });
        for (id, ttl) in [(1, 30), (2, 2)] {
            l.leases.insert(
                id,
                Lease {
                    ttl,
                    keys: BTreeSet::new(),
                    expiry: None,
                    remaining_ttl: 0,
                },
            );
        }
        // Followers take no checkpoints; the leader schedules leases longer than the interval.
        assert!(l
            .due_checkpoints(now + Duration::from_secs(10), 10)
            .is_empty());
        l.promote(now, Duration::ZERO);
        assert_eq!(l.schedule.len(), 1, "{:?}", l.schedule);
        assert!(l
            .due_checkpoints(now + Duration::from_secs(1), 10)
            .is_empty());
        let at = now + Duration::from_millis(2500);
        assert_eq!(l.due_checkpoints(at, 10), vec![(1, 28)]);
        assert!(l.due_checkpoints(at, 10).is_empty(), "taken once");
        // Applied everywhere; a follower reports it, a new leader restarts the lease from it.
        l.leases.get_mut(&1).expect("lease").remaining_ttl = 28;
        assert!(l.must_clear_checkpoint(1) && !l.must_clear_checkpoint(2));
        l.demote();
        assert!(l.schedule.is_empty());
        assert_eq!(l.time_to_live(1, at).map(|t| (t.0, t.1)), Some((28, 30)));
        let later = now + Duration::from_secs(20);
        l.promote(later, Duration::from_secs(1));
        assert_eq!(l.time_to_live(1, later).map(|t| (t.0, t.1)), Some((29, 30)));
        assert_eq!(l.expired(later + Duration::from_secs(28), 10), vec![2]);
        assert_eq!(l.expired(later + Duration::from_secs(29), 10), vec![1, 2]);
        // Without checkpointing nothing is scheduled or cleared.
        l.set_checkpointing(Checkpointing::default());
        assert!(!l.must_clear_checkpoint(1));
        assert!(l
            .due_checkpoints(later + Duration::from_secs(100), 10)
            .is_empty());
    }
}
