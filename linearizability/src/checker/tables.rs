//! Allocation-light hash tables used by the search: a state interner, an integer map for the
//! transition memo, and the visited-configuration cache with dominance on unknown operations.
//!
//! Owns: memory layout and probing. Must never know about models' semantics or the search order;
//! everything here is keyed by plain integers and word slices.

use std::hash::Hash;

use crate::fxhash::{hash_one, mix};

const EMPTY: u32 = u32::MAX;

fn table_index(hash: u64, mask: usize) -> usize {
    // Use the high bits: the low bits of Zobrist xors are fine too, but this is uniform.
    (hash >> 20) as usize & mask
}

/// Maps states to dense `u32` ids so that the search handles integers only.
pub(crate) struct Interner<S> {
    items: Vec<S>,
    hashes: Vec<u64>,
    table: Vec<u32>,
}

impl<S: Eq + Hash> Interner<S> {
    pub(crate) fn new() -> Self {
        Interner {
            items: Vec::new(),
            hashes: Vec::new(),
            table: vec![EMPTY; 64],
        }
    }

    pub(crate) fn get(&self, id: u32) -> &S {
        &self.items[id as usize]
    }

    pub(crate) fn intern(&mut self, item: S) -> u32 {
        let h = hash_one(&item);
        let mask = self.table.len() - 1;
        let mut i = table_index(h, mask);
        loop {
            let slot = self.table[i];
            if slot == EMPTY {
                break;
            }
            if self.hashes[slot as usize] == h && self.items[slot as usize] == item {
                return slot;
            }
            i = (i + 1) & mask;
        }
        let id = self.items.len() as u32;
        self.table[i] = id;
        self.items.push(item);
        self.hashes.push(h);
        if self.items.len() * 2 > self.table.len() {
            self.grow();
        }
        id
    }

    fn grow(&mut self) {
        let size = self.table.len() * 2;
        let mask = size - 1;
        let mut table = vec![EMPTY; size];
        for (id, &h) in self.hashes.iter().enumerate() {
            let mut i = table_index(h, mask);
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = id as u32;
        }
        self.table = table;
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn into_items(self) -> Vec<S> {
        self.items
    }
}

/// Open-addressing `u64 -> u64` map; `u64::MAX` is reserved as the empty key.
pub(crate) struct U64Map {
    keys: Vec<u64>,
    values: Vec<u64>,
    len: usize,
}

impl U64Map {
    pub(crate) fn new() -> Self {
        U64Map {
            keys: vec![u64::MAX; 256],
            values: vec![0; 256],
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        let mask = self.keys.len() - 1;
        let mut i = table_index(mix(key), mask);
        loop {
            let k = self.keys[i];
            if k == key {
                return Some(self.values[i]);
            }
            if k == u64::MAX {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts a key that is known to be absent.
    pub(crate) fn insert_new(&mut self, key: u64, value: u64) {
        if (self.len + 1) * 2 > self.keys.len() {
            let size = self.keys.len() * 2;
            let old_keys = std::mem::replace(&mut self.keys, vec![u64::MAX; size]);
            let old_values = std::mem::replace(&mut self.values, vec![0; size]);
            for (k, v) in old_keys.into_iter().zip(old_values) {
                if k != u64::MAX {
                    self.place(k, v);
                }
            }
        }
        self.place(key, value);
        self.len += 1;
    }

    fn place(&mut self, key: u64, value: u64) {
        let mask = self.keys.len() - 1;
        let mut i = table_index(mix(key), mask);
        while self.keys[i] != u64::MAX {
            i = (i + 1) & mask;
        }
        self.keys[i] = key;
        self.values[i] = value;
    }
}

/// The set of visited search configurations.
///
/// A configuration is (set K of linearized known-outcome operations, set F of unknown-outcome
/// operations that took effect, state). K is stored compactly as `p` (every known operation
/// before `p` is linearized) plus the bitset words from `p / 64` to the highest linearized
/// operation. Configurations with the same (K, state) form a group; inside a group each F is an
/// entry. A new configuration is pruned if its F equals a visited one, or if a *finished* (fully
/// explored, hence failed) entry's F is a subset of it: whatever extra unknown operations took
/// effect could instead have been placed after the end.
pub(crate) struct Cache {
    table: Vec<u32>,
    groups: usize,
    g_hash: Vec<u64>,
    g_sid: Vec<u32>,
    g_p: Vec<u32>,
    g_koff: Vec<u32>,
    g_klen: Vec<u32>,
    g_first: Vec<u32>,
    kwords: Vec<u64>,
    f_words_per_entry: usize,
    f_words: Vec<u64>,
    f_next: Vec<u32>,
    f_done: Vec<bool>,
}

impl Cache {
    pub(crate) fn new(f_words_per_entry: usize) -> Self {
        Cache {
            table: vec![EMPTY; 1024],
            groups: 0,
            g_hash: Vec::new(),
            g_sid: Vec::new(),
            g_p: Vec::new(),
            g_koff: Vec::new(),
            g_klen: Vec::new(),
            g_first: Vec::new(),
            kwords: Vec::new(),
            f_words_per_entry,
            f_words: Vec::new(),
            f_next: Vec::new(),
            f_done: Vec::new(),
        }
    }

    /// Records a configuration. Returns `None` if it (or a configuration dominating it) was seen,
    /// otherwise the id of the new entry (to be passed to [`Cache::finish`] later).
    #[inline]
    pub(crate) fn visit(
        &mut self,
        khash: u64,
        sid: u32,
        p: u32,
        k: &[u64],
        f: &[u64],
    ) -> Option<u32> {
        let h = khash ^ mix(u64::from(sid).wrapping_add(0x9e37_79b9_7f4a_7c15));
        let mask = self.table.len() - 1;
        let mut i = table_index(h, mask);
        loop {
            let g = self.table[i];
            if g == EMPTY {
                break;
            }
            let gi = g as usize;
            if self.g_hash[gi] == h
                && self.g_sid[gi] == sid
                && self.g_p[gi] == p
                && self.k_of(gi) == k
            {
                return self.visit_group(gi, f);
            }
            i = (i + 1) & mask;
        }
        let gi = self.groups;
        self.groups += 1;
        self.table[i] = gi as u32;
        self.g_hash.push(h);
        self.g_sid.push(sid);
        self.g_p.push(p);
        self.g_koff.push(self.kwords.len() as u32);
        self.g_klen.push(k.len() as u32);
        self.kwords.extend_from_slice(k);
        let e = self.new_entry(f, EMPTY);
        self.g_first.push(e);
        if self.groups * 2 > self.table.len() {
            self.grow();
        }
        Some(e)
    }

    fn k_of(&self, gi: usize) -> &[u64] {
        let off = self.g_koff[gi] as usize;
        &self.kwords[off..off + self.g_klen[gi] as usize]
    }

    fn visit_group(&mut self, gi: usize, f: &[u64]) -> Option<u32> {
        let w = self.f_words_per_entry;
        let mut e = self.g_first[gi];
        while e != EMPTY {
            let ei = e as usize;
            let old = &self.f_words[ei * w..ei * w + w];
            if old == f {
                return None;
            }
            if self.f_done[ei] && old.iter().zip(f).all(|(o, n)| o & !n == 0) {
                return None;
            }
            e = self.f_next[ei];
        }
        let first = self.g_first[gi];
        let e = self.new_entry(f, first);
        self.g_first[gi] = e;
        Some(e)
    }

    fn new_entry(&mut self, f: &[u64], next: u32) -> u32 {
        let e = self.f_next.len() as u32;
        self.f_words.extend_from_slice(f);
        self.f_next.push(next);
        self.f_done.push(false);
        e
    }

    /// Marks an entry as fully explored (and therefore failed).
    #[inline]
    pub(crate) fn finish(&mut self, entry: u32) {
        self.f_done[entry as usize] = true;
    }

    fn grow(&mut self) {
        let size = self.table.len() * 2;
        let mask = size - 1;
        let mut table = vec![EMPTY; size];
        for (gi, &h) in self.g_hash.iter().enumerate() {
            let mut i = table_index(h, mask);
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = gi as u32;
        }
        self.table = table;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_dedups() {
        let mut i = Interner::new();
        let ids: Vec<u32> = (0..1000).map(|x| i.intern(x % 300)).collect();
        assert_eq!(ids[0], ids[300]);
        assert_ne!(ids[1], ids[2]);
        assert_eq!(*i.get(ids[299]), 299);
    }

    #[test]
    fn u64map_round_trip() {
        let mut m = U64Map::new();
        for k in 0..5000u64 {
            m.insert_new(k * 7, k);
        }
        assert_eq!(m.get(7 * 4999), Some(4999));
        assert_eq!(m.get(3), None);
    }

    #[test]
    fn cache_exact_and_dominance() {
        let mut c = Cache::new(1);
        let e = c.visit(5, 1, 0, &[0b11], &[0b01]).unwrap();
        assert_eq!(c.visit(5, 1, 0, &[0b11], &[0b01]), None);
        // Superset of an unfinished entry: not pruned.
        let e2 = c.visit(5, 1, 0, &[0b11], &[0b11]).unwrap();
        c.finish(e);
        // Superset of a finished entry: pruned.
        assert_eq!(c.visit(5, 1, 0, &[0b11], &[0b101]), None);
        // Different state or K: new.
        assert!(c.visit(5, 2, 0, &[0b11], &[0b101]).is_some());
        assert!(c.visit(6, 1, 0, &[0b111], &[0b101]).is_some());
        assert_ne!(e, e2);
    }
}
