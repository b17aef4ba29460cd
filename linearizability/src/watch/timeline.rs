//! The committed history as events by revision: what every watcher should have seen.
//!
//! Owns: building a [`Timeline`] from a list of events (e.g. a reference watch from revision
//! 1), from the union of every watcher's events, or from the etcd model's linearization (model
//! states before and after each write), and looking events up. Must never judge a watcher
//! (that is `check`), and must never panic on contradictory input: disagreeing events become
//! [`Guarantee::Consistent`] violations.

use std::collections::{BTreeSet, HashMap};

use super::{describe_event, EventType, Guarantee, WatchEvent, WatchViolation, WatcherHistory};
use crate::checker::LinStep;
use crate::history::Operation;
use crate::models::etcd::{EtcdRequest, EtcdResponse, EtcdState, KeyRange, KeyValue, RequestOp};

/// One committed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEvent {
    /// The event as a watcher should receive it (`prev_kv` unset).
    pub event: WatchEvent,
    /// The key's value just before: `Some(None)` if it did not exist, `None` if unknown.
    pub prev: Option<Option<KeyValue>>,
}

impl CommittedEvent {
    /// The event's revision.
    pub fn revision(&self) -> i64 {
        self.event.kv.mod_revision
    }

    /// The event's key.
    pub fn key(&self) -> &str {
        &self.event.kv.key
    }

    /// Whether a received event is this one (kind, key, revision, and for a PUT the value,
    /// create revision, version and lease; `prev_kv` is checked separately).
    pub fn matches(&self, got: &WatchEvent) -> bool {
        same_event(&self.event, got)
    }
}

fn same_event(a: &WatchEvent, b: &WatchEvent) -> bool {
    a.kind == b.kind
        && a.kv.key == b.kv.key
        && a.kv.mod_revision == b.kv.mod_revision
        && (a.kind == EventType::Delete
            || (a.kv.value == b.kv.value
                && a.kv.create_revision == b.kv.create_revision
                && a.kv.version == b.kv.version
                && a.kv.lease == b.kv.lease))
}

/// Every committed event, sorted by (revision, key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    events: Vec<CommittedEvent>,
    index: HashMap<(i64, String), usize>,
    /// Every committed event up to this revision is known.
    pub last_revision: i64,
    /// The highest compaction in the committed history, or requested without an answer (it
    /// may have happened; 0: none known). etcd reads a watch event's previous key-value at the
    /// revision before it, so an event at or below this revision may come without one (etcd
    /// omits it when that read is compacted).
    pub compacted_to: i64,
}

impl Timeline {
    fn build(mut events: Vec<CommittedEvent>, last_revision: i64) -> Timeline {
        events.sort_by(|a, b| (a.revision(), a.key()).cmp(&(b.revision(), b.key())));
        let index = events
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.revision(), e.key().to_string()), i))
            .collect();
        Timeline {
            events,
            index,
            last_revision,
            compacted_to: 0,
        }
    }

    /// A timeline from committed events (their `prev_kv` is ignored). With `from_empty`, the
    /// events are every change since an empty store, so each key's first event has no
    /// previous value; otherwise previous values are known only after a key's first event.
    /// Two different events for the same (revision, key) are reported and the first kept.
    pub fn from_events(
        events: impl IntoIterator<Item = WatchEvent>,
        from_empty: bool,
    ) -> (Timeline, Vec<WatchViolation>) {
        Self::merge(events.into_iter().map(|e| (usize::MAX, 0, e)), from_empty)
    }

    /// The union of every watcher's events. Previous values are known from each key's first
    /// event on, or from the start when some watcher covers every key and kind from revision
    /// 1 or 2. Watchers that disagree about an event are reported.
    pub fn from_watches(watchers: &[WatcherHistory]) -> (Timeline, Vec<WatchViolation>) {
        let from_empty = watchers.iter().any(|w| {
            w.range.range_end.as_deref() == Some("\0")
                && (w.range.key.is_empty() || w.range.key == "\0")
                && w.filters.is_empty()
                && (1..=2).contains(&w.start_revision)
        });
        let all = watchers.iter().enumerate().flat_map(|(i, w)| {
            w.responses
                .iter()
                .flat_map(|r| r.events.iter())
                .map(move |e| (i, w.id, e.clone()))
        });
        Self::merge(all, from_empty)
    }

    fn merge(
        all: impl Iterator<Item = (usize, u64, WatchEvent)>,
        from_empty: bool,
    ) -> (Timeline, Vec<WatchViolation>) {
        let mut by_slot: HashMap<(i64, String), (usize, WatchEvent)> = HashMap::new();
        let mut violations = Vec::new();
        let mut reported: BTreeSet<(i64, String)> = BTreeSet::new();
        for (watcher, watcher_id, mut e) in all {
            e.prev_kv = None;
            let slot = (e.revision(), e.kv.key.clone());
            match by_slot.get(&slot) {
                None => {
                    by_slot.insert(slot, (watcher, e));
                }
                Some((first, kept)) if !same_event(kept, &e) => {
                    if reported.insert(slot.clone()) {
                        let who = |w: usize| {
                            if w == usize::MAX {
                                "one source".to_string()
                            } else {
                                format!("watcher #{w}")
                            }
                        };
                        violations.push(WatchViolation {
                            guarantee: Guarantee::Consistent,
                            watcher,
                            watcher_id,
                            response: None,
                            revision: slot.0,
                            key: Some(slot.1),
                            expected: format!(
                                "one event per revision and key ({} received {})",
                                who(*first),
                                describe_event(kept)
                            ),
                            got: describe_event(&e),
                        });
                    }
                }
                Some(_) => {}
            }
        }
        let mut events: Vec<WatchEvent> = by_slot.into_values().map(|(_, e)| e).collect();
        events.sort_by(|a, b| (a.revision(), &a.kv.key).cmp(&(b.revision(), &b.kv.key)));
        let last_revision = events.last().map_or(0, WatchEvent::revision);
        let mut current: HashMap<String, Option<KeyValue>> = HashMap::new();
        let committed = events
            .into_iter()
            .map(|event| {
                let prev = match current.get(&event.kv.key) {
                    Some(p) => Some(p.clone()),
                    None if from_empty => Some(None),
                    None => None,
                };
                let now = (event.kind == EventType::Put).then(|| event.kv.clone());
                current.insert(event.kv.key.clone(), now);
                CommittedEvent { event, prev }
            })
            .collect();
        (Self::build(committed, last_revision), violations)
    }

    /// The committed events of a linearization of `history` (as in a linearizable
    /// [`crate::PartitionReport`]): each write's events are read off the model states before
    /// and after it, so previous values are always known.
    pub fn from_linearization(
        history: &[Operation<EtcdRequest, EtcdResponse>],
        init: &EtcdState,
        steps: &[LinStep<EtcdState>],
    ) -> Timeline {
        let mut events = Vec::new();
        let mut before = init;
        for step in steps {
            let after = &step.state;
            if after.revision > before.revision {
                let mut keys = BTreeSet::new();
                if let Some(op) = history.get(step.op) {
                    touched_keys(&op.input, before, &mut keys);
                }
                for key in keys {
                    let was = before.get_at(&key, before.revision);
                    let now = after.get_at(&key, after.revision);
                    let event = match &now {
                        Some(kv) if kv.mod_revision == after.revision => {
                            WatchEvent::put(kv.clone(), None)
                        }
                        None if was.is_some() => WatchEvent::delete(key, after.revision, None),
                        _ => continue,
                    };
                    events.push(CommittedEvent {
                        event,
                        prev: Some(was),
                    });
                }
            }
            before = after;
        }
        let mut t = Self::build(events, before.revision);
        // A compaction whose answer was lost may have happened even where the linearization
        // leaves it out (the member applied it and died before answering): its revision
        // bounds what a watch may receive without a previous key-value too.
        let unanswered_compaction = history
            .iter()
            .filter_map(|op| match (&op.input, &op.output) {
                (EtcdRequest::Compact { revision }, None) => Some(*revision),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        t.compacted_to = before.compact_revision.max(unanswered_compaction).max(0);
        t
    }

    /// Every event, by (revision, key).
    pub fn events(&self) -> &[CommittedEvent] {
        &self.events
    }

    /// The committed event of `key` at `revision`.
    pub fn get(&self, revision: i64, key: &str) -> Option<&CommittedEvent> {
        self.index
            .get(&(revision, key.to_string()))
            .and_then(|&i| self.events.get(i))
    }

    /// Events with `from <= revision <= to`, in order.
    pub fn between(&self, from: i64, to: i64) -> &[CommittedEvent] {
        let a = self.events.partition_point(|e| e.revision() < from);
        let b = self.events.partition_point(|e| e.revision() <= to);
        self.events.get(a..b.max(a)).unwrap_or(&[])
    }
}

/// Keys a request may change when applied to `before` (a superset is fine).
fn touched_keys(req: &EtcdRequest, before: &EtcdState, out: &mut BTreeSet<String>) {
    fn range_keys(r: &KeyRange, before: &EtcdState, out: &mut BTreeSet<String>) {
        out.extend(
            before
                .range_at(r, before.revision)
                .into_iter()
                .map(|kv| kv.key),
        );
    }
    fn ops(list: &[RequestOp], before: &EtcdState, out: &mut BTreeSet<String>) {
        for op in list {
            match op {
                RequestOp::Put(p) => {
                    out.insert(p.key.clone());
                }
                RequestOp::DeleteRange(d) => range_keys(&d.range, before, out),
                RequestOp::Txn(t) => {
                    ops(&t.success, before, out);
                    ops(&t.failure, before, out);
                }
                RequestOp::Range(_) => {}
            }
        }
    }
    match req {
        EtcdRequest::Put(p) => {
            out.insert(p.key.clone());
        }
        EtcdRequest::DeleteRange(d) => range_keys(&d.range, before, out),
        EtcdRequest::Txn(t) => {
            ops(&t.success, before, out);
            ops(&t.failure, before, out);
        }
        EtcdRequest::LeaseRevoke { id } | EtcdRequest::LeaseExpire { id } => {
            out.extend(before.keys_with_lease(*id));
        }
        EtcdRequest::Range(_) | EtcdRequest::LeaseGrant { .. } | EtcdRequest::Compact { .. } => {}
    }
}
