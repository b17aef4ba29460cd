//! Reads of one bucket: the uncommitted batch, over the batch being committed (if any), over a
//! redb read transaction (etcd's read buffer over bbolt's read tx).

use super::{BackendError, Buffer};
use std::ops::Bound;
use std::path::Path;

type Table = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Reads one bucket: the uncommitted batch merged over a redb read transaction.
pub struct BucketReader<'a> {
    path: &'a Path,
    buffer: Option<&'a Buffer>,
    committing: Option<&'a Buffer>,
    table: Table,
}

type Entry<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// Two sorted batch ranges merged in key order; on equal keys the newer one wins.
struct Newer<'a, A: Iterator<Item = Entry<'a>>, B: Iterator<Item = Entry<'a>>> {
    newer: std::iter::Peekable<A>,
    older: std::iter::Peekable<B>,
}

impl<'a, A: Iterator<Item = Entry<'a>>, B: Iterator<Item = Entry<'a>>> Iterator
    for Newer<'a, A, B>
{
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        match (self.newer.peek(), self.older.peek()) {
            (Some(n), Some(o)) if n.0 == o.0 => {
                self.older.next();
                self.newer.next()
            }
            (Some(n), Some(o)) if o.0 < n.0 => self.older.next(),
            (Some(_), _) => self.newer.next(),
            (None, _) => self.older.next(),
        }
    }
}

impl<'a> BucketReader<'a> {
    pub(super) fn new(
        path: &'a Path,
        buffer: Option<&'a Buffer>,
        committing: Option<&'a Buffer>,
        table: Table,
    ) -> Self {
        BucketReader {
            path,
            buffer,
            committing,
            table,
        }
    }

    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.get_with(key, |v| v.to_vec())
    }

    /// Reads one key and maps its value without copying it.
    pub fn get_with<T>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, BackendError> {
        if let Some(v) = self
            .buffer
            .and_then(|b| b.get(key))
            .or_else(|| self.committing.and_then(|b| b.get(key)))
        {
            return Ok(v.as_deref().map(f));
        }
        let got = self
            .table
            .get(key)
            .map_err(|e| BackendError::from_redb(self.path, "read", e))?;
        Ok(got.map(|g| f(g.value())))
    }

    /// Calls `f` on every entry with `start <= key < end` in key order until it returns false.
    pub fn for_each(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        if let Some(end) = end {
            if end <= start {
                return Ok(());
            }
        }
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let bounds = (Bound::Included(start), upper);
        let newer = self
            .buffer
            .map(|b| b.range::<[u8], _>(bounds))
            .into_iter()
            .flatten();
        let older = self
            .committing
            .map(|b| b.range::<[u8], _>(bounds))
            .into_iter()
            .flatten();
        let mut buffered = Newer {
            newer: newer.peekable(),
            older: older.peekable(),
        }
        .peekable();
        let iter = self
            .table
            .range::<&[u8]>(bounds)
            .map_err(|e| BackendError::from_redb(self.path, "range", e))?;
        for item in iter {
            let (k, v) = item.map_err(|e| BackendError::from_redb(self.path, "range", e))?;
            let k = k.value();
            while let Some((bk, bv)) = buffered.next_if(|(bk, _)| bk.as_slice() < k) {
                if let Some(bv) = bv {
                    if !f(bk, bv) {
                        return Ok(());
                    }
                }
            }
            if let Some((bk, bv)) = buffered.next_if(|(bk, _)| bk.as_slice() == k) {
                // The batch overrides (or deletes) the committed value.
                if let Some(bv) = bv {
                    if !f(bk, bv) {
                        return Ok(());
                    }
                }
                continue;
            }
            if !f(k, v.value()) {
                return Ok(());
            }
        }
        for (bk, bv) in buffered {
            if let Some(bv) = bv {
                if !f(bk, bv) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
