//! The etcd model's state: current revision, compact revision, per-key MVCC versions and leases.
//!
//! Owns: the data layout and the primitive reads/writes on it (read a key at a revision, write
//! at a revision, compact, leases). The maps are shared (`Arc`) between states and carry a
//! hash maintained incrementally, so cloning, hashing and comparing unchanged states is O(1)
//! (the checker does all three constantly). Must never decide request semantics (that is
//! `apply`).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

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
    keys: Arc<BTreeMap<String, Vec<Version>>>,
    /// Xor of the hashes of the (key, versions) entries.
    keys_hash: u64,
    leases: Arc<BTreeMap<i64, i64>>,
}

impl PartialEq for EtcdState {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.compact_revision == other.compact_revision
            && self.keys_hash == other.keys_hash
            && (Arc::ptr_eq(&self.keys, &other.keys) || self.keys == other.keys)
            && (Arc::ptr_eq(&self.leases, &other.leases) || self.leases == other.leases)
    }
}

impl Eq for EtcdState {}

impl Hash for EtcdState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.revision.hash(state);
        self.compact_revision.hash(state);
        self.keys_hash.hash(state);
        self.leases.len().hash(state);
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
            keys: Arc::default(),
            keys_hash: 0,
            leases: Arc::default(),
        }
    }

    /// Every key with its versions, in key order.
    pub fn keys(&self) -> &BTreeMap<String, Vec<Version>> {
        &self.keys
    }

    /// Leases: id to granted TTL.
    pub fn leases(&self) -> &BTreeMap<i64, i64> {
        &self.leases
    }

    /// Whether a lease exists.
    pub fn has_lease(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Adds a lease.
    pub fn grant_lease(&mut self, id: i64, ttl: i64) {
        Arc::make_mut(&mut self.leases).insert(id, ttl);
    }

    /// Removes a lease; whether it existed.
    pub fn remove_lease(&mut self, id: i64) -> bool {
        self.has_lease(id) && Arc::make_mut(&mut self.leases).remove(&id).is_some()
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
        let keys = Arc::make_mut(&mut self.keys);
        if let Some(old) = keys.get(key) {
            self.keys_hash ^= entry_hash(key, old);
        }
        if !keep_history {
            match live {
                Some(live) => {
                    let versions = vec![Version {
                        revision: rev,
                        live: Some(live),
                    }];
                    self.keys_hash ^= entry_hash(key, &versions);
                    keys.insert(key.to_string(), versions);
                }
                None => {
                    keys.remove(key);
                }
            }
            return;
        }
        let versions = keys.entry(key.to_string()).or_default();
        match versions.last_mut() {
            Some(last) if last.revision == rev => last.live = live,
            _ => versions.push(Version {
                revision: rev,
                live,
            }),
        }
        self.keys_hash ^= entry_hash(key, versions);
    }

    /// Drops versions no read at or after `rev` can see.
    pub fn compact(&mut self, rev: i64) {
        self.compact_revision = rev;
        let keys = Arc::make_mut(&mut self.keys);
        keys.retain(|_, versions| {
            // Keep the newest version at or below `rev` as the base, drop older ones.
            if let Some(base) = versions.iter().rposition(|v| v.revision <= rev) {
                versions.drain(..base);
                if versions.first().is_some_and(|v| v.live.is_none()) {
                    versions.remove(0);
                }
            }
            !versions.is_empty()
        });
        self.keys_hash = keys.iter().fold(0, |h, (k, v)| h ^ entry_hash(k, v));
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
