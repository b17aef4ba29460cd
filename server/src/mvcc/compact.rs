//! Compaction (etcd's `updateCompactRev` + `scheduleCompaction`, done synchronously inside the
//! apply so that it lands in the same backend batch as its consistent index) and HashKV.

use super::error::MvccError;
use super::ops::header;
use super::revision::Revision;
use super::store::{KeyValueHash, Store};
use crate::backend::{meta, Bucket};
use etcd_api::etcdserverpb as pb;
use std::collections::BTreeSet;

/// How many compaction hashes a store keeps (etcd's hashStorageMaxSize).
const COMPACTION_HASHES_KEPT: usize = 10;

impl Store {
    /// Compact: `revision <= compact rev` is ErrCompacted, `> current` ErrFutureRev. Keeps each
    /// key's latest revision `<= revision` (a tombstone exactly at `revision` too, as etcd 3.6
    /// does, so a watch from there still sees the delete), drops the older ones from the index
    /// and physically from the `key` bucket, and records `scheduledCompactRev` and
    /// `finishedCompactRev` in `meta`. Does not change the store revision.
    pub fn compact(
        &mut self,
        r: &pb::CompactionRequest,
    ) -> Result<pb::CompactionResponse, MvccError> {
        let rev = r.revision;
        if rev <= self.compact_main_rev {
            return Err(MvccError::Compacted);
        }
        if rev > self.current_rev {
            return Err(MvccError::FutureRev);
        }
        // etcd hashes the key space while compacting and keeps the hash, so that the leader
        // can compare members at the same compaction (the compact hash check).
        let (hash, _, previous) = self.hash_kv(rev)?;
        self.store_compaction_hash(KeyValueHash {
            hash,
            compact_revision: previous,
            revision: rev,
        });
        self.compact_main_rev = rev;
        self.backend.put(
            Bucket::Meta,
            meta::SCHEDULED_COMPACT_REV,
            &Revision::new(rev, 0).to_bytes(),
        );
        self.finish_compaction(rev)?;
        Ok(pb::CompactionResponse {
            header: header(self.current_rev),
        })
    }

    /// Compacts the index and deletes the unneeded revisions `<= rev` from the `key` bucket.
    pub(super) fn finish_compaction(&mut self, rev: i64) -> Result<(), MvccError> {
        let mut keep = BTreeSet::new();
        let tombstone = self.tombstone_at_compaction();
        self.index.retain(|_, ki| {
            ki.compact(rev, &mut keep, tombstone);
            !ki.is_empty()
        });
        let end = Revision::new(rev.saturating_add(1), 0).to_bytes();
        let mut doomed = Vec::new();
        self.backend
            .for_each(Bucket::Key, &[], Some(&end), |k, _| {
                match Revision::from_bytes(k) {
                    Some(r) if keep.contains(&r) => {}
                    _ => doomed.push(k.to_vec()),
                }
                true
            })?;
        for k in &doomed {
            self.backend.delete(Bucket::Key, k);
        }
        if self.defects.compaction_commits_before_finish {
            // etcd compacts in batches after the apply and writes the finished mark with the
            // last one: a crash can find the deletions durable and the mark not.
            self.backend.commit(true)?;
        }
        self.backend.put(
            Bucket::Meta,
            meta::FINISHED_COMPACT_REV,
            &Revision::new(rev, 0).to_bytes(),
        );
        Ok(())
    }

    fn store_compaction_hash(&mut self, h: KeyValueHash) {
        tracing::info!(
            hash = h.hash,
            revision = h.revision,
            compact_revision = h.compact_revision,
            "storing new hash"
        );
        self.compaction_hashes.push_back(h);
        while self.compaction_hashes.len() > COMPACTION_HASHES_KEPT {
            self.compaction_hashes.pop_front();
        }
    }

    /// The hashes taken at the latest compactions, newest first.
    pub fn compaction_hashes(&self) -> Vec<KeyValueHash> {
        self.compaction_hashes.iter().rev().copied().collect()
    }

    /// etcd's `HashStorage.HashByRev`: the hash kept at the compaction at `rev` if there was
    /// one, else the hash computed now (see [`Store::hash_kv`]); with the current revision.
    pub fn hash_by_rev(&self, rev: i64) -> Result<(KeyValueHash, i64), MvccError> {
        if let Some(h) = self.compaction_hashes.iter().find(|h| h.revision == rev) {
            return Ok((*h, self.current_rev));
        }
        let (hash, current, compact_revision) = self.hash_kv(rev)?;
        let revision = if rev == 0 { current } else { rev };
        Ok((
            KeyValueHash {
                hash,
                compact_revision,
                revision,
            },
            current,
        ))
    }

    /// etcd's `HashByRev`: CRC-32C (Castagnoli) of the bucket name and every `key` bucket
    /// entry up to `rev` (0 = current; below the compaction: ErrCompacted), skipping revisions at or below the compaction that a
    /// compaction at `rev` would not keep. Returns `(hash, current revision, compact revision)`.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64), MvccError> {
        let (compact, current) = (self.compact_main_rev, self.current_rev);
        if rev > 0 && rev < compact {
            return Err(MvccError::Compacted);
        }
        if rev > 0 && rev > current {
            return Err(MvccError::FutureRev);
        }
        let rev = if rev == 0 { current } else { rev };
        let mut keep = BTreeSet::new();
        for ki in self.index.values() {
            ki.keep(rev, &mut keep, self.tombstone_at_compaction());
        }
        let mut crc = crc32c::crc32c(Bucket::Key.name().as_bytes());
        self.backend.for_each(Bucket::Key, &[], None, |k, v| {
            let Some(kr) = Revision::from_bytes(k) else {
                return true;
            };
            if kr.main > rev {
                return false;
            }
            if kr.main <= compact && !keep.is_empty() && !keep.contains(&kr) {
                return true;
            }
            crc = crc32c::crc32c_append(crc, k);
            crc = crc32c::crc32c_append(crc, v);
            true
        })?;
        Ok((crc, current, compact))
    }
}
