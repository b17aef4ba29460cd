//! etcd's bbolt buckets, as redb tables, and the well-known keys of the `meta` bucket.

use redb::TableDefinition;

/// One of etcd's buckets (server/storage/schema/bucket.go). Each is a redb table of
/// `&[u8] -> &[u8]` with the bucket's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// MVCC revisions: 17-byte revision (+ 't' for tombstones) -> `mvccpb.KeyValue`.
    Key,
    /// Consistent index, term, compaction marks, storage version, conf state.
    Meta,
    /// Leases.
    Lease,
    /// Cluster-wide settings (cluster version, downgrade).
    Cluster,
    /// Members.
    Members,
    /// Removed member ids.
    MembersRemoved,
    /// Alarms.
    Alarm,
    /// Auth enabled flag and revision.
    Auth,
    /// Auth users.
    AuthUsers,
    /// Auth roles.
    AuthRoles,
}

impl Bucket {
    /// Every bucket, in a fixed order (snapshots and iteration use it).
    pub const ALL: [Bucket; 10] = [
        Bucket::Key,
        Bucket::Meta,
        Bucket::Lease,
        Bucket::Cluster,
        Bucket::Members,
        Bucket::MembersRemoved,
        Bucket::Alarm,
        Bucket::Auth,
        Bucket::AuthUsers,
        Bucket::AuthRoles,
    ];

    /// etcd's name of the bucket (also the redb table name).
    pub const fn name(self) -> &'static str {
        match self {
            Bucket::Key => "key",
            Bucket::Meta => "meta",
            Bucket::Lease => "lease",
            Bucket::Cluster => "cluster",
            Bucket::Members => "members",
            Bucket::MembersRemoved => "members_removed",
            Bucket::Alarm => "alarm",
            Bucket::Auth => "auth",
            Bucket::AuthUsers => "authUsers",
            Bucket::AuthRoles => "authRoles",
        }
    }

    /// Stable one-byte id used in snapshots.
    pub(crate) const fn id(self) -> u8 {
        match self {
            Bucket::Key => 0,
            Bucket::Meta => 1,
            Bucket::Lease => 2,
            Bucket::Cluster => 3,
            Bucket::Members => 4,
            Bucket::MembersRemoved => 5,
            Bucket::Alarm => 6,
            Bucket::Auth => 7,
            Bucket::AuthUsers => 8,
            Bucket::AuthRoles => 9,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Bucket> {
        Bucket::ALL.get(usize::from(id)).copied()
    }

    pub(crate) const fn table(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(self.name())
    }
}

/// Keys of the `meta` bucket, spelled as etcd spells them.
pub mod meta {
    /// Last applied raft index, 8 bytes big endian.
    pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
    /// Term of the last applied raft entry, 8 bytes big endian.
    pub const TERM: &[u8] = b"term";
    /// Revision of the last requested compaction (17-byte revision).
    pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
    /// Revision of the last finished compaction (17-byte revision).
    pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
    /// raft ConfState (JSON in etcd).
    pub const CONF_STATE: &[u8] = b"confState";
    /// Storage version, e.g. `3.6.0` (absent in 3.5 data).
    pub const STORAGE_VERSION: &[u8] = b"storageVersion";
}

/// Keys of the `cluster` bucket, spelled as etcd spells them.
pub mod cluster {
    /// The cluster version, e.g. `3.6.0`.
    pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
    /// The downgrade job, JSON `{"target-version":"3.5.0","enabled":true}`.
    pub const DOWNGRADE: &[u8] = b"downgrade";
}
