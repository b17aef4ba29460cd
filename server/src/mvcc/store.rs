//! The MVCC store: key index + backend + current and compacted revisions.

use super::error::MvccError;
use super::exec::{Change, Exec};
use super::key_index::{KeyIndex, TombstoneAtCompaction};
use super::revision::{is_tombstone, Revision};
use super::{consts, ops, txn, LeaseChecker};
use crate::backend::{meta, Backend, BackendOptions, Bucket};
use crate::seam::Disk;
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;
use prost::Message as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The MVCC key-value store of one member.
pub struct Store {
    pub(super) backend: Backend,
    pub(super) index: BTreeMap<Vec<u8>, KeyIndex>,
    pub(super) current_rev: i64,
    pub(super) compact_main_rev: i64,
    /// The hashes taken at the latest compactions, oldest first (etcd's hashStorage).
    pub(super) compaction_hashes: std::collections::VecDeque<KeyValueHash>,
    lease_checker: Option<Box<LeaseChecker>>,
    events: Option<Vec<mvccpb::Event>>,
    /// Test defects living in the store.
    pub(super) defects: StoreDefects,
}

/// The test defects (see `crate::defects`) that live in the MVCC store, fixed when it opens:
/// off in every deployment.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreDefects {
    /// `compact-drops-tombstone-at-revision` (etcd 18089): compaction drops a tombstone at
    /// exactly the compaction revision.
    pub drop_tombstone_at_compaction: bool,
    /// `restore-skips-tombstone-only-keys` (etcd 19179): the index rebuild skips a key whose
    /// first stored revision is a tombstone. The defect comes with
    /// `compaction_commits_before_finish`, the window that makes it matter.
    pub restore_skips_tombstone_only_keys: bool,
    /// Compaction commits its deletions before it writes its finished mark, as etcd's batched
    /// compaction does after the apply (ours is otherwise one batch with its entry): a crash
    /// in between leaves a compaction for the next start to resume.
    pub compaction_commits_before_finish: bool,
    /// `restore-ignores-scheduled-compaction` (etcd 17780): the rebuild takes the store
    /// revision from the newest stored revision and the finished compaction only. A member
    /// that crashed in a compaction at its newest revision, a delete whose tombstone the
    /// compaction removed, comes back with a revision below one it already handed out; the
    /// scheduled compaction, now above it, is refused as a future revision, as etcd 3.5.13's
    /// restore refuses it.
    pub restore_ignores_scheduled_compaction: bool,
}

/// A hash of the key space at a revision (etcd's `KeyValueHash`): `hash` covers the revisions up
/// to `revision` that a compaction there keeps, with the store compacted at `compact_revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValueHash {
    /// CRC-32C, as etcd's HashKV.
    pub hash: u32,
    /// The compaction revision the hash was taken under.
    pub compact_revision: i64,
    /// The revision hashed up to.
    pub revision: i64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("keys", &self.index.len())
            .field("current_rev", &self.current_rev)
            .field("compact_main_rev", &self.compact_main_rev)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the backend at `path` (normally [`crate::backend::db_path`]) and rebuilds the key
    /// index from the `key` bucket; finishes a compaction that was scheduled but not finished.
    pub async fn open(
        disk: Arc<dyn Disk>,
        path: &Path,
        opts: BackendOptions,
        defects: StoreDefects,
    ) -> Result<Store, MvccError> {
        let backend = Backend::open(disk, path, opts).await?;
        let mut store = Store {
            backend,
            index: BTreeMap::new(),
            current_rev: 1,
            compact_main_rev: -1,
            compaction_hashes: Default::default(),
            defects,
            lease_checker: None,
            events: None,
        };
        store.rebuild()?;
        Ok(store)
    }

    /// What compaction does with a tombstone at the compaction revision: kept, except under the
    /// test defect `compact-drops-tombstone-at-revision`.
    pub(super) fn tombstone_at_compaction(&self) -> TombstoneAtCompaction {
        if self.defects.drop_tombstone_at_compaction {
            TombstoneAtCompaction::Drop
        } else {
            TombstoneAtCompaction::Keep
        }
    }

    fn meta_rev(&self, key: &[u8]) -> Result<Option<i64>, MvccError> {
        match self.backend.get(Bucket::Meta, key)? {
            None => Ok(None),
            Some(v) => Revision::from_bytes(&v)
                .map(|r| Some(r.main))
                .ok_or_else(|| MvccError::corrupt(key, "meta compaction mark is not a revision")),
        }
    }

    /// etcd's `store.restore`: rebuilds index and revisions from the backend.
    pub(super) fn rebuild(&mut self) -> Result<(), MvccError> {
        let finished = self.meta_rev(meta::FINISHED_COMPACT_REV)?;
        let scheduled = self.meta_rev(meta::SCHEDULED_COMPACT_REV)?;
        let mut index: BTreeMap<Vec<u8>, KeyIndex> = BTreeMap::new();
        let mut current_rev = 1;
        let mut failure = None;
        let skip_tombstone_only = self.defects.restore_skips_tombstone_only_keys;
        self.backend.for_each(Bucket::Key, &[], None, |k, v| {
            let Some(rev) = Revision::from_bytes(k) else {
                failure = Some(MvccError::corrupt(k, "key is not a revision"));
                return false;
            };
            let kv = match mvccpb::KeyValue::decode(v) {
                Ok(kv) => kv,
                Err(e) => {
                    failure = Some(MvccError::corrupt(k, format!("undecodable KeyValue: {e}")));
                    return false;
                }
            };
            let tomb = is_tombstone(k);
            match index.get_mut(&kv.key) {
                Some(ki) => {
                    if tomb {
                        ki.tombstone(rev);
                    } else {
                        ki.put(rev);
                    }
                }
                None if tomb && skip_tombstone_only => {
                    // etcd 19179 (restoreIntoIndex before 3.5.18): `else if
                    // !isTombstone(rkv.key)`, a key first seen as a tombstone is left out.
                }
                None => {
                    let mut ki = KeyIndex::default();
                    if tomb {
                        ki.restore_tombstone(rev);
                    } else {
                        ki.restore(Revision::new(kv.create_revision, 0), rev, kv.version);
                    }
                    index.insert(kv.key, ki);
                }
            }
            current_rev = current_rev.max(rev.main);
            true
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.index = index;
        self.compact_main_rev = finished.unwrap_or(-1);
        self.current_rev = current_rev.max(self.compact_main_rev);
        if let Some(s) = scheduled {
            if s > self.compact_main_rev {
                if self.defects.restore_ignores_scheduled_compaction && s > self.current_rev {
                    // etcd 3.5.13: resuming the compaction is refused as a future revision;
                    // the store goes on from the lowered revision.
                    tracing::warn!(error = %MvccError::FutureRev, "compaction encountered error");
                } else {
                    // etcd 17780's fix: the compaction may have removed the newest revision.
                    self.compact_main_rev = s;
                    self.current_rev = self.current_rev.max(s);
                    self.finish_compaction(s)?;
                }
            }
        }
        Ok(())
    }

    /// The backend (for other modules' buckets; their writes join the same batch).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut Backend {
        &mut self.backend
    }

    /// Last applied raft index (as set by [`Self::set_consistent_index`]; after open or
    /// restore, the one committed in the backend).
    pub fn consistent_index(&self) -> u64 {
        self.backend.consistent_index().0
    }

    /// Term of the last applied raft entry.
    pub fn consistent_term(&self) -> u64 {
        self.backend.consistent_index().1
    }

    /// Last applied raft index covered by a durable commit (what survives a crash now).
    pub fn durable_consistent_index(&self) -> u64 {
        self.backend.durable_consistent_index().0
    }

    /// Records the raft entry being applied; it goes into the same backend batch as its writes.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) {
        self.backend.set_consistent_index(index, term);
    }

    /// Commits the backend batch durably if `force`, or if the batch limit or interval says so.
    pub fn commit(&mut self, force: bool) -> Result<bool, MvccError> {
        Ok(self.backend.commit(force)?)
    }

    /// The periodic batch commit: on the backend's offload thread when it has one (see
    /// `Backend::commit_batch`), else as [`Self::commit`]. True if it committed inline.
    pub fn commit_batch(&mut self, force: bool) -> Result<bool, MvccError> {
        Ok(self.backend.commit_batch(force)?)
    }

    /// Runs the backend's batch commits on `offload` (real mode).
    pub fn set_offload(&mut self, offload: Option<std::sync::Arc<dyn crate::seam::Offload>>) {
        self.backend.set_offload(offload);
    }

    /// The store revision (1 for an empty store, as in etcd).
    pub fn current_revision(&self) -> i64 {
        self.current_rev
    }

    /// The last compaction revision (-1 if never compacted).
    pub fn compact_revision(&self) -> i64 {
        self.compact_main_rev
    }

    /// Database file size (Status `dbSize`).
    pub fn size_bytes(&self) -> Result<u64, MvccError> {
        Ok(self.backend.size_bytes()?)
    }

    /// Database bytes in use (Status `dbSizeInUse`).
    pub fn size_in_use_bytes(&self) -> Result<u64, MvccError> {
        Ok(self.backend.size_in_use_bytes()?)
    }

    /// Status `dbSize` in bytes (0 if the file cannot be stat'ed; the error is logged).
    pub fn db_size(&self) -> i64 {
        match self.backend.size_bytes() {
            Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read backend size");
                0
            }
        }
    }

    /// Status `dbSizeInUse` in bytes (0 on error; the error is logged).
    pub fn db_size_in_use(&self) -> i64 {
        match self.backend.size_in_use_bytes() {
            Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read backend size in use");
                0
            }
        }
    }

    /// Installs the lease existence check used by Put and by puts inside Txn (etcd's
    /// `lessor.Lookup`). Without one, leases are not checked.
    pub fn set_lease_checker(&mut self, checker: Box<LeaseChecker>) {
        self.lease_checker = Some(checker);
    }

    /// Starts (or stops) recording the events of applied writes for [`Self::take_events`].
    pub fn record_events(&mut self, on: bool) {
        self.events = on.then(Vec::new);
    }

    /// Events of the writes applied since the last call (watch feed): PUT with the new
    /// key-value, DELETE with `{key, mod_revision}` as in etcd's watchable store.
    pub fn take_events(&mut self) -> Vec<mvccpb::Event> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn reader(&self) -> Result<Exec<'_>, MvccError> {
        let reader = self.backend.reader(Bucket::Key)?;
        Ok(Exec::read(
            &self.index,
            reader,
            self.current_rev,
            self.compact_main_rev,
        ))
    }

    /// Runs a write request: applies its changes if it succeeds, rolls the index back if not.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Exec<'_>, Option<&LeaseChecker>) -> Result<T, MvccError>,
    ) -> Result<T, MvccError> {
        let reader = self.backend.reader(Bucket::Key)?;
        let mut ex = Exec::write(
            &mut self.index,
            reader,
            self.current_rev,
            self.compact_main_rev,
        );
        match f(&mut ex, self.lease_checker.as_deref()) {
            Ok(resp) => {
                let changes = ex.finish();
                self.apply(changes);
                Ok(resp)
            }
            Err(e) => {
                ex.rollback();
                Err(e)
            }
        }
    }

    fn apply(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let rev = self.current_rev + 1;
        for ch in &changes {
            self.backend.put(
                Bucket::Key,
                &ch.rev.to_key(ch.tombstone),
                &ch.kv.encode_to_vec(),
            );
        }
        if let Some(events) = &mut self.events {
            for ch in changes {
                let (r#type, kv) = if ch.tombstone {
                    let kv = mvccpb::KeyValue {
                        key: ch.kv.key,
                        mod_revision: rev,
                        ..Default::default()
                    };
                    (consts::event_type::DELETE, kv)
                } else {
                    (consts::event_type::PUT, ch.kv)
                };
                events.push(mvccpb::Event {
                    r#type,
                    kv: Some(kv),
                    prev_kv: None,
                });
            }
        }
        self.current_rev = rev;
    }

    /// The live keys that carry a lease, with their lease (the lessor's attachments at start).
    pub fn leased_keys(&self) -> Result<Vec<(Vec<u8>, i64)>, MvccError> {
        Ok(self
            .reader()?
            .newest_versions()?
            .into_iter()
            .filter(|kv| kv.lease != 0)
            .map(|kv| (kv.key, kv.lease))
            .collect())
    }

    /// Range (also serves serializable reads: it only reads).
    pub fn range(&self, r: &pb::RangeRequest) -> Result<pb::RangeResponse, MvccError> {
        ops::range(&self.reader()?, r)
    }

    /// Put.
    pub fn put(&mut self, p: &pb::PutRequest) -> Result<pb::PutResponse, MvccError> {
        if p.lease != 0 {
            if let Some(exists) = &self.lease_checker {
                if !exists(p.lease) {
                    return Err(MvccError::LeaseNotFound);
                }
            }
        }
        self.write(|ex, _| ops::put(ex, p))
    }

    /// DeleteRange.
    pub fn delete_range(
        &mut self,
        d: &pb::DeleteRangeRequest,
    ) -> Result<pb::DeleteRangeResponse, MvccError> {
        self.write(|ex, _| ops::delete_range(ex, d))
    }

    /// Txn: one revision for all its writes; no revision bump if it writes nothing. A failing
    /// txn changes nothing.
    pub fn txn(&mut self, r: &pb::TxnRequest) -> Result<pb::TxnResponse, MvccError> {
        self.write(|ex, lease| txn::txn(ex, r, lease))
    }

    /// A read-only txn (see [`super::is_txn_readonly`]) served from local state without
    /// raft, as etcd does for serializable read-only txns. `None` if the txn writes.
    pub fn read_txn(&self, r: &pb::TxnRequest) -> Result<Option<pb::TxnResponse>, MvccError> {
        if !txn::is_txn_readonly(r) {
            return Ok(None);
        }
        let mut ex = self.reader()?;
        txn::txn(&mut ex, r, None).map(Some)
    }

    /// The full backend content for a raft snapshot (uncommitted batch included; its meta
    /// carries the consistent index it corresponds to).
    pub fn snapshot_data(&self) -> Result<Vec<u8>, MvccError> {
        Ok(self.backend.snapshot_data()?)
    }

    /// Replaces the whole state with a snapshot from [`Self::snapshot_data`] (durably), then
    /// rebuilds the index. The consistent index becomes the snapshot's own, which must be
    /// `>= index` (etcd: "snapshot index > consistent index" is an error); entries up to it
    /// must then be skipped by the apply loop. `term` is informational.
    pub fn restore_snapshot(
        &mut self,
        data: &[u8],
        index: u64,
        _term: u64,
    ) -> Result<(), MvccError> {
        self.backend.restore_snapshot(data, index)?;
        self.rebuild()
    }
}
