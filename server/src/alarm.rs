//! Alarms, like etcd's `api/v3alarm`: which members raised which alarm (NOSPACE, CORRUPT),
//! persisted in the `alarm` bucket, changed only by applying raft entries.
//!
//! Owns: the alarm set and the rule that a NOSPACE alarm caps the applier (puts, txns that put,
//! lease grants are refused; reads, deletes, compaction and defragmentation still work), and
//! the error a CORRUPT alarm answers writes with.
//!
//! Must never: change outside the apply path (every member holds the same alarms).

use crate::backend::{Backend, BackendError, Bucket};
use etcd_api::etcdserverpb as pb;
use std::collections::BTreeSet;

/// etcd's AlarmType NOSPACE.
pub const NOSPACE: i32 = 1;
/// etcd's AlarmType CORRUPT.
pub const CORRUPT: i32 = 2;
/// etcd's AlarmRequest actions.
pub const ACTION_GET: i32 = 0;
/// Activate.
pub const ACTION_ACTIVATE: i32 = 1;
/// Deactivate.
pub const ACTION_DEACTIVATE: i32 = 2;

/// etcd's error when a NOSPACE alarm is active (or the quota is exceeded).
pub fn no_space() -> tonic::Status {
    tonic::Status::resource_exhausted("etcdserver: mvcc: database space exceeded")
}

/// etcd's error while a CORRUPT alarm is active (gRPC DataLoss).
pub fn corrupt() -> tonic::Status {
    tonic::Status::data_loss("etcdserver: corrupt cluster")
}

/// The name etcd prints for an alarm type.
pub fn alarm_name(t: i32) -> &'static str {
    match t {
        NOSPACE => "NOSPACE",
        CORRUPT => "CORRUPT",
        _ => "NONE",
    }
}

/// The active alarms of the cluster.
#[derive(Debug, Default, Clone)]
pub struct Alarms {
    set: BTreeSet<(u64, i32)>,
}

fn key(member: u64, t: i32) -> Vec<u8> {
    let mut k = member.to_be_bytes().to_vec();
    k.extend_from_slice(&t.to_be_bytes());
    k
}

impl Alarms {
    /// Loads the alarms from the `alarm` bucket.
    pub fn load(backend: &Backend) -> Result<Alarms, BackendError> {
        let mut set = BTreeSet::new();
        backend.for_each(Bucket::Alarm, b"", None, |k, _| {
            if k.len() == 12 {
                let mut m = [0u8; 8];
                let mut t = [0u8; 4];
                m.copy_from_slice(&k[..8]);
                t.copy_from_slice(&k[8..]);
                set.insert((u64::from_be_bytes(m), i32::from_be_bytes(t)));
            }
            true
        })?;
        Ok(Alarms { set })
    }

    /// Raises an alarm; true if it was not active.
    pub fn activate(&mut self, backend: &mut Backend, member: u64, t: i32) -> bool {
        backend.put(Bucket::Alarm, &key(member, t), b"");
        self.set.insert((member, t))
    }

    /// Clears an alarm; true if it was active.
    pub fn deactivate(&mut self, backend: &mut Backend, member: u64, t: i32) -> bool {
        backend.delete(Bucket::Alarm, &key(member, t));
        self.set.remove(&(member, t))
    }

    /// Whether any member raised alarm `t`.
    pub fn has(&self, t: i32) -> bool {
        self.set.iter().any(|(_, a)| *a == t)
    }

    /// The alarms in etcd's API form, optionally only of one type (0 = all).
    pub fn list(&self, t: i32) -> Vec<pb::AlarmMember> {
        self.set
            .iter()
            .filter(|(_, a)| t == 0 || *a == t)
            .map(|(m, a)| pb::AlarmMember {
                member_id: *m,
                alarm: *a,
            })
            .collect()
    }
}
