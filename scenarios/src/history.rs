//! What the workload clients observed: every request with its simulated call and return time,
//! its response or its unknown outcome, and every watch response.
//!
//! Owns: [`Record`], [`WatchLog`], the shared [`Recorder`] client hosts append to, and the
//! conversion of records into the checker's etcd history (linearizable operations only;
//! serializable reads are kept aside and checked against the linearization).
//!
//! Must never: drop a write (a write without a response is kept with an unknown outcome), or
//! read time from anything but the simulation.

use linearizability::models::etcd::{EtcdRequest, EtcdResponse, KeyRange, KeyValue};
use linearizability::watch::{
    WatchEvent as CheckerWatchEvent, WatchFilter, WatchResponse as CheckerWatchResponse,
    WatcherHistory,
};
use linearizability::Operation;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// One request as seen by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Client id (one per logical client process).
    pub client: u64,
    /// The client host.
    pub host: String,
    /// The member the request went to.
    pub member: String,
    /// What kind of operation this is in the traffic profile (`get`, `cas`, `k8s-update`, ...).
    pub kind: String,
    /// Invocation, simulated µs since the start.
    pub call_us: u64,
    /// Return (or give-up) time, simulated µs since the start.
    pub ret_us: u64,
    /// A serializable (stale-allowed) read.
    #[serde(default)]
    pub serializable: bool,
    /// The request.
    pub request: EtcdRequest,
    /// The response; `None` = unknown outcome.
    pub response: Option<EtcdResponse>,
    /// Why the outcome is unknown, or why the request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The server refused the request before it took effect (e.g. `database space exceeded`):
    /// no response, and no effect either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl Record {
    /// Whether the request can change the store.
    pub fn is_write(&self) -> bool {
        !matches!(self.request, EtcdRequest::Range(_))
    }

    /// Latency of a completed request.
    pub fn latency(&self) -> Option<Duration> {
        self.response
            .as_ref()
            .map(|_| Duration::from_micros(self.ret_us.saturating_sub(self.call_us)))
    }
}

/// One event of a watch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// `true` for DELETE.
    pub delete: bool,
    /// The key-value (for a delete: key and mod revision only).
    pub kv: KeyValue,
    /// The previous key-value, for watchers that asked for it (absent if the key did not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KeyValue>,
}

/// One watch response with events, or a progress notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchBatch {
    /// Simulated µs when it arrived.
    pub at_us: u64,
    /// The member it came from.
    pub member: String,
    /// Index of the stream (in [`WatchLog::streams`]) it arrived on.
    pub stream: usize,
    /// Header revision.
    pub header_revision: i64,
    /// The events.
    pub events: Vec<WatchEvent>,
    /// A progress notification (no events): everything up to `header_revision` was sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
}

/// Everything one watcher saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLog {
    /// Watcher id.
    pub watcher: u64,
    /// Watched prefix.
    pub prefix: String,
    /// Whether it asked for previous key-values.
    #[serde(default)]
    pub prev_kv: bool,
    /// Its filter, if any (`noput`: deletes only, `nodelete`: puts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The revision the first stream started from.
    pub start_revision: i64,
    /// Every (re)start: (simulated µs, member, start revision).
    pub streams: Vec<(u64, String, i64)>,
    /// Responses with events and progress notifications, in arrival order.
    pub batches: Vec<WatchBatch>,
    /// Why streams ended (errors, cancels).
    pub interruptions: Vec<String>,
}

impl WatchLog {
    /// Every stream of this watcher as the checker's watcher history (one per (re)start).
    pub fn to_checker(&self) -> Vec<WatcherHistory> {
        self.streams
            .iter()
            .enumerate()
            .map(|(i, (_, _, start))| WatcherHistory {
                id: self.watcher * 1000 + i as u64,
                range: KeyRange::range(self.prefix.clone(), crate::exec::prefix_end(&self.prefix)),
                start_revision: *start,
                prev_kv: self.prev_kv,
                filters: match self.filter.as_deref() {
                    Some("noput") => vec![WatchFilter::NoPut],
                    Some("nodelete") => vec![WatchFilter::NoDelete],
                    _ => Vec::new(),
                },
                responses: self
                    .batches
                    .iter()
                    .filter(|b| b.stream == i)
                    .map(|b| CheckerWatchResponse {
                        revision: b.header_revision,
                        events: b
                            .events
                            .iter()
                            .map(|e| {
                                if e.delete {
                                    CheckerWatchEvent::delete(
                                        e.kv.key.clone(),
                                        e.kv.mod_revision,
                                        e.prev_kv.clone(),
                                    )
                                } else {
                                    CheckerWatchEvent::put(e.kv.clone(), e.prev_kv.clone())
                                }
                            })
                            .collect(),
                        time: Some(b.at_us),
                        progress_notify: b.progress,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect()
    }
}

/// One lease's life as its client saw it (simulated µs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLog {
    /// Lease id.
    pub id: i64,
    /// The key attached to it.
    pub key: String,
    /// Granted TTL (s).
    pub ttl: i64,
    /// Successful refreshes (the grant, then keep-alives answered with TTL > 0): (call, return).
    pub refreshes: Vec<(u64, u64)>,
    /// Linearizable reads of the key that got an answer: (call, return, key present).
    pub reads: Vec<(u64, u64, bool)>,
    /// Whether the attach (put with the lease) was acknowledged.
    pub attached: bool,
}

/// Something the operator did (schedule entries such as compaction, defrag, member changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorEvent {
    /// Simulated ms since the start.
    pub at_ms: u64,
    /// Action label (`compact`, `defrag`, `member-remove`, `promote`, ...).
    pub action: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The server's answer or what was done.
    pub detail: String,
}

/// The shared log client hosts append to (all hosts run on the driving thread).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Requests.
    pub records: Rc<RefCell<Vec<Record>>>,
    /// Watchers.
    pub watches: Rc<RefCell<Vec<WatchLog>>>,
    /// Leases of the lease clients.
    pub leases: Rc<RefCell<Vec<LeaseLog>>>,
    /// What the operator did.
    pub operator: Rc<RefCell<Vec<OperatorEvent>>>,
}

impl Recorder {
    /// Appends an operator event stamped with the current simulated time.
    pub fn operator_event(&self, action: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!(target: "sim::operator", action, ok, detail = %detail, "operator");
        self.operator.borrow_mut().push(OperatorEvent {
            at_ms: now_us() / 1000,
            action: action.to_string(),
            ok,
            detail,
        });
    }
}

thread_local! {
    /// The start of a real-mode run on this thread (its hosts run here), if one is running.
    static REAL_EPOCH: std::cell::Cell<Option<tokio::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Sets (or clears) the time base of real-mode records on this thread.
pub(crate) fn set_real_epoch(t0: Option<tokio::time::Instant>) {
    REAL_EPOCH.with(|e| e.set(t0));
}

/// Time since the start in µs: simulated inside a simulated host, wall time since the real
/// cluster started in real mode, 0 elsewhere.
pub fn now_us() -> u64 {
    if let Some(d) = turmoil::sim_elapsed() {
        return d.as_micros() as u64;
    }
    REAL_EPOCH
        .with(|e| e.get())
        .map_or(0, |t0| t0.elapsed().as_micros() as u64)
}

/// The linearizable part of the history in the checker's types, with the index of the record
/// each operation came from. Failed reads (no effect) are left out; failed writes stay with an
/// unknown outcome; refused requests (no effect) are left out; serializable reads are left out
/// (see `checks::stale_reads`) unless `stale_as_linearizable` (the harness's negative control).
pub fn to_checker(
    records: &[Record],
    stale_as_linearizable: bool,
) -> (Vec<Operation<EtcdRequest, EtcdResponse>>, Vec<usize>) {
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if (r.serializable && !stale_as_linearizable) || r.refused {
            continue;
        }
        match &r.response {
            Some(resp) => ops.push(Operation::new(
                r.client,
                r.call_us,
                r.ret_us.max(r.call_us),
                r.request.clone(),
                resp.clone(),
            )),
            None if r.is_write() => ops.push(Operation::unknown(
                r.client,
                r.call_us,
                r.ret_us,
                r.request.clone(),
            )),
            None => continue,
        }
        origin.push(i);
    }
    (ops, origin)
}
