//! Leases, like etcd's `server/lease` lessor.
//!
//! Owns: the leases (id, granted TTL, attached keys), their persistence in the `lease` bucket,
//! which keys are attached to which lease (kept up to date from applied events), and — on the
//! leader only — expiry times on the leader's clock: set on grant, renew and promotion (with
//! the remaining TTL extended by an election timeout, as etcd does), cleared on demotion.
//!
//! Must never: revoke a lease by itself (the leader proposes a revoke through raft; every
//! member applies it), use expiry on a follower, or let the apply path depend on a clock: grant
//! and revoke apply identically on every member.

use crate::backend::{Backend, Bucket};
use crate::mvcc::consts::event_type;
use crate::mvcc::{MvccError, Store};
use etcd_client::proto::{PbEvent, PbRangeRequest};
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
}

/// The lessor of one member.
#[derive(Debug)]
pub struct Lessor {
    leases: BTreeMap<i64, Lease>,
    key_lease: BTreeMap<Vec<u8>, i64>,
    primary: bool,
    min_ttl: i64,
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
        };
        let all = store.range(&PbRangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })?;
        for kv in all.kvs.into_iter().filter(|kv| kv.lease != 0) {
            lessor.attach(kv.key, kv.lease);
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
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
                expiry,
            },
        );
        let rec = StoredLease {
            id,
            ttl,
            remaining_ttl: 0,
        };
        backend.put(Bucket::Lease, &bucket_key(id), &rec.encode_to_vec());
        Ok(ttl)
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
    pub fn observe(&mut self, events: &[PbEvent]) {
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

    /// Remaining TTL in whole seconds (leader's view), granted TTL and keys.
    pub fn time_to_live(&self, id: i64, now: Instant) -> Option<(i64, i64, Vec<Vec<u8>>)> {
        let l = self.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(now).as_secs() as i64,
            None => l.ttl,
        };
        Some((remaining, l.ttl, l.keys.iter().cloned().collect()))
    }

    /// All lease ids, ascending.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// Becoming leader: every lease gets its full TTL plus `extend` from now (etcd's Promote),
    /// so leases do not expire because of the election that made this member leader.
    pub fn promote(&mut self, now: Instant, extend: Duration) {
        self.primary = true;
        for l in self.leases.values_mut() {
            l.expiry = Some(now + extend + secs(l.ttl));
        }
    }

    /// Losing leadership: no lease expires here any more.
    pub fn demote(&mut self) {
        self.primary = false;
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
        };
        for id in [1, 2] {
            l.leases.insert(
                id,
                Lease {
                    ttl: 10,
                    keys: BTreeSet::new(),
                    expiry: None,
                },
            );
        }
        let put = |k: &str, lease| PbEvent {
            r#type: event_type::PUT,
            kv: Some(etcd_client::proto::PbKeyValue {
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
        let del = PbEvent {
            r#type: event_type::DELETE,
            kv: Some(etcd_client::proto::PbKeyValue {
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

    #[test]
    fn expiry_only_on_the_leader_and_promotion_extends() {
        let now = Instant::now();
        let mut l = Lessor {
            leases: BTreeMap::new(),
            key_lease: BTreeMap::new(),
            primary: false,
            min_ttl: 2,
        };
        l.leases.insert(
            7,
            Lease {
                ttl: 5,
                keys: BTreeSet::new(),
                expiry: None,
            },
        );
        assert!(l.expired(now + Duration::from_secs(100), 10).is_empty());
        l.promote(now, Duration::from_secs(1));
        assert!(l.expired(now + Duration::from_millis(5900), 10).is_empty());
        assert_eq!(l.expired(now + Duration::from_secs(6), 10), vec![7]);
        l.demote();
        assert!(l.expired(now + Duration::from_secs(100), 10).is_empty());
    }
}
