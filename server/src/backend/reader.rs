//! Reads of one bucket: the uncommitted batch merged over a redb read transaction (etcd's
//! read buffer over bbolt's read tx).

use super::{BackendError, Buffer};
use std::ops::Bound;
use std::path::Path;

type Table = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Reads one bucket: the uncommitted batch merged over a redb read transaction.
pub struct BucketReader<'a> {
    path: &'a Path,
    buffer: Option<&'a Buffer>,
    table: Table,
}

impl<'a> BucketReader<'a> {
    pub(super) fn new(path: &'a Path, buffer: Option<&'a Buffer>, table: Table) -> Self {
        BucketReader {
            path,
            buffer,
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
        if let Some(v) = self.buffer.and_then(|b| b.get(key)) {
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
        let mut buffered = self
            .buffer
            .map(|b| b.range::<[u8], _>(bounds))
            .into_iter()
            .flatten()
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
