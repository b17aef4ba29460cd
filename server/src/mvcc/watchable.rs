//! The watch registry, like etcd's watchable store: which watchers exist, how far each has been
//! served, and delivery of each applied revision's events.
//!
//! Owns: synced watchers (served as each revision is applied, from [`WatchHub::notify`]) and
//! unsynced ones (started in the past, or too slow to take the last batch), which
//! [`WatchHub::sync`] catches up from the history; cancellation with the compact revision
//! when a watcher needs history that compaction removed; progress notifications, queued
//! behind the events already on their way (etcd's `progressIfSync` through the watcher's
//! channel).
//!
//! Must never: block (a full stream queue makes its watcher unsynced, as etcd's victims), skip
//! or repeat a revision for a watcher, or split one revision's events over two batches.
//! Callers hold the store's lock around `add`, `notify` and `sync` (lock order: store, then
//! hub), so that no revision is applied between reading the store and updating a watcher.

use super::history::events_between;
use super::{MvccError, Store};
use etcd_api::mvccpb;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Most events read from the history for one catch-up round.
const SYNC_MAX_EVENTS: usize = 1000;

/// Events for one watcher of one stream.
#[derive(Debug, Clone)]
pub struct WatchBatch {
    /// The stream-local watch id.
    pub watch_id: i64,
    /// Events in revision order (all events of a revision together).
    pub events: Vec<mvccpb::Event>,
    /// Store revision the batch brings the watcher to (response header revision).
    pub revision: i64,
    /// Non-zero: the watcher needed history before this compacted revision and is cancelled.
    pub compact_revision: i64,
    /// A progress notification (no events): every event up to `revision` is ahead of it in
    /// the stream; `watch_id` is the response's (-1 for a stream-wide request).
    pub progress: bool,
}

/// A stream's queue of batches.
pub type StreamTx = mpsc::Sender<WatchBatch>;

/// A watch request's key range (etcd's: empty end = one key, `[0]` = everything from key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// First key.
    pub key: Vec<u8>,
    /// End (exclusive), with etcd's conventions.
    pub range_end: Vec<u8>,
}

impl KeyRange {
    /// Whether `k` is in the range.
    pub fn contains(&self, k: &[u8]) -> bool {
        if self.range_end.is_empty() {
            k == self.key.as_slice()
        } else if self.range_end == [0] {
            k >= self.key.as_slice()
        } else {
            k >= self.key.as_slice() && k < self.range_end.as_slice()
        }
    }
}

#[derive(Debug)]
struct Watcher {
    range: KeyRange,
    /// First revision not yet delivered.
    next_rev: i64,
    /// The start revision the client asked for (0: none).
    start_rev: i64,
    synced: bool,
    tx: StreamTx,
}

/// All watchers of a member.
#[derive(Debug, Default)]
pub struct WatchHub {
    state: Mutex<HubState>,
    defects: HubDefects,
}

/// Test defects of the watch registry, each one of etcd's historical watch bugs (see
/// `crate::defects`); all off by default.
#[derive(Debug, Default, Clone, Copy)]
pub struct HubDefects {
    /// etcd 15271: a watcher served while synced keeps the revision it started from.
    pub synced_watcher_keeps_start_rev: bool,
    /// etcd 17529: a watcher whose "compacted" response finds its stream's queue full is
    /// caught up with the others instead of being told later.
    pub compacted_watcher_skips_ahead: bool,
    /// etcd 20221: a catch-up round sets the next revision of a watcher waiting for a future
    /// revision to the store's plus one, as etcd's `w.minRev = curRev + 1` did for every
    /// watcher of the round (only a snapshot from the leader puts such a watcher in a round).
    pub restore_lowers_future_watchers: bool,
}

#[derive(Debug, Default)]
struct HubState {
    next_stream: u64,
    watchers: BTreeMap<(u64, i64), Watcher>,
}

fn matching(range: &KeyRange, events: &[mvccpb::Event], from_rev: i64) -> Vec<mvccpb::Event> {
    events
        .iter()
        .filter(|e| {
            e.kv.as_ref()
                .is_some_and(|kv| kv.mod_revision >= from_rev && range.contains(&kv.key))
        })
        .cloned()
        .collect()
}

impl WatchHub {
    /// A registry with test defects on (`WatchHub::default()` has none).
    pub fn with_defects(defects: HubDefects) -> Self {
        WatchHub {
            state: Mutex::default(),
            defects,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new stream id.
    pub fn new_stream(&self) -> u64 {
        let mut st = self.state();
        st.next_stream += 1;
        st.next_stream
    }

    /// Whether `(stream, watch_id)` exists.
    pub fn contains(&self, stream: u64, watch_id: i64) -> bool {
        self.state().watchers.contains_key(&(stream, watch_id))
    }

    /// Registers a watcher from `start_rev` (0: from the next revision). `store` is the locked
    /// store, so the watcher's position is exact.
    pub fn add(
        &self,
        store: &Store,
        stream: u64,
        watch_id: i64,
        range: KeyRange,
        start_rev: i64,
        tx: StreamTx,
    ) {
        let current = store.current_revision();
        let next_rev = if start_rev <= 0 {
            current + 1
        } else {
            start_rev
        };
        let w = Watcher {
            range,
            next_rev,
            start_rev: start_rev.max(0),
            synced: next_rev > current,
            tx,
        };
        self.state().watchers.insert((stream, watch_id), w);
    }

    /// Removes a watcher; false if it did not exist.
    pub fn remove(&self, stream: u64, watch_id: i64) -> bool {
        self.state().watchers.remove(&(stream, watch_id)).is_some()
    }

    /// Removes every watcher of a stream.
    pub fn remove_stream(&self, stream: u64) {
        self.state().watchers.retain(|(s, _), _| *s != stream);
    }

    /// Whether every watcher of `stream` is synced (etcd 15220's defect sends progress
    /// straight to the client when this holds, ahead of batches still queued).
    pub fn stream_synced(&self, stream: u64) -> bool {
        self.state()
            .watchers
            .range((stream, i64::MIN)..=(stream, i64::MAX))
            .all(|(_, w)| w.synced)
    }

    /// Queues a progress notification at the store's revision on `stream`, behind every batch
    /// already queued there, if every watcher in question (`only`, or all of the stream's) is
    /// synced and the store has reached the start revision each asked for (etcd's
    /// `progressIfSync`, with the fix of etcd 20221: a notification below a future start
    /// revision would make a resuming client ask for revisions before the one it wanted).
    /// Returns false when it could not be sent now; nothing is sent for a stream without
    /// watchers. `store` is the locked store, so no revision is applied meanwhile.
    pub fn request_progress(
        &self,
        store: &Store,
        stream: u64,
        only: Option<i64>,
        response_id: i64,
    ) -> bool {
        let current = store.current_revision();
        let st = self.state();
        let mut watchers = st
            .watchers
            .range((stream, i64::MIN)..=(stream, i64::MAX))
            .filter(|((_, id), _)| only.is_none_or(|o| o == *id))
            .map(|(_, w)| w)
            .peekable();
        let Some(first) = watchers.peek().map(|w| w.tx.clone()) else {
            return true;
        };
        if !watchers.all(|w| w.synced && current >= w.start_rev) {
            return false;
        }
        let batch = WatchBatch {
            watch_id: response_id,
            events: Vec::new(),
            revision: current,
            compact_revision: 0,
            progress: true,
        };
        // etcd's watcher.send: a full channel drops the notification; the client asks again.
        first.try_send(batch).is_ok()
    }

    /// Delivers revision `rev`'s events to synced watchers (called right after applying it).
    pub fn notify(&self, rev: i64, events: &[mvccpb::Event]) {
        // etcd 15271's defect: only a watcher moved to the victims got its revision advanced.
        let keeps_start = self.defects.synced_watcher_keeps_start_rev;
        let mut st = self.state();
        let mut closed = Vec::new();
        for (id, w) in st.watchers.iter_mut() {
            if !w.synced || w.next_rev > rev {
                continue;
            }
            let evs = matching(&w.range, events, w.next_rev);
            if evs.is_empty() {
                if !keeps_start {
                    w.next_rev = rev + 1;
                }
                continue;
            }
            let batch = WatchBatch {
                watch_id: id.1,
                events: evs,
                revision: rev,
                compact_revision: 0,
                progress: false,
            };
            match w.tx.try_send(batch) {
                Ok(()) if keeps_start => {}
                Ok(()) => w.next_rev = rev + 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if keeps_start {
                        // The victim path still advanced it (to where its batch starts).
                        w.next_rev = rev;
                    }
                    w.synced = false;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => closed.push(*id),
            }
        }
        for id in closed {
            st.watchers.remove(&id);
        }
    }

    /// After the store was replaced by a snapshot, every watcher catches up from the history.
    pub fn unsync_all(&self) {
        for w in self.state().watchers.values_mut() {
            w.synced = false;
        }
    }

    /// Catches unsynced watchers up from the history (etcd's syncWatchersLoop round).
    pub fn sync(&self, store: &Store) -> Result<(), MvccError> {
        let current = store.current_revision();
        let compact = store.compact_revision();
        let mut st = self.state();
        if !st.watchers.values().any(|w| !w.synced) {
            return Ok(());
        }
        // Like etcd's chooseAll: watchers behind the compaction are canceled below and do not
        // count; the others are caught up from the oldest of them (a compacted watcher must
        // never make the others skip their events).
        let min_rev = st
            .watchers
            .values()
            .filter(|w| !w.synced && w.next_rev >= compact)
            .map(|w| w.next_rev)
            .min();
        let (groups, covered) = match min_rev {
            Some(min_rev) => events_between(store.backend(), min_rev, current, SYNC_MAX_EVENTS)?,
            None => (Vec::new(), current),
        };
        let mut gone = Vec::new();
        let skips_ahead = self.defects.compacted_watcher_skips_ahead;
        let lowers_future = self.defects.restore_lowers_future_watchers;
        for (id, w) in st.watchers.iter_mut().filter(|(_, w)| !w.synced) {
            if w.next_rev < compact {
                let batch = WatchBatch {
                    watch_id: id.1,
                    events: Vec::new(),
                    revision: current,
                    compact_revision: compact,
                    progress: false,
                };
                match w.tx.try_send(batch) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
                    // etcd 17529's defect: syncWatchers set every chosen watcher's minRev to
                    // the round's, this one included, so the retry never came.
                    Err(mpsc::error::TrySendError::Full(_)) if skips_ahead => {
                        w.next_rev = min_rev.unwrap_or(current + 1);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {}
                }
                if w.next_rev < compact {
                    continue;
                }
            }
            if w.next_rev > covered {
                if lowers_future && w.next_rev > current + 1 {
                    // etcd 20221's defect: syncWatchers set `w.minRev = curRev + 1` for every
                    // watcher of the round, one waiting for a future revision included; it then
                    // gets the events between the store's revision and the one it asked for.
                    w.next_rev = current + 1;
                }
                w.synced = w.next_rev > current;
                continue;
            }
            let mut evs = Vec::new();
            for (_, group) in groups.iter().filter(|(r, _)| *r >= w.next_rev) {
                evs.extend(matching(&w.range, group, w.next_rev));
            }
            let sent = if evs.is_empty() {
                Ok(())
            } else {
                w.tx.try_send(WatchBatch {
                    watch_id: id.1,
                    events: evs,
                    revision: covered,
                    compact_revision: 0,
                    progress: false,
                })
            };
            match sent {
                Ok(()) => {
                    w.next_rev = covered + 1;
                    w.synced = w.next_rev > current;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            st.watchers.remove(&id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_follow_etcd_conventions() {
        let one = KeyRange {
            key: b"a".to_vec(),
            range_end: vec![],
        };
        assert!(one.contains(b"a") && !one.contains(b"ab"));
        let from = KeyRange {
            key: b"b".to_vec(),
            range_end: vec![0],
        };
        assert!(from.contains(b"zz") && from.contains(b"b") && !from.contains(b"a"));
        let prefix = KeyRange {
            key: b"p/".to_vec(),
            range_end: b"p0".to_vec(),
        };
        assert!(prefix.contains(b"p/x") && !prefix.contains(b"p0") && !prefix.contains(b"q"));
    }
}
