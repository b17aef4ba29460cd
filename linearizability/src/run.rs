//! The entry point for the scenario harness: check an etcd-model history together with the
//! watch histories recorded in the same run, and produce one combined report (linearizable?,
//! watch violations, checker time) with a serde summary for `summary.json`.
//!
//! Owns: the order of the two checks and the choice of committed history the watchers are held
//! to. Watch events are first used as evidence about unknown-outcome writes (PUT events' and
//! previous key-values as pins and revisions, DELETE events as deletions, the keys each watcher
//! saw change at each revision and the revisions at which it saw none, see
//! `models::etcd::hints`; a history linearizable only without the silences is searched again
//! without them, so that a server dropping events fails the watch checks, not this one);
//! then, if the history is linearizable, watchers are
//! checked against the events of that linearization (exact previous values), and otherwise
//! against the union of the watchers' own events (disagreements reported). Must never contain
//! search or model semantics, nor touch the file system.
//!
//! ```
//! use linearizability::run::check_etcd_run;
//! use linearizability::CheckOptions;
//! let run = check_etcd_run(&[], &[], &CheckOptions::default());
//! assert!(run.ok());
//! let summary = run.summary(&[]);
//! assert_eq!(summary.linearizability, "linearizable");
//! ```

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::checker::{check_with, CheckOptions, CheckReport, CheckResult, Verdict};
use crate::cli::verdict_line;
use crate::history::Operation;
use crate::models::etcd::{
    reduce, Etcd, EtcdRequest, EtcdResponse, EtcdState, SeenChange, WatchEvidence,
};
use crate::watch::{
    check_watches, EventType, Timeline, WatchReport, WatchViolation, WatcherHistory,
};

/// Which committed history the watchers were checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineSource {
    /// The events of the history's linearization (it was linearizable).
    Linearization,
    /// The union of the watchers' events (no linearization to use).
    WatchUnion,
}

/// The combined result of [`check_etcd_run`].
#[derive(Debug, Clone)]
pub struct EtcdRunReport {
    /// The model used (with the evidence gathered from the history and the watches).
    pub model: Etcd,
    /// The linearizability check (operation indices into the history given, although the
    /// search ran on the operations `models::etcd::reduce` kept).
    pub linearizability: CheckReport<EtcdState>,
    /// Unknown-outcome operations the reductions took out before the search.
    pub unobservable_dropped: usize,
    /// The watch checks.
    pub watch: WatchReport,
    /// What the watchers were held to.
    pub timeline: TimelineSource,
    /// Time spent on the watch checks (timeline included).
    pub watch_elapsed: Duration,
    /// Total time (model setup, both checks).
    pub elapsed: Duration,
}

/// A serde summary of an [`EtcdRunReport`] for `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `linearizable`, `not linearizable` or `unknown`.
    pub linearizability: String,
    /// The one-line explanation (for a failure: the first operation that cannot be placed and
    /// the model state after the longest partial linearization).
    pub explanation: String,
    /// The first operation that cannot be placed (index into the history), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_op: Option<usize>,
    /// Whether every watch guarantee held.
    pub watch_ok: bool,
    /// Watchers checked.
    pub watchers: usize,
    /// Events received over all watchers.
    pub watch_events: usize,
    /// What the watchers were held to.
    pub watch_timeline: TimelineSource,
    /// The watch violations found (capped per watcher and guarantee).
    pub watch_violations: Vec<WatchViolation>,
    /// Violations left out by the cap.
    pub watch_violations_suppressed: usize,
    /// Linearizability checking time, milliseconds.
    pub linearizability_ms: f64,
    /// Watch checking time, milliseconds.
    pub watch_ms: f64,
    /// Total checker time, milliseconds.
    pub checker_ms: f64,
}

impl EtcdRunReport {
    /// Linearizable and every watch guarantee held.
    pub fn ok(&self) -> bool {
        self.linearizability.result.verdict() == Verdict::Linearizable && self.watch.ok()
    }

    /// The linearizability verdict alone.
    pub fn verdict(&self) -> Verdict {
        self.linearizability.result.verdict()
    }

    /// The summary (`history` is the checked history, for the explanation).
    pub fn summary(&self, history: &[Operation<EtcdRequest, EtcdResponse>]) -> RunSummary {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        RunSummary {
            linearizability: match self.verdict() {
                Verdict::Linearizable => "linearizable",
                Verdict::NotLinearizable => "not linearizable",
                Verdict::Unknown => "unknown",
            }
            .to_string(),
            explanation: verdict_line(&self.model, history, &self.linearizability),
            failed_op: match &self.linearizability.result {
                CheckResult::NotLinearizable(cx) => Some(cx.failed_op),
                _ => None,
            },
            watch_ok: self.watch.ok(),
            watchers: self.watch.watchers,
            watch_events: self.watch.events,
            watch_timeline: self.timeline,
            watch_violations: self.watch.violations.clone(),
            watch_violations_suppressed: self.watch.suppressed,
            linearizability_ms: ms(self.linearizability.elapsed),
            watch_ms: ms(self.watch_elapsed),
            checker_ms: ms(self.elapsed),
        }
    }

    /// A multi-line human explanation: the verdict line, then one line per watch violation.
    pub fn explain(&self, history: &[Operation<EtcdRequest, EtcdResponse>]) -> String {
        let mut out = verdict_line(&self.model, history, &self.linearizability);
        if self.watch.watchers > 0 {
            out += &format!(
                "\nwatch: {} watcher{}, {} events, {}",
                self.watch.watchers,
                if self.watch.watchers == 1 { "" } else { "s" },
                self.watch.events,
                if self.watch.ok() {
                    "every guarantee holds".to_string()
                } else {
                    let n = self.watch.violations.len() + self.watch.suppressed;
                    format!("{n} violation{}", if n == 1 { "" } else { "s" })
                }
            );
        }
        for v in &self.watch.violations {
            out += &format!("\n  {v}");
        }
        if self.watch.suppressed > 0 {
            out += &format!("\n  ... and {} more", self.watch.suppressed);
        }
        out
    }
}

/// What the watchers saw, as evidence for the linearizability search: PUT events' key-values
/// and every event's previous key-value, DELETE events, and, from every watcher, the keys of
/// each revision's events of the kinds it asked for and the revisions up to the newest it heard
/// of at which it got none (see [`WatcherHistory::seen_by_revision`]).
fn watch_evidence(watches: &[WatcherHistory]) -> WatchEvidence {
    let events = || {
        watches
            .iter()
            .flat_map(|w| w.responses.iter().flat_map(|r| r.events.iter()))
    };
    let observed = events()
        .flat_map(|e| {
            let put = (e.kind == EventType::Put).then_some(&e.kv);
            put.into_iter().chain(e.prev_kv.as_ref())
        })
        .cloned()
        .collect();
    let deleted = events()
        .filter(|e| e.kind == EventType::Delete)
        .map(|e| (e.kv.key.clone(), e.kv.mod_revision))
        .collect();
    let mut changed_exactly = Vec::new();
    let mut unchanged = Vec::new();
    for w in watches {
        let seen = |keys| SeenChange {
            range: w.range.clone(),
            puts: w.wants(EventType::Put),
            deletes: w.wants(EventType::Delete),
            keys,
        };
        for (rev, keys) in w.seen_by_revision() {
            if keys.is_empty() {
                unchanged.push((rev, seen(keys)));
            } else {
                changed_exactly.push((rev, seen(keys)));
            }
        }
    }
    WatchEvidence {
        observed,
        deleted,
        changed_exactly,
        unchanged,
    }
}

/// Checks an etcd-model `history` and the `watches` recorded alongside it.
///
/// Watch events (PUT key-values, previous key-values, DELETEs) serve as evidence about
/// unknown-outcome writes before the search. The
/// watchers are then checked against the linearization's events when the history is
/// linearizable, otherwise against the union of their own events. `options.timeout` bounds the
/// linearizability search only.
#[allow(clippy::disallowed_methods)] // Wall-clock timing of the checker itself; never simulated.
pub fn check_etcd_run(
    history: &[Operation<EtcdRequest, EtcdResponse>],
    watches: &[WatcherHistory],
    options: &CheckOptions,
) -> EtcdRunReport {
    let start = Instant::now();
    let watched = watch_evidence(watches);
    let needed = reduce::needed_ops(history);
    let dropped = history.len() - needed.len();
    let reduced: Cow<[Operation<EtcdRequest, EtcdResponse>]> = if dropped == 0 {
        Cow::Borrowed(history)
    } else {
        Cow::Owned(needed.iter().map(|&i| history[i].clone()).collect())
    };
    let mut model = Etcd::for_history_with(&reduced, &watched);
    let mut linearizability = check_with(&model, &reduced, options);
    if !matches!(linearizability.result, CheckResult::Linearizable) && !watched.unchanged.is_empty()
    {
        // The watchers' silences may be what is wrong (a server that drops events): if the
        // history is linearizable without them, it is, and the watch checks say what the
        // watchers missed.
        let weaker = Etcd::for_history_with(&reduced, &watched.without_silence());
        let again = check_with(&weaker, &reduced, options);
        if matches!(again.result, CheckResult::Linearizable) {
            (model, linearizability) = (weaker, again);
        }
    }
    if dropped > 0 {
        linearizability.map_ops(&needed);
    }

    let watch_start = Instant::now();
    let lin = match (
        &linearizability.result,
        linearizability.partitions.as_slice(),
    ) {
        (CheckResult::Linearizable, [p]) => Some(p),
        _ => None,
    };
    let (timeline, source, conflicts) = match lin {
        Some(p) => (
            Timeline::from_linearization(history, &p.init, &p.linearization),
            TimelineSource::Linearization,
            Vec::new(),
        ),
        None => {
            let (t, c) = Timeline::from_watches(watches);
            (t, TimelineSource::WatchUnion, c)
        }
    };
    let mut watch = check_watches(watches, &timeline);
    if !conflicts.is_empty() {
        // A conflict already says how the watcher differs from the kept event.
        watch.violations.retain(|v| {
            !conflicts.iter().any(|c| {
                (c.guarantee, c.watcher, c.revision, &c.key)
                    == (v.guarantee, v.watcher, v.revision, &v.key)
            })
        });
        let mut all = conflicts;
        all.append(&mut watch.violations);
        watch.violations = all;
    }
    EtcdRunReport {
        model,
        linearizability,
        unobservable_dropped: dropped,
        watch,
        timeline: source,
        watch_elapsed: watch_start.elapsed(),
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests;
