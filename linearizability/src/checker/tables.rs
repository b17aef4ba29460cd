//! Allocation-light hash tables used by the search: a state interner, an integer map for the
//! transition memo, and the visited-configuration cache with dominance on unknown operations.
//!
//! Owns: memory layout and probing. Must never know about models' semantics or the search order;
//! everything here is keyed by plain integers and word slices.

use std::hash::Hash;

use crate::fxhash::{hash_one, mix};

const EMPTY: u32 = u32::MAX;

/// Slot for a hash: its high 32 bits (so the cache can rehash from the stored tag alone).
#[inline]
fn table_index(hash: u64, mask: usize) -> usize {
    (hash >> 32) as usize & mask
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

/// Open-addressing `u64 -> u64` map; `u64::MAX` is reserved as the empty key. Keys and values
/// sit side by side so a lookup touches one cache line.
pub(crate) struct U64Map {
    slots: Vec<(u64, u64)>,
    len: usize,
}

impl U64Map {
    pub(crate) fn new() -> Self {
        U64Map {
            slots: vec![(u64::MAX, 0); 256],
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        let mask = self.slots.len() - 1;
        let mut i = table_index(mix(key), mask);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == u64::MAX {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts a key that is known to be absent.
    pub(crate) fn insert_new(&mut self, key: u64, value: u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            let size = self.slots.len() * 2;
            let old = std::mem::replace(&mut self.slots, vec![(u64::MAX, 0); size]);
            for (k, v) in old {
                if k != u64::MAX {
                    self.place(k, v);
                }
            }
        }
        self.place(key, value);
        self.len += 1;
    }

    fn place(&mut self, key: u64, value: u64) {
        let mask = self.slots.len() - 1;
        let mut i = table_index(mix(key), mask);
        while self.slots[i].0 != u64::MAX {
            i = (i + 1) & mask;
        }
        self.slots[i] = (key, value);
    }
}

/// Configurations sharing (K, state).
#[derive(Clone, Copy)]
struct Group {
    sid: u32,
    p: u32,
    koff: u32,
    klen: u32,
    first: u32,
}

/// One F (set of unknown operations that took effect) inside a group.
#[derive(Clone, Copy)]
struct Entry {
    /// The first word of F (all of F when there are at most 64 unknown operations).
    f0: u64,
    next: u32,
    done: bool,
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
    /// Bytes the cache may hold; past them it still prunes with what it has but records no
    /// new configuration (sound: the cache only prunes, so forgetting costs time, never a
    /// verdict; the step budget bounds the time).
    limit_bytes: usize,
    /// Whether the limit was reached.
    pub(crate) limited: bool,
    /// (hash tag << 32) | group index; `u64::MAX` when empty.
    table: Vec<u64>,
    groups: Vec<Group>,
    kwords: Vec<u64>,
    entries: Vec<Entry>,
    /// Words of F per entry beyond the first (empty when F fits in one word).
    f_words_per_entry: usize,
    f_rest: Vec<u64>,
}

impl Cache {
    pub(crate) fn new(f_words_per_entry: usize, limit_bytes: usize) -> Self {
        Cache {
            limit_bytes,
            limited: false,
            table: vec![u64::MAX; 1024],
            groups: Vec::new(),
            kwords: Vec::new(),
            entries: Vec::new(),
            f_words_per_entry,
            f_rest: Vec::new(),
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.table.len() * 8
            + self.groups.len() * std::mem::size_of::<Group>()
            + self.kwords.len() * 8
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.f_rest.len() * 8
    }

    /// Whether a new entry would pass the limit (then it is not recorded).
    fn full(&mut self) -> bool {
        if !self.limited && self.bytes() >= self.limit_bytes {
            self.limited = true;
        }
        self.limited
    }

    /// Records a configuration. Returns `None` if it (or a configuration dominating it) was seen,
    /// otherwise the id of the new entry (to be passed to [`Cache::finish`] later; `u32::MAX`
    /// when the cache is full and did not record it).
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
        let tag = h & 0xffff_ffff_0000_0000;
        let mask = self.table.len() - 1;
        let mut i = table_index(h, mask);
        loop {
            let slot = self.table[i];
            if slot == u64::MAX {
                break;
            }
            if slot & 0xffff_ffff_0000_0000 == tag {
                let gi = (slot & 0xffff_ffff) as usize;
                let g = self.groups[gi];
                if g.sid == sid
                    && g.p == p
                    && &self.kwords[g.koff as usize..(g.koff + g.klen) as usize] == k
                {
                    return self.visit_group(gi, f);
                }
            }
            i = (i + 1) & mask;
        }
        if self.full() {
            return Some(EMPTY);
        }
        let gi = self.groups.len();
        self.table[i] = tag | gi as u64;
        let first = self.new_entry(f, EMPTY);
        self.groups.push(Group {
            sid,
            p,
            koff: self.kwords.len() as u32,
            klen: k.len() as u32,
            first,
        });
        self.kwords.extend_from_slice(k);
        if self.groups.len() * 2 > self.table.len() {
            self.grow();
        }
        Some(first)
    }

    fn f_of(&self, e: usize) -> (u64, &[u64]) {
        let w = self.f_words_per_entry.saturating_sub(1);
        (self.entries[e].f0, &self.f_rest[e * w..e * w + w])
    }

    fn visit_group(&mut self, gi: usize, f: &[u64]) -> Option<u32> {
        let (f0, f_rest) = match f.split_first() {
            Some((a, rest)) => (*a, rest),
            None => (0, &[][..]),
        };
        let mut e = self.groups[gi].first;
        while e != EMPTY {
            let ei = e as usize;
            let (old0, old_rest) = self.f_of(ei);
            if old0 == f0 && old_rest == f_rest {
                return None;
            }
            if self.entries[ei].done
                && old0 & !f0 == 0
                && old_rest.iter().zip(f_rest).all(|(o, n)| o & !n == 0)
            {
                return None;
            }
            e = self.entries[ei].next;
        }
        if self.full() {
            return Some(EMPTY);
        }
        let first = self.groups[gi].first;
        let e = self.new_entry(f, first);
        self.groups[gi].first = e;
        Some(e)
    }

    fn new_entry(&mut self, f: &[u64], next: u32) -> u32 {
        let e = self.entries.len() as u32;
        let (f0, rest) = match f.split_first() {
            Some((a, rest)) => (*a, rest),
            None => (0, &[][..]),
        };
        self.f_rest.extend_from_slice(rest);
        self.entries.push(Entry {
            f0,
            next,
            done: false,
        });
        e
    }

    /// Marks an entry as fully explored (and therefore failed).
    #[inline]
    pub(crate) fn finish(&mut self, entry: u32) {
        if let Some(e) = self.entries.get_mut(entry as usize) {
            e.done = true;
        }
    }

    fn grow(&mut self) {
        let size = self.table.len() * 2;
        let mask = size - 1;
        let old = std::mem::replace(&mut self.table, vec![u64::MAX; size]);
        for slot in old {
            if slot == u64::MAX {
                continue;
            }
            // The tag holds the hash's high 32 bits, which is what `table_index` uses.
            let mut i = table_index(slot & 0xffff_ffff_0000_0000, mask);
            while self.table[i] != u64::MAX {
                i = (i + 1) & mask;
            }
            self.table[i] = slot;
        }
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
        let mut c = Cache::new(1, usize::MAX);
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

    #[test]
    fn a_full_cache_records_nothing_more_but_still_prunes_what_it_holds() {
        let mut c = Cache::new(1, 0);
        // Full from the start (the table alone passes 0 bytes): nothing is recorded.
        assert_eq!(c.visit(5, 1, 0, &[0b11], &[0b01]), Some(EMPTY));
        assert_eq!(c.visit(5, 1, 0, &[0b11], &[0b01]), Some(EMPTY));
        assert!(c.limited);
        let mut c = Cache::new(1, usize::MAX);
        let e = c.visit(5, 1, 0, &[0b11], &[0b01]).unwrap();
        c.finish(e);
        c.limit_bytes = c.bytes();
        // What it holds still prunes; new configurations pass unrecorded.
        assert_eq!(c.visit(5, 1, 0, &[0b11], &[0b01]), None);
        assert_eq!(c.visit(5, 2, 0, &[0b11], &[0b01]), Some(EMPTY));
        assert_eq!(c.visit(5, 2, 0, &[0b11], &[0b01]), Some(EMPTY));
        c.finish(EMPTY);
        assert!(c.limited && c.bytes() <= c.limit_bytes);
    }
}
