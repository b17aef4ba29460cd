//! The etcd model's state: current revision, compact revision, per-key MVCC versions and leases.
//!
//! Owns: the data layout and the primitive reads/writes on it (read a key at a revision, write
//! at a revision, compact, leases). The maps are persistent trees (`rpds`): a state that
//! changes one key copies O(log n) nodes and shares everything else with the state it came
//! from, so cloning is O(1), a write O(log n), and the thousands of states a search keeps
//! share their storage. The key map carries a hash maintained incrementally, so hashing and
//! comparing unchanged states is O(1) (the checker does both constantly). Must never decide request semantics (that is
//! `apply`).

use std::hash::{Hash, Hasher};

use rpds::RedBlackTreeMapSync;

use super::types::{KeyRange, KeyValue};
use crate::fxhash::hash_one;

/// A live key's contents at some revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Live {
    /// The value.
    pub value: String,
    /// Revision of creation.
    pub create_revision: i64,
    /// Modifications since creation.
    pub version: i64,
    /// Attached lease (0 = none).
    pub lease: i64,
}

/// One revision of a key: written (`live`) or deleted (`None`) at `revision`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// The revision of the change (the mod revision when live).
    pub revision: i64,
    /// The contents, or `None` for a deletion.
    pub live: Option<Live>,
}

/// The whole store.
#[derive(Debug, Clone)]
pub struct EtcdState {
    /// Current revision.
    pub revision: i64,
    /// Revisions below this were compacted away.
    pub compact_revision: i64,
    keys: RedBlackTreeMapSync<String, Vec<Version>>,
    /// Xor of the hashes of the (key, versions) entries.
    keys_hash: u64,
    leases: RedBlackTreeMapSync<i64, i64>,
    /// Xor of the hashes of the (lease, ttl) entries.
    leases_hash: u64,
}

impl PartialEq for EtcdState {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.compact_revision == other.compact_revision
            && self.keys_hash == other.keys_hash
            && self.leases_hash == other.leases_hash
            && self.keys == other.keys
            && self.leases == other.leases
    }
}

impl Eq for EtcdState {}

impl Hash for EtcdState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.revision.hash(state);
        self.compact_revision.hash(state);
        self.keys_hash.hash(state);
        self.leases_hash.hash(state);
    }
}

fn entry_hash(key: &str, versions: &[Version]) -> u64 {
    hash_one(&(key, versions))
}

impl EtcdState {
    /// An empty store at `revision`.
    pub fn new(revision: i64) -> Self {
        EtcdState {
            revision,
            compact_revision: 0,
            keys: RedBlackTreeMapSync::new_sync(),
            keys_hash: 0,
            leases: RedBlackTreeMapSync::new_sync(),
            leases_hash: 0,
        }
    }

    /// Every key with its versions, in key order.
    pub fn keys(&self) -> impl Iterator<Item = (&String, &Vec<Version>)> {
        self.keys.iter()
    }

    /// The versions of one key, oldest first.
    pub fn versions(&self, key: &str) -> Option<&Vec<Version>> {
        self.keys.get(key)
    }

    /// Leases (id, granted TTL), in id order.
    pub fn leases(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, ttl)| (*id, *ttl))
    }

    /// Number of leases.
    pub fn lease_count(&self) -> usize {
        self.leases.size()
    }

    /// Whether a lease exists.
    pub fn has_lease(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Adds a lease (replacing one with the same id).
    pub fn grant_lease(&mut self, id: i64, ttl: i64) {
        if let Some(old) = self.leases.get(&id) {
            self.leases_hash ^= hash_one(&(id, *old));
        }
        self.leases.insert_mut(id, ttl);
        self.leases_hash ^= hash_one(&(id, ttl));
    }

    /// Removes a lease; whether it existed.
    pub fn remove_lease(&mut self, id: i64) -> bool {
        match self.leases.get(&id).copied() {
            Some(ttl) => {
                self.leases_hash ^= hash_one(&(id, ttl));
                self.leases.remove_mut(&id)
            }
            None => false,
        }
    }

    /// Keys currently attached to lease `id`.
    pub fn keys_with_lease(&self, id: i64) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, v)| {
                v.last()
                    .and_then(|v| v.live.as_ref())
                    .is_some_and(|l| l.lease == id)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The key-value of `key` at revision `rev`, if it existed then.
    pub fn get_at(&self, key: &str, rev: i64) -> Option<KeyValue> {
        let versions = self.keys.get(key)?;
        let v = versions.iter().rev().find(|v| v.revision <= rev)?;
        v.live.as_ref().map(|l| kv(key, v.revision, l))
    }

    /// Every key-value in `range` at revision `rev`, sorted by key.
    pub fn range_at(&self, range: &KeyRange, rev: i64) -> Vec<KeyValue> {
        let iter: Box<dyn Iterator<Item = (&String, &Vec<Version>)>> = match &range.range_end {
            None => Box::new(self.keys.get_key_value(range.key.as_str()).into_iter()),
            Some(_) => Box::new(
                self.keys
                    .range::<str, _>((
                        std::ops::Bound::Included(range.key.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(k, _)| range.contains(k)),
            ),
        };
        iter.filter_map(|(k, versions)| {
            let v = versions.iter().rev().find(|v| v.revision <= rev)?;
            v.live.as_ref().map(|l| kv(k, v.revision, l))
        })
        .collect()
    }

    /// Records a write (or deletion with `live == None`) of `key` at revision `rev`.
    pub fn write(&mut self, key: &str, rev: i64, live: Option<Live>, keep_history: bool) {
        let old = self.keys.get(key);
        if let Some(old) = old {
            self.keys_hash ^= entry_hash(key, old);
        }
        let versions = if keep_history {
            let mut versions = old.cloned().unwrap_or_default();
            match versions.last_mut() {
                Some(last) if last.revision == rev => last.live = live,
                _ => versions.push(Version {
                    revision: rev,
                    live,
                }),
            }
            versions
        } else if let Some(live) = live {
            vec![Version {
                revision: rev,
                live: Some(live),
            }]
        } else {
            self.keys.remove_mut(key);
            return;
        };
        self.keys_hash ^= entry_hash(key, &versions);
        self.keys.insert_mut(key.to_string(), versions);
    }

    /// Drops versions no read at or after `rev` can see.
    pub fn compact(&mut self, rev: i64) {
        self.compact_revision = rev;
        // Keep the newest version at or below `rev` as the base, drop older ones.
        let changed: Vec<(String, Vec<Version>)> = self
            .keys
            .iter()
            .filter_map(|(k, versions)| {
                let base = versions.iter().rposition(|v| v.revision <= rev)?;
                let dead_base = versions[base].live.is_none();
                if base == 0 && !dead_base {
                    return None;
                }
                let keep = base + usize::from(dead_base);
                Some((k.clone(), versions[keep..].to_vec()))
            })
            .collect();
        for (k, versions) in changed {
            if let Some(old) = self.keys.get(&k) {
                self.keys_hash ^= entry_hash(&k, old);
            }
            if versions.is_empty() {
                self.keys.remove_mut(&k);
            } else {
                self.keys_hash ^= entry_hash(&k, &versions);
                self.keys.insert_mut(k, versions);
            }
        }
    }
}

/// Builds the client-visible key-value.
pub fn kv(key: &str, mod_revision: i64, live: &Live) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: live.value.clone(),
        create_revision: live.create_revision,
        mod_revision,
        version: live.version,
        lease: live.lease,
    }
}
