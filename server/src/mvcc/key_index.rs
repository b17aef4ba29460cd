//! The in-memory history of one key, like etcd's `keyIndex`: generations of revisions, each
//! generation running from a creation to a tombstone (the last one is open).
//!
//! Example: put(1), put(2), delete(3), put(4), delete(5) gives generations
//! `{1, 2, 3(t)}`, `{4, 5(t)}`, `{}`.

use super::revision::Revision;
use std::collections::BTreeSet;

/// One life of a key: from its creation to its deletion (tombstone, the last revision).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Generation {
    /// Number of puts in this generation, including compacted ones.
    pub(crate) ver: i64,
    /// The revision that created the key.
    pub(crate) created: Revision,
    /// Live revisions, ascending (the last is the tombstone unless this is the last generation).
    pub(crate) revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the last revision with `main <= at_rev`.
    fn find_revision_index(&self, at_rev: i64) -> Option<usize> {
        let n = self.revs.partition_point(|r| r.main <= at_rev);
        n.checked_sub(1)
    }
}

/// The shape of a key index before a request touched it: requests only append, so truncating
/// back to it undoes them (O(1) to take, unlike a clone of a long history).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    generations: usize,
    last_revs: usize,
    last_ver: i64,
    last_created: Revision,
    modified: Revision,
}

/// What compaction at revision r does with a key's tombstone at exactly r.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TombstoneAtCompaction {
    /// Keep it, so a watch from r still sees the deletion (etcd 3.5.16+, 3.6).
    Keep,
    /// Drop it with the generation it ends (etcd before 3.5.16: issue 18089; only as the test
    /// defect `compact-drops-tombstone-at-revision`).
    Drop,
}

/// All revisions of a key still present in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    pub(crate) modified: Revision,
    pub(crate) generations: Vec<Generation>,
}

impl KeyIndex {
    /// The current shape, for [`Self::rollback`].
    pub(crate) fn mark(&self) -> Mark {
        let last = self.generations.last();
        Mark {
            generations: self.generations.len(),
            last_revs: last.map_or(0, |g| g.revs.len()),
            last_ver: last.map_or(0, |g| g.ver),
            last_created: last.map_or_else(Revision::default, |g| g.created),
            modified: self.modified,
        }
    }

    /// Undoes every put and tombstone made since `mark` was taken.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.generations.truncate(mark.generations);
        if let Some(g) = self.generations.last_mut() {
            g.revs.truncate(mark.last_revs);
            g.ver = mark.last_ver;
            g.created = mark.last_created;
        }
        self.modified = mark.modified;
    }

    /// Records a put at `rev`.
    pub(crate) fn put(&mut self, rev: Revision) {
        debug_assert!(rev > self.modified, "put {rev:?} after {:?}", self.modified);
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("a generation exists");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Rebuilds the first known revision of a key from the `key` bucket.
    pub(crate) fn restore(&mut self, created: Revision, modified: Revision, ver: i64) {
        self.modified = modified;
        self.generations.push(Generation {
            ver,
            created,
            revs: vec![modified],
        });
    }

    /// Rebuilds a key whose only surviving revision is a tombstone (compaction kept it).
    pub(crate) fn restore_tombstone(&mut self, rev: Revision) {
        self.restore(Revision::default(), rev, 1);
        self.generations.push(Generation::default());
    }

    /// Records a deletion at `rev`; `false` if the key is not live.
    pub(crate) fn tombstone(&mut self, rev: Revision) -> bool {
        match self.generations.last() {
            Some(g) if !g.is_empty() => {}
            _ => return false,
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// `(modified, created, version)` of the key as of `at_rev`, if it was live then.
    pub(crate) fn get(&self, at_rev: i64) -> Option<(Revision, Revision, i64)> {
        let g = self.find_generation(at_rev)?;
        let n = g.find_revision_index(at_rev)?;
        let ver = g.ver - (g.revs.len() - n - 1) as i64;
        Some((g.revs[n], g.created, ver))
    }

    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(tomb)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && tomb.main <= rev {
                return None;
            }
            if first.main <= rev {
                return Some(g);
            }
        }
        None
    }

    /// Whether nothing of the key remains.
    pub(crate) fn is_empty(&self) -> bool {
        self.generations.is_empty()
            || (self.generations.len() == 1 && self.generations[0].is_empty())
    }

    /// Finds the generation holding `at_rev` (or created after it) and the last revision
    /// `<= at_rev` in it, which compaction keeps.
    fn do_compact(
        &self,
        at_rev: i64,
        available: &mut BTreeSet<Revision>,
        tombstone: TombstoneAtCompaction,
    ) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx + 1 < self.generations.len() {
            let g = &self.generations[gen_idx];
            let ends_at_or_after = |tomb: &Revision| match tombstone {
                TombstoneAtCompaction::Keep => tomb.main >= at_rev,
                TombstoneAtCompaction::Drop => tomb.main > at_rev,
            };
            if g.revs.last().is_some_and(ends_at_or_after) {
                break;
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.find_revision_index(at_rev);
        if let Some(i) = rev_idx {
            available.insert(g.revs[i]);
        }
        (gen_idx, rev_idx)
    }

    /// Drops the revisions `<= at_rev` except the latest one, and generations that ended before
    /// `at_rev` (etcd 3.6 semantics: a tombstone exactly at `at_rev` is kept, so watchers from
    /// that revision still see the deletion). Kept revisions are added to `available`.
    pub(crate) fn compact(
        &mut self,
        at_rev: i64,
        available: &mut BTreeSet<Revision>,
        tombstone: TombstoneAtCompaction,
    ) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available, tombstone);
        let g = &mut self.generations[gen_idx];
        if let Some(i) = rev_idx {
            g.revs.drain(..i);
        }
        self.generations.drain(..gen_idx);
    }

    /// The revision compaction at `at_rev` would keep, unless it is a tombstone (etcd's
    /// `keep`, used by HashKV).
    pub(crate) fn keep(
        &self,
        at_rev: i64,
        available: &mut BTreeSet<Revision>,
        tombstone: TombstoneAtCompaction,
    ) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available, tombstone);
        let g = &self.generations[gen_idx];
        if let Some(i) = rev_idx {
            if i + 1 == g.revs.len() && gen_idx + 1 != self.generations.len() {
                available.remove(&g.revs[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put(2) put(4) del(6) put(8) put(10) del(12) put(14) put(16), like etcd's key_index_test.
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        ki.put(r(4));
        assert!(ki.tombstone(r(6)));
        ki.put(r(8));
        ki.put(r(10));
        assert!(ki.tombstone(r(12)));
        ki.put(r(14));
        ki.put(r(16));
        ki
    }

    #[test]
    fn get_finds_live_revision_and_version() {
        let ki = sample();
        assert_eq!(ki.get(1), None);
        assert_eq!(ki.get(2), Some((r(2), r(2), 1)));
        assert_eq!(ki.get(5), Some((r(4), r(2), 2)));
        assert_eq!(ki.get(6), None, "deleted at 6");
        assert_eq!(ki.get(7), None);
        assert_eq!(ki.get(9), Some((r(8), r(8), 1)));
        assert_eq!(ki.get(11), Some((r(10), r(8), 2)));
        assert_eq!(ki.get(13), None);
        assert_eq!(ki.get(100), Some((r(16), r(14), 2)));
        let mut ki = ki;
        assert!(ki.tombstone(r(18)));
        assert!(!ki.tombstone(r(19)), "already deleted");
    }

    #[test]
    fn compact_keeps_latest_and_tombstone_at_exact_revision() {
        let mut ki = sample();
        let mut avail = BTreeSet::new();
        ki.compact(4, &mut avail, TombstoneAtCompaction::Keep);
        assert_eq!(avail, BTreeSet::from([r(4)]));
        assert_eq!(ki.generations[0].revs, vec![r(4), r(6)]);
        assert_eq!(
            ki.get(5),
            Some((r(4), r(2), 2)),
            "version survives compaction"
        );

        let mut avail = BTreeSet::new();
        ki.compact(6, &mut avail, TombstoneAtCompaction::Keep);
        assert_eq!(
            avail,
            BTreeSet::from([r(6)]),
            "tombstone at compact rev kept"
        );
        assert_eq!(ki.generations[0].revs, vec![r(6)]);
        assert_eq!(ki.get(6), None);

        let mut avail = BTreeSet::new();
        ki.compact(7, &mut avail, TombstoneAtCompaction::Keep);
        assert!(avail.is_empty());
        assert_eq!(ki.generations.len(), 2);
        assert_eq!(ki.generations[0].revs, vec![r(8), r(10), r(12)]);

        let mut avail = BTreeSet::new();
        ki.compact(13, &mut avail, TombstoneAtCompaction::Keep);
        assert!(avail.is_empty());
        assert_eq!(ki.generations.len(), 1);
        assert_eq!(ki.generations[0].revs, vec![r(14), r(16)]);

        let mut avail = BTreeSet::new();
        ki.compact(20, &mut avail, TombstoneAtCompaction::Keep);
        assert_eq!(avail, BTreeSet::from([r(16)]));
        assert_eq!(ki.generations[0].revs, vec![r(16)]);
        assert_eq!(ki.get(20), Some((r(16), r(14), 2)));
    }

    #[test]
    fn compact_after_final_delete_empties_key() {
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        assert!(ki.tombstone(r(3)));
        let mut avail = BTreeSet::new();
        ki.compact(4, &mut avail, TombstoneAtCompaction::Keep);
        assert!(avail.is_empty());
        assert!(ki.is_empty());
    }

    #[test]
    fn a_tombstone_at_the_compaction_revision_is_kept_unless_the_defect_drops_it() {
        // put 2, delete 3, put 5: compaction at 3 keeps the deletion for watchers from 3.
        let build = || {
            let mut ki = KeyIndex::default();
            ki.put(r(2));
            assert!(ki.tombstone(r(3)));
            ki.put(r(5));
            ki
        };
        let mut kept = build();
        let mut avail = BTreeSet::new();
        kept.compact(3, &mut avail, TombstoneAtCompaction::Keep);
        assert_eq!(avail, BTreeSet::from([r(3)]));
        let mut dropped = build();
        let mut avail = BTreeSet::new();
        dropped.compact(3, &mut avail, TombstoneAtCompaction::Drop);
        assert!(avail.is_empty(), "etcd 18089: the tombstone at 3 is gone");
        assert_eq!(dropped.get(5), kept.get(5));
    }

    #[test]
    fn keep_skips_tombstones() {
        let ki = sample();
        let mut avail = BTreeSet::new();
        ki.keep(6, &mut avail, TombstoneAtCompaction::Keep);
        assert!(avail.is_empty());
        ki.keep(5, &mut avail, TombstoneAtCompaction::Keep);
        assert_eq!(avail, BTreeSet::from([r(4)]));
    }

    #[test]
    fn rollback_undoes_puts_and_tombstones() {
        let mut ki = sample();
        let before = ki.clone();
        let m = ki.mark();
        ki.put(r(20));
        assert!(ki.tombstone(r(21)));
        ki.put(r(22));
        ki.rollback(m);
        assert_eq!(ki, before);
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        assert!(ki.tombstone(r(3)));
        let before = ki.clone();
        let m = ki.mark();
        ki.put(r(4));
        ki.put(r(5));
        ki.rollback(m);
        assert_eq!(ki, before);
    }

    #[test]
    fn restore_tombstone_is_not_live() {
        let mut ki = KeyIndex::default();
        ki.restore_tombstone(r(5));
        assert_eq!(ki.get(5), None);
        assert_eq!(ki.get(9), None);
        assert!(!ki.is_empty());
        ki.put(r(7));
        assert_eq!(ki.get(7), Some((r(7), r(7), 1)));
        let mut avail = BTreeSet::new();
        ki.compact(6, &mut avail, TombstoneAtCompaction::Keep);
        assert!(avail.is_empty());
        assert_eq!(ki.generations.len(), 1);
    }
}
