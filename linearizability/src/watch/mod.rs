//! Watch checks, separate from linearizability: given what each watcher received and the
//! committed history (every event by revision), check etcd's watch guarantees — ordered,
//! unique, atomic, bookmarkable, reliable, resumable, correct `prev_kv`, correct `is_create`
//! and filters — and report each violation with the guarantee, the watcher, the revision, and
//! what was expected against what was received.
//!
//! Owns: the serde vocabulary of recorded watch histories ([`WatcherHistory`],
//! [`WatchResponse`], [`WatchEvent`]), the committed-event [`Timeline`] (built from given
//! events, from the union of the watchers' events, or from the etcd model's linearization), and
//! the checks ([`check_watches`]). Must never decide linearizability (that is the checker's),
//! never depend on the server or simulator crates, and never panic on recorded data: malformed
//! or contradictory input becomes a violation, not a crash.

mod check;
mod timeline;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::models::etcd::{KeyRange, KeyValue};

pub use check::{check_watcher, check_watches, WatchReport, MAX_PER_GUARANTEE};
pub use timeline::{CommittedEvent, Timeline};

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A key was written.
    Put,
    /// A key was deleted.
    Delete,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Put => "PUT",
            EventType::Delete => "DELETE",
        })
    }
}

/// One event as a watcher received it.
///
/// For a `Delete`, etcd sends `kv` with only the key and `mod_revision` (the deletion's
/// revision) set; other fields are zero and are not compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    /// PUT or DELETE.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The key-value after the event (`mod_revision` is the event's revision).
    pub kv: KeyValue,
    /// The key-value before the event, when the watcher asked for it and the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision at which the event happened.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }

    /// A PUT event.
    pub fn put(kv: KeyValue, prev_kv: Option<KeyValue>) -> Self {
        WatchEvent {
            kind: EventType::Put,
            kv,
            prev_kv,
        }
    }

    /// A DELETE event of `key` at `revision`.
    pub fn delete(key: impl Into<String>, revision: i64, prev_kv: Option<KeyValue>) -> Self {
        WatchEvent {
            kind: EventType::Delete,
            kv: KeyValue {
                key: key.into(),
                mod_revision: revision,
                ..KeyValue::default()
            },
            prev_kv,
        }
    }
}

/// One response on a watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WatchResponse {
    /// The header revision.
    pub revision: i64,
    /// The events, in the order received.
    #[serde(default)]
    pub events: Vec<WatchEvent>,
    /// The response confirms the watch's creation (no events).
    #[serde(default)]
    pub created: bool,
    /// A progress notification (no events): every event up to `revision` has been sent.
    #[serde(default)]
    pub progress_notify: bool,
    /// The watch was canceled (e.g. its start revision was compacted).
    #[serde(default)]
    pub canceled: bool,
    /// When canceled because of compaction: the compact revision.
    #[serde(default)]
    pub compact_revision: i64,
    /// Client-side receive time (same unit as operation times), for display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
}

impl WatchResponse {
    /// Whether this response is a progress notification (explicitly flagged, or an empty
    /// response that is neither a creation nor a cancellation, as etcd sends them).
    pub fn is_progress(&self) -> bool {
        self.progress_notify || (self.events.is_empty() && !self.created && !self.canceled)
    }
}

/// A watch filter (etcd's `WatchCreateRequest.filters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchFilter {
    /// Do not send PUT events.
    NoPut,
    /// Do not send DELETE events.
    NoDelete,
}

/// Everything one watcher asked for and received.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WatcherHistory {
    /// An identifier for reports (client id, watch id, ...).
    #[serde(default)]
    pub id: u64,
    /// The watched keys.
    #[serde(flatten)]
    pub range: KeyRange,
    /// The requested start revision; 0 means "from now": the start is then taken from the
    /// creation response's header revision + 1 (or, without one, from the first event).
    #[serde(default)]
    pub start_revision: i64,
    /// Filters.
    #[serde(default)]
    pub filters: Vec<WatchFilter>,
    /// Whether events carry the previous key-value.
    #[serde(default)]
    pub prev_kv: bool,
    /// The responses, in the order received.
    #[serde(default)]
    pub responses: Vec<WatchResponse>,
}

impl WatcherHistory {
    /// Whether the watcher wants events of this kind.
    pub fn wants(&self, kind: EventType) -> bool {
        !self.filters.iter().any(|f| {
            matches!(
                (f, kind),
                (WatchFilter::NoPut, EventType::Put) | (WatchFilter::NoDelete, EventType::Delete)
            )
        })
    }

    /// The first revision this watcher must see, if it can be told.
    pub fn effective_start(&self) -> Option<i64> {
        if self.start_revision > 0 {
            return Some(self.start_revision);
        }
        match self.responses.first() {
            Some(r) if r.events.is_empty() && !r.canceled => Some(r.revision + 1),
            Some(r) => r.events.first().map(WatchEvent::revision),
            None => None,
        }
    }

    /// What this watcher saw of every revision from its start up to the newest it heard of
    /// (an event, or a response flagged as a progress notification: every event up to it was
    /// sent): the keys with an event at it, merged over responses (fragments), empty where it
    /// got none. Canceled responses say nothing.
    pub fn seen_by_revision(&self) -> BTreeMap<i64, BTreeSet<String>> {
        let Some(start) = self.effective_start() else {
            return BTreeMap::new();
        };
        let mut seen: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        let mut heard = None;
        for r in self.responses.iter().filter(|r| !r.canceled) {
            for e in &r.events {
                seen.entry(e.revision())
                    .or_default()
                    .insert(e.kv.key.clone());
            }
            let newest = if r.progress_notify && r.events.is_empty() {
                Some(r.revision)
            } else {
                r.events.iter().map(WatchEvent::revision).max()
            };
            heard = heard.max(newest);
        }
        if let Some(heard) = heard {
            for rev in start..=heard {
                seen.entry(rev).or_default();
            }
        }
        seen
    }
}

/// A watch guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Event revisions never decrease; a response's header is not below its events.
    Ordered,
    /// No (revision, key) is delivered twice.
    Unique,
    /// All events of one revision arrive in one response.
    Atomic,
    /// After a progress notification at R no event at or below R arrives, and progress
    /// notifications never go backwards.
    Bookmarkable,
    /// No gap: every committed event between the first and the last revision received is
    /// delivered.
    Reliable,
    /// A watch from R starts exactly at the first committed event at or after R.
    Resumable,
    /// `prev_kv` is the key's previous value in the committed history (and absent when not
    /// asked for).
    PrevKv,
    /// A PUT has `create_revision == mod_revision` exactly when the key did not exist before.
    IsCreate,
    /// NOPUT / NODELETE filters are respected.
    Filter,
    /// The event is the committed one (same kind and contents; never an invented event), and
    /// watchers agree with each other.
    Consistent,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guarantee::Ordered => "ordered",
            Guarantee::Unique => "unique",
            Guarantee::Atomic => "atomic",
            Guarantee::Bookmarkable => "bookmarkable",
            Guarantee::Reliable => "reliable",
            Guarantee::Resumable => "resumable",
            Guarantee::PrevKv => "prev_kv",
            Guarantee::IsCreate => "is_create",
            Guarantee::Filter => "filter",
            Guarantee::Consistent => "consistent",
        })
    }
}

/// One broken guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchViolation {
    /// Which guarantee.
    pub guarantee: Guarantee,
    /// Index of the watcher in the checked list (`usize::MAX` when not about one watcher).
    pub watcher: usize,
    /// The watcher's id.
    pub watcher_id: u64,
    /// Index of the response concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<usize>,
    /// The revision concerned.
    pub revision: i64,
    /// The key concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What the guarantee requires.
    pub expected: String,
    /// What was received.
    pub got: String,
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.guarantee)?;
        if self.watcher != usize::MAX {
            write!(f, "watcher #{} (id {})", self.watcher, self.watcher_id)?;
        } else {
            f.write_str("watchers")?;
        }
        if let Some(r) = self.response {
            write!(f, ", response #{r}")?;
        }
        write!(f, ", revision {}", self.revision)?;
        if let Some(k) = &self.key {
            write!(f, ", key {k:?}")?;
        }
        write!(f, ": expected {}; got {}", self.expected, self.got)
    }
}

/// Short text for a key-value (reports).
pub fn describe_kv(kv: &KeyValue) -> String {
    let lease = if kv.lease != 0 {
        format!(" lease={}", kv.lease)
    } else {
        String::new()
    };
    format!(
        "{:?}={:?} (create={} mod={} version={}{lease})",
        kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version
    )
}

/// Short text for an event (reports).
pub fn describe_event(e: &WatchEvent) -> String {
    match e.kind {
        EventType::Put => format!("PUT {}", describe_kv(&e.kv)),
        EventType::Delete => format!("DELETE {:?} at {}", e.kv.key, e.kv.mod_revision),
    }
}
