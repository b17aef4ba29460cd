//! The watch guarantee checks, one watcher at a time against a [`Timeline`].
//!
//! Owns: deciding which guarantees a watcher's responses break and phrasing each violation
//! (guarantee, watcher, response, revision, key, expected vs got). Must never build the
//! timeline (that is `timeline`) nor panic on recorded data.

use std::collections::{BTreeSet, HashMap};

use super::timeline::Timeline;
use super::{
    describe_event, describe_kv, EventType, Guarantee, WatchEvent, WatchViolation, WatcherHistory,
};
use crate::models::etcd::KeyValue;

/// At most this many violations of one guarantee are kept per watcher; the rest are counted.
pub const MAX_PER_GUARANTEE: usize = 10;

/// The result of checking watchers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchReport {
    /// Violations, watcher by watcher, in the order found.
    pub violations: Vec<WatchViolation>,
    /// Violations left out (beyond [`MAX_PER_GUARANTEE`] per watcher and guarantee).
    pub suppressed: usize,
    /// Watchers checked.
    pub watchers: usize,
    /// Events received, over all watchers.
    pub events: usize,
}

impl WatchReport {
    /// Whether every guarantee held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.suppressed == 0
    }

    /// Whether some violation of `g` was found.
    pub fn has(&self, g: Guarantee) -> bool {
        self.violations.iter().any(|v| v.guarantee == g)
    }
}

/// Checks every watcher against `timeline`.
pub fn check_watches(watchers: &[WatcherHistory], timeline: &Timeline) -> WatchReport {
    let mut report = WatchReport {
        watchers: watchers.len(),
        ..WatchReport::default()
    };
    for (i, w) in watchers.iter().enumerate() {
        report.events += w.responses.iter().map(|r| r.events.len()).sum::<usize>();
        check_watcher(i, w, timeline, &mut report);
    }
    report
}

struct Sink<'a> {
    report: &'a mut WatchReport,
    watcher: usize,
    id: u64,
    counts: HashMap<Guarantee, usize>,
}

impl Sink<'_> {
    fn push(
        &mut self,
        guarantee: Guarantee,
        response: Option<usize>,
        revision: i64,
        key: Option<&str>,
        expected: String,
        got: String,
    ) {
        let n = self.counts.entry(guarantee).or_default();
        *n += 1;
        if *n > MAX_PER_GUARANTEE {
            self.report.suppressed += 1;
            return;
        }
        self.report.violations.push(WatchViolation {
            guarantee,
            watcher: self.watcher,
            watcher_id: self.id,
            response,
            revision,
            key: key.map(str::to_string),
            expected,
            got,
        });
    }
}

fn prev_text(p: &Option<KeyValue>) -> String {
    p.as_ref().map_or_else(
        || "no prev_kv".to_string(),
        |kv| format!("prev_kv {}", describe_kv(kv)),
    )
}

/// Checks one watcher (index `index` in the caller's list), adding to `report`.
pub fn check_watcher(
    index: usize,
    w: &WatcherHistory,
    timeline: &Timeline,
    report: &mut WatchReport,
) {
    let mut sink = Sink {
        report,
        watcher: index,
        id: w.id,
        counts: HashMap::new(),
    };
    let start = w.effective_start();
    let mut last_event: Option<i64> = None;
    let mut progress: Option<(i64, usize)> = None;
    let mut seen: BTreeSet<(i64, &str)> = BTreeSet::new();
    let mut first_response: HashMap<i64, usize> = HashMap::new();
    let mut split_reported: BTreeSet<i64> = BTreeSet::new();
    let mut canceled = false;

    for (ri, resp) in w.responses.iter().enumerate() {
        let at = Some(ri);
        if canceled {
            sink.push(
                Guarantee::Ordered,
                at,
                resp.revision,
                None,
                "no response after the watch was canceled".into(),
                format!("a response with header revision {}", resp.revision),
            );
            break;
        }
        if resp.canceled {
            canceled = true;
            let next = last_event.map_or(start.unwrap_or(0), |l| l + 1);
            if resp.compact_revision > 0 && next >= resp.compact_revision {
                sink.push(
                    Guarantee::Resumable,
                    at,
                    resp.compact_revision,
                    None,
                    format!(
                        "no cancellation: the next revision to send, {next}, is not below the compact revision"
                    ),
                    format!("canceled as compacted at {}", resp.compact_revision),
                );
            }
        }
        if resp.is_progress() && resp.events.is_empty() {
            if let Some((p, _)) = progress {
                if resp.revision < p {
                    sink.push(
                        Guarantee::Bookmarkable,
                        at,
                        resp.revision,
                        None,
                        format!("a progress notification at revision >= {p} (the previous one)"),
                        format!("progress notification at {}", resp.revision),
                    );
                }
            }
            if let Some(l) = last_event {
                if resp.revision < l {
                    sink.push(
                        Guarantee::Bookmarkable,
                        at,
                        resp.revision,
                        None,
                        format!("a progress notification at revision >= {l} (the last event's)"),
                        format!("progress notification at {}", resp.revision),
                    );
                }
            }
            progress = Some((
                progress.map_or(resp.revision, |(p, _)| p.max(resp.revision)),
                ri,
            ));
            continue;
        }
        for e in &resp.events {
            let r = e.revision();
            let key = e.kv.key.as_str();
            let k = Some(key);
            if let Some(l) = last_event.filter(|&l| r < l) {
                sink.push(
                    Guarantee::Ordered,
                    at,
                    r,
                    k,
                    format!("event revisions never decrease (previous event at {l})"),
                    describe_event(e),
                );
            }
            if resp.revision < r {
                sink.push(
                    Guarantee::Ordered,
                    at,
                    r,
                    k,
                    format!("a header revision >= its events' ({r})"),
                    format!("header revision {}", resp.revision),
                );
            }
            if let Some((p, pi)) = progress.filter(|&(p, _)| r <= p) {
                sink.push(
                    Guarantee::Bookmarkable,
                    at,
                    r,
                    k,
                    format!(
                        "only events after revision {p} (progress notification, response #{pi})"
                    ),
                    describe_event(e),
                );
            }
            if let Some(s) = start.filter(|&s| r < s) {
                sink.push(
                    Guarantee::Resumable,
                    at,
                    r,
                    k,
                    format!("only events at or after the start revision {s}"),
                    describe_event(e),
                );
            }
            if !seen.insert((r, key)) {
                sink.push(
                    Guarantee::Unique,
                    at,
                    r,
                    k,
                    "each event delivered once".into(),
                    format!("{} again", describe_event(e)),
                );
            } else {
                let first = *first_response.entry(r).or_insert(ri);
                if first != ri && split_reported.insert(r) {
                    sink.push(
                        Guarantee::Atomic,
                        at,
                        r,
                        k,
                        format!("every event of revision {r} in one response (#{first})"),
                        format!("{} in response #{ri}", describe_event(e)),
                    );
                }
            }
            if !w.wants(e.kind) {
                sink.push(
                    Guarantee::Filter,
                    at,
                    r,
                    k,
                    format!("no {} events (filtered)", e.kind),
                    describe_event(e),
                );
            }
            if !w.range.contains(key) {
                sink.push(
                    Guarantee::Filter,
                    at,
                    r,
                    k,
                    "only keys in the watched range".into(),
                    describe_event(e),
                );
            }
            check_event(&mut sink, w, timeline, ri, e);
            last_event = Some(last_event.map_or(r, |l| l.max(r)));
        }
    }

    // Completeness: every committed event the watcher was due, from its start up to the last
    // revision it has heard of (last event or progress notification).
    let Some(start) = start else { return };
    let heard = match (last_event, progress) {
        (Some(l), Some((p, _))) => l.max(p),
        (Some(l), None) => l,
        (None, Some((p, _))) => p,
        (None, None) => return,
    };
    let upto = heard.min(timeline.last_revision);
    let first_received = seen.iter().map(|(r, _)| *r).find(|&r| r >= start);
    for c in timeline.between(start, upto) {
        if !w.range.contains(c.key()) || !w.wants(c.event.kind) {
            continue;
        }
        let r = c.revision();
        if seen.contains(&(r, c.key())) {
            continue;
        }
        let (g, why) = match (first_received, last_event) {
            (Some(f), _) if r < f => (
                Guarantee::Resumable,
                format!("a watch from revision {start} to start with"),
            ),
            (Some(_), Some(l)) if r <= l => (Guarantee::Reliable, "no gap:".to_string()),
            (None, _) => (
                Guarantee::Resumable,
                format!("a watch from revision {start} to deliver"),
            ),
            _ => (
                Guarantee::Bookmarkable,
                format!(
                    "before the progress notification at {}:",
                    progress.map_or(0, |p| p.0)
                ),
            ),
        };
        sink.push(
            g,
            None,
            r,
            Some(c.key()),
            format!("{why} {}", describe_event(&c.event)),
            "nothing (missing)".into(),
        );
    }
}

/// Compares one received event with the committed history.
fn check_event(
    sink: &mut Sink<'_>,
    w: &WatcherHistory,
    timeline: &Timeline,
    ri: usize,
    e: &WatchEvent,
) {
    let r = e.revision();
    let key = Some(e.kv.key.as_str());
    let at = Some(ri);
    if !w.prev_kv && e.prev_kv.is_some() {
        sink.push(
            Guarantee::PrevKv,
            at,
            r,
            key,
            "no prev_kv (not requested)".into(),
            prev_text(&e.prev_kv),
        );
    }
    let committed = if r <= timeline.last_revision {
        match timeline.get(r, &e.kv.key) {
            Some(c) => Some(c),
            None => {
                sink.push(
                    Guarantee::Consistent,
                    at,
                    r,
                    key,
                    format!("no event for this key at revision {r} (never committed)"),
                    describe_event(e),
                );
                return;
            }
        }
    } else {
        None
    };
    if let Some(c) = committed {
        if !c.matches(e) {
            sink.push(
                Guarantee::Consistent,
                at,
                r,
                key,
                format!("the committed event {}", describe_event(&c.event)),
                describe_event(e),
            );
        }
        if let Some(prev) = &c.prev {
            // etcd reads the previous key-value at revision r - 1 and leaves it out when that
            // read is compacted.
            let compacted_away = e.prev_kv.is_none() && r <= timeline.compacted_to;
            if w.prev_kv && e.prev_kv != *prev && !compacted_away {
                sink.push(
                    Guarantee::PrevKv,
                    at,
                    r,
                    key,
                    prev_text(prev),
                    prev_text(&e.prev_kv),
                );
            }
            if e.kind == EventType::Put {
                let is_create = e.kv.create_revision == e.kv.mod_revision;
                let existed = prev.is_some();
                if is_create == existed {
                    sink.push(
                        Guarantee::IsCreate,
                        at,
                        r,
                        key,
                        if existed {
                            format!("an update (create_revision < {r}: the key existed)")
                        } else {
                            format!("a create (create_revision == {r}: the key did not exist)")
                        },
                        describe_event(e),
                    );
                }
                return;
            }
        }
    }
    // Without knowledge of the previous value, a PUT must at least be self-consistent.
    if e.kind == EventType::Put
        && (e.kv.create_revision == e.kv.mod_revision) != (e.kv.version == 1)
    {
        sink.push(
            Guarantee::IsCreate,
            at,
            r,
            key,
            "create_revision == mod_revision exactly when version == 1".into(),
            describe_event(e),
        );
    }
}
