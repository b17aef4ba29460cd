//! The execution context of one request: a read view of the store (key index + backend) with a
//! private write overlay, like etcd's `storeTxnRead`/`storeTxnWrite`.
//!
//! Writes go to the overlay (cloned key indexes and a change list) and become visible to later
//! ops of the same request; the store applies them only if the whole request succeeds, so a
//! failing request changes nothing.

use super::error::MvccError;
use super::key_index::KeyIndex;
use super::revision::Revision;
use crate::backend::BucketReader;
use etcd_client::proto::PbKeyValue;
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
    pub(crate) kvs: Vec<PbKeyValue>,
    pub(crate) count: i64,
    pub(crate) rev: i64,
}

/// One write of the request: a put or (tombstone) a delete.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) rev: Revision,
    pub(crate) kv: PbKeyValue,
    pub(crate) tombstone: bool,
}

/// What a successful request hands back to the store to apply.
#[derive(Debug, Default)]
pub(crate) struct WriteSet {
    pub(crate) overlay: BTreeMap<Vec<u8>, KeyIndex>,
    pub(crate) changes: Vec<Change>,
}

pub(crate) struct Exec<'s> {
    index: &'s BTreeMap<Vec<u8>, KeyIndex>,
    reader: BucketReader<'s>,
    begin_rev: i64,
    compact_rev: i64,
    overlay: BTreeMap<Vec<u8>, KeyIndex>,
    changes: Vec<Change>,
}

impl<'s> Exec<'s> {
    pub(crate) fn new(
        index: &'s BTreeMap<Vec<u8>, KeyIndex>,
        reader: BucketReader<'s>,
        current_rev: i64,
        compact_rev: i64,
    ) -> Self {
        Exec {
            index,
            reader,
            begin_rev: current_rev,
            compact_rev,
            overlay: BTreeMap::new(),
            changes: Vec::new(),
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

    pub(crate) fn finish(self) -> WriteSet {
        WriteSet {
            overlay: self.overlay,
            changes: self.changes,
        }
    }

    fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.overlay.get(key).or_else(|| self.index.get(key))
    }

    /// Visits the key indexes in `range` in key order (overlay over the store's index).
    fn visit(&self, range: &KeyRange, mut f: impl FnMut(&[u8], &KeyIndex)) {
        let (start, end) = match range {
            KeyRange::Single(k) => {
                if let Some(ki) = self.key_index(k) {
                    f(k, ki);
                }
                return;
            }
            KeyRange::Range(s, e) => (s.as_slice(), e.as_deref()),
        };
        let Some(b) = bounds(start, end) else {
            return;
        };
        let mut base = self.index.range::<[u8], _>(b).peekable();
        if self.overlay.is_empty() {
            for (k, ki) in base {
                f(k, ki);
            }
            return;
        }
        let mut over = self.overlay.range::<[u8], _>(b).peekable();
        loop {
            let take_over = match (base.peek(), over.peek()) {
                (None, None) => return,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((ok, _))) => {
                    if bk == ok {
                        base.next();
                        true
                    } else {
                        ok < bk
                    }
                }
            };
            let (k, ki) =
                if take_over { over.next() } else { base.next() }.expect("peeked an element");
            f(k, ki);
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
    fn fetch(&self, rev: Revision) -> Result<PbKeyValue, MvccError> {
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
            .get_with(&key, |b: &[u8]| PbKeyValue::decode(b))?
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

    fn overlay_entry(&mut self, key: &[u8]) -> &mut KeyIndex {
        if !self.overlay.contains_key(key) {
            let base = self.index.get(key).cloned().unwrap_or_default();
            self.overlay.insert(key.to_vec(), base);
        }
        self.overlay.get_mut(key).expect("just inserted")
    }

    /// etcd's `storeTxnWrite.put`; returns the revision of the write.
    pub(crate) fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> i64 {
        let rev = self.begin_rev + 1;
        let (created, ver) = match self.key_index(key).and_then(|ki| ki.get(rev)) {
            Some((_, created, ver)) => (created.main, ver),
            None => (rev, 0),
        };
        let idx_rev = Revision::new(rev, self.changes.len() as i64);
        self.overlay_entry(key).put(idx_rev);
        self.changes.push(Change {
            rev: idx_rev,
            kv: PbKeyValue {
                key: key.to_vec(),
                create_revision: created,
                mod_revision: rev,
                version: ver + 1,
                value,
                lease,
            },
            tombstone: false,
        });
        rev
    }

    /// etcd's `storeTxnWrite.DeleteRange`: `(deleted, revision)`; deleting nothing in a
    /// request without writes leaves the revision unchanged.
    pub(crate) fn delete_range(&mut self, range: &KeyRange) -> (i64, i64) {
        let keys = self.live_keys(range, self.cur_rev());
        for k in &keys {
            self.delete(k);
        }
        if !keys.is_empty() || self.has_changes() {
            (keys.len() as i64, self.begin_rev + 1)
        } else {
            (0, self.begin_rev)
        }
    }

    fn delete(&mut self, key: &[u8]) {
        let idx_rev = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
        let live = self.overlay_entry(key).tombstone(idx_rev);
        debug_assert!(live, "delete of a key that is not live");
        self.changes.push(Change {
            rev: idx_rev,
            kv: PbKeyValue {
                key: key.to_vec(),
                ..Default::default()
            },
            tombstone: true,
        });
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
