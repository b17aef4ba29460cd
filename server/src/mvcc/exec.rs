//! The execution context of one request, like etcd's `storeTxnRead`/`storeTxnWrite`: the key
//! index (shared for reads, exclusive for writes) and a reader of the `key` bucket.
//!
//! Writes update the key index at once (later ops of the request see them) and collect their
//! key-values in a change list; the store writes the changes to the backend only if the whole
//! request succeeds, and otherwise [`Exec::rollback`] restores the index, so a failing request
//! changes nothing.

use super::error::MvccError;
use super::key_index::{KeyIndex, Mark};
use super::revision::Revision;
use crate::backend::BucketReader;
use etcd_api::mvccpb;
use prost::Message as _;
use std::collections::BTreeMap;
use std::ops::Bound;

/// The keys a request addresses, after etcd's `mkGteRange`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// `range_end` empty: exactly `key`.
    Single(Vec<u8>),
    /// `[start, end)`; `end == None` (range_end `"\0"`): every key `>= start`.
    Range(Vec<u8>, Option<Vec<u8>>),
}

impl KeyRange {
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Range(key.to_vec(), None),
            end => KeyRange::Range(key.to_vec(), Some(end.to_vec())),
        }
    }
}

type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// `(start, end)` bounds for a BTreeMap range, or `None` when the range is empty.
fn bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> Option<Bounds<'a>> {
    match end {
        Some(e) if e <= start => None,
        Some(e) => Some((Bound::Included(start), Bound::Excluded(e))),
        None => Some((Bound::Included(start), Bound::Unbounded)),
    }
}

/// etcd's `RangeOptions`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RangeOptions {
    pub(crate) limit: i64,
    pub(crate) rev: i64,
    pub(crate) count: bool,
}

/// etcd's `RangeResult`.
#[derive(Debug, Default)]
pub(crate) struct RangeResult {
    pub(crate) kvs: Vec<mvccpb::KeyValue>,
    pub(crate) count: i64,
    pub(crate) rev: i64,
}

/// One write of the request: a put or (tombstone) a delete.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) rev: Revision,
    pub(crate) kv: mvccpb::KeyValue,
    pub(crate) tombstone: bool,
}

type Tree = BTreeMap<Vec<u8>, KeyIndex>;

enum Index<'s> {
    Read(&'s Tree),
    Write(&'s mut Tree),
}

pub(crate) struct Exec<'s> {
    index: Index<'s>,
    reader: BucketReader<'s>,
    begin_rev: i64,
    compact_rev: i64,
    /// First-touch shape of every key this request wrote (`None`: the key was new).
    undo: BTreeMap<Vec<u8>, Option<Mark>>,
    changes: Vec<Change>,
}

impl<'s> Exec<'s> {
    /// A context that may only read.
    pub(crate) fn read(
        index: &'s Tree,
        reader: BucketReader<'s>,
        current_rev: i64,
        compact_rev: i64,
    ) -> Self {
        Self::build(Index::Read(index), reader, current_rev, compact_rev)
    }

    /// A context that may write (the store applies or rolls back its changes).
    pub(crate) fn write(
        index: &'s mut Tree,
        reader: BucketReader<'s>,
        current_rev: i64,
        compact_rev: i64,
    ) -> Self {
        Self::build(Index::Write(index), reader, current_rev, compact_rev)
    }

    fn build(
        index: Index<'s>,
        reader: BucketReader<'s>,
        current_rev: i64,
        compact_rev: i64,
    ) -> Self {
        Exec {
            index,
            reader,
            begin_rev: current_rev,
            compact_rev,
            undo: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    fn tree(&self) -> &Tree {
        match &self.index {
            Index::Read(t) => t,
            Index::Write(t) => t,
        }
    }

    /// The store revision before this request.
    pub(crate) fn begin_rev(&self) -> i64 {
        self.begin_rev
    }

    pub(crate) fn compact_rev(&self) -> i64 {
        self.compact_rev
    }

    pub(crate) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The revision reads see now: one past `begin_rev` once this request wrote something.
    pub(crate) fn cur_rev(&self) -> i64 {
        self.begin_rev + i64::from(self.has_changes())
    }

    /// The request succeeded: its changes, for the store to write to the backend.
    pub(crate) fn finish(self) -> Vec<Change> {
        self.changes
    }

    /// The request failed: restores every key index it touched.
    pub(crate) fn rollback(self) {
        let Index::Write(tree) = self.index else {
            return;
        };
        for (key, mark) in self.undo {
            match mark {
                None => {
                    tree.remove(&key);
                }
                Some(mark) => {
                    if let Some(ki) = tree.get_mut(&key) {
                        ki.rollback(mark);
                    }
                }
            }
        }
    }

    fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.tree().get(key)
    }

    /// Visits the key indexes in `range` in key order.
    fn visit(&self, range: &KeyRange, mut f: impl FnMut(&[u8], &KeyIndex)) {
        match range {
            KeyRange::Single(k) => {
                if let Some(ki) = self.key_index(k) {
                    f(k, ki);
                }
            }
            KeyRange::Range(start, end) => {
                if let Some(b) = bounds(start, end.as_deref()) {
                    for (k, ki) in self.tree().range::<[u8], _>(b) {
                        f(k, ki);
                    }
                }
            }
        }
    }

    /// etcd's `treeIndex.Revisions`: live revisions at `at_rev` (at most `limit` if > 0) and
    /// the total number of live keys in the range.
    fn revisions(&self, range: &KeyRange, at_rev: i64, limit: i64) -> (Vec<Revision>, i64) {
        let mut revs = Vec::new();
        let mut total = 0;
        self.visit(range, |_, ki| {
            if let Some((modified, _, _)) = ki.get(at_rev) {
                if limit <= 0 || (revs.len() as i64) < limit {
                    revs.push(modified);
                }
                total += 1;
            }
        });
        (revs, total)
    }

    /// Keys live at `at_rev` in the range.
    fn live_keys(&self, range: &KeyRange, at_rev: i64) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        self.visit(range, |k, ki| {
            if ki.get(at_rev).is_some() {
                keys.push(k.to_vec());
            }
        });
        keys
    }

    /// Reads the key-value stored at a (non-tombstone) revision.
    fn fetch(&self, rev: Revision) -> Result<mvccpb::KeyValue, MvccError> {
        if rev.main == self.begin_rev + 1 {
            if let Some(c) = usize::try_from(rev.sub)
                .ok()
                .and_then(|i| self.changes.get(i))
            {
                return Ok(c.kv.clone());
            }
        }
        let key = rev.to_bytes();
        match self
            .reader
            .get_with(&key, |b: &[u8]| mvccpb::KeyValue::decode(b))?
        {
            Some(Ok(kv)) => Ok(kv),
            Some(Err(e)) => Err(MvccError::corrupt(
                &key,
                format!("undecodable KeyValue: {e}"),
            )),
            None => Err(MvccError::corrupt(
                &key,
                format!(
                    "revision {}.{} is in the index but not in the key bucket",
                    rev.main, rev.sub
                ),
            )),
        }
    }

    /// Every live key's newest version, read from the index as etcd's restore reads the key
    /// bucket (`keyToLease`), without `rangeKeys`' revision checks.
    pub(crate) fn newest_versions(&self) -> Result<Vec<mvccpb::KeyValue>, MvccError> {
        let (revs, _) = self.revisions(&KeyRange::Range(vec![0], None), self.cur_rev(), -1);
        revs.into_iter().map(|r| self.fetch(r)).collect()
    }

    /// etcd's `rangeKeys`.
    pub(crate) fn range_keys(
        &self,
        range: &KeyRange,
        ro: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let cur = self.cur_rev();
        if ro.rev > cur {
            return Err(MvccError::FutureRev);
        }
        let rev = if ro.rev <= 0 { cur } else { ro.rev };
        if rev < self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if ro.count {
            let (_, total) = self.revisions(range, rev, -1);
            return Ok(RangeResult {
                kvs: Vec::new(),
                count: total,
                rev: cur,
            });
        }
        let (revs, total) = self.revisions(range, rev, ro.limit);
        let kvs = revs
            .into_iter()
            .map(|r| self.fetch(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RangeResult {
            kvs,
            count: total,
            rev: cur,
        })
    }

    /// The key's index for writing, remembering its shape for rollback on first touch.
    fn touch(&mut self, key: &[u8]) -> Result<&mut KeyIndex, MvccError> {
        let Index::Write(tree) = &mut self.index else {
            return Err(MvccError::Internal("write in a read-only context".into()));
        };
        if !self.undo.contains_key(key) {
            self.undo
                .insert(key.to_vec(), tree.get(key).map(KeyIndex::mark));
        }
        Ok(tree.entry(key.to_vec()).or_default())
    }

    /// etcd's `storeTxnWrite.put`; returns the revision of the write.
    pub(crate) fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<i64, MvccError> {
        let rev = self.begin_rev + 1;
        let (created, ver) = match self.key_index(key).and_then(|ki| ki.get(rev)) {
            Some((_, created, ver)) => (created.main, ver),
            None => (rev, 0),
        };
        let idx_rev = Revision::new(rev, self.changes.len() as i64);
        self.touch(key)?.put(idx_rev);
        self.changes.push(Change {
            rev: idx_rev,
            kv: mvccpb::KeyValue {
                key: key.to_vec(),
                create_revision: created,
                mod_revision: rev,
                version: ver + 1,
                value,
                lease,
            },
            tombstone: false,
        });
        Ok(rev)
    }

    /// etcd's `storeTxnWrite.DeleteRange`: `(deleted, revision)`; deleting nothing in a
    /// request without writes leaves the revision unchanged.
    pub(crate) fn delete_range(&mut self, range: &KeyRange) -> Result<(i64, i64), MvccError> {
        let keys = self.live_keys(range, self.cur_rev());
        for k in &keys {
            self.delete(k)?;
        }
        Ok(if !keys.is_empty() || self.has_changes() {
            (keys.len() as i64, self.begin_rev + 1)
        } else {
            (0, self.begin_rev)
        })
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), MvccError> {
        let idx_rev = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
        if !self.touch(key)?.tombstone(idx_rev) {
            return Err(MvccError::Internal(format!(
                "delete of key {key:02x?} that is not live"
            )));
        }
        self.changes.push(Change {
            rev: idx_rev,
            kv: mvccpb::KeyValue {
                key: key.to_vec(),
                ..Default::default()
            },
            tombstone: true,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_range_follows_mk_gte_range() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a".to_vec()));
        assert_eq!(
            KeyRange::new(b"a", b"\0"),
            KeyRange::Range(b"a".to_vec(), None)
        );
        assert_eq!(
            KeyRange::new(b"a", b"b"),
            KeyRange::Range(b"a".to_vec(), Some(b"b".to_vec()))
        );
        assert!(bounds(b"b", Some(b"a")).is_none());
        assert!(bounds(b"a", Some(b"a")).is_none());
    }
}
