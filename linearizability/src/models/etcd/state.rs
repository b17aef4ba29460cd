//! The etcd model's state: current revision, compact revision, per-key MVCC versions and leases.
//!
//! Owns: the data layout and the primitive reads/writes on it (read a key at a revision, write
//! at a revision, compact). Must never decide request semantics (that is `apply`).

use std::collections::BTreeMap;

use super::types::{KeyRange, KeyValue};

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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EtcdState {
    /// Current revision.
    pub revision: i64,
    /// Revisions below this were compacted away.
    pub compact_revision: i64,
    /// Per key, its versions in increasing revision (only the latest if history is not kept).
    pub keys: BTreeMap<String, Vec<Version>>,
    /// Leases: id to granted TTL.
    pub leases: BTreeMap<i64, i64>,
}

impl EtcdState {
    /// An empty store at `revision`.
    pub fn new(revision: i64) -> Self {
        EtcdState {
            revision,
            compact_revision: 0,
            keys: BTreeMap::new(),
            leases: BTreeMap::new(),
        }
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
                    .range(range.key.clone()..)
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
        if !keep_history {
            match live {
                Some(live) => {
                    self.keys.insert(
                        key.to_string(),
                        vec![Version {
                            revision: rev,
                            live: Some(live),
                        }],
                    );
                }
                None => {
                    self.keys.remove(key);
                }
            }
            return;
        }
        let versions = self.keys.entry(key.to_string()).or_default();
        match versions.last_mut() {
            Some(last) if last.revision == rev => last.live = live,
            _ => versions.push(Version {
                revision: rev,
                live,
            }),
        }
    }

    /// Drops versions no read at or after `rev` can see.
    pub fn compact(&mut self, rev: i64) {
        self.compact_revision = rev;
        self.keys.retain(|_, versions| {
            // Keep the newest version at or below `rev` as the base, drop older ones.
            if let Some(base) = versions.iter().rposition(|v| v.revision <= rev) {
                versions.drain(..base);
                if versions.first().is_some_and(|v| v.live.is_none()) {
                    versions.remove(0);
                }
            }
            !versions.is_empty()
        });
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
