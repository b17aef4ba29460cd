//! The simulation trace: a `tracing` layer writing one JSON line per event, stamped with
//! simulated time and the host (member or client) it happened on, and a hash of all lines.
//!
//! Owns: the per-simulation subscriber (installed with `tracing::subscriber::set_default` for
//! the thread that drives the simulation, never globally, so tests in one process do not mix),
//! the line format, and `trace_hash`. The server's own log messages (`slow fdatasync`, `raft
//! leader changed`, ...) arrive here because every host runs on the driving thread.
//!
//! Line format: `{"t":"<secs>.<micros>","host":"m0","level":"WARN","target":"...",
//! "msg":"...", <event fields>}`; `host` is `sim` for the simulator's own events (faults,
//! restarts), which carry the affected node in a `node` field.
//!
//! Must never: stamp a line with anything but simulated time, or let an event's content depend
//! on anything outside the simulation (addresses, ids and durations inside are all simulated).

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::runtime::{Handle, Id as RuntimeId};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

#[derive(Default)]
struct Buf {
    lines: Vec<String>,
    hasher: sha1_smol::Sha1,
    count: u64,
    driver_now: Duration,
    /// The host each turmoil runtime belongs to (every host, and every incarnation of a
    /// restarted host, runs on its own tokio runtime). Looked up per event, so the simulator
    /// needs no span around every host's every tick (turmoil's `node` span, which cost ~5 % of
    /// a run creating and closing it; it is disabled here).
    hosts: Vec<(RuntimeId, Arc<str>)>,
}

/// The trace of one simulation (cheap to clone; shared with the layer).
#[derive(Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<Buf>>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Trace({} lines)", self.lock().count)
    }
}

impl Trace {
    fn lock(&self) -> MutexGuard<'_, Buf> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names the host whose runtime the caller runs on (call it first thing in every host's
    /// software, in each incarnation); its events are stamped with this name from then on.
    pub(crate) fn enter_host(&self, name: &str) {
        if let Ok(h) = Handle::try_current() {
            let id = h.id();
            let mut b = self.lock();
            b.hosts.retain(|(i, _)| *i != id);
            b.hosts.push((id, name.into()));
        }
    }

    /// The host the caller's runtime belongs to, if it is one.
    fn current_host(&self) -> Option<Arc<str>> {
        let id = Handle::try_current().ok()?.id();
        let b = self.lock();
        b.hosts
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.clone())
    }

    /// Sets the simulated time used for events outside any host's tick (the driver's own).
    pub fn set_now(&self, now: Duration) {
        self.lock().driver_now = now;
    }

    /// Appends one line (already JSON) to the trace.
    fn push(&self, line: String) {
        let mut b = self.lock();
        b.hasher.update(line.as_bytes());
        b.hasher.update(b"\n");
        b.count += 1;
        b.lines.push(line);
    }

    /// SHA-1 (hex) of every line so far, each followed by `\n`: equal for equal traces.
    pub fn hash(&self) -> String {
        self.lock().hasher.digest().to_string()
    }

    /// Number of lines.
    pub fn len(&self) -> u64 {
        self.lock().count
    }

    /// Whether the trace is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// Lines whose message equals `msg`.
    pub fn lines_with_msg(&self, msg: &str) -> Vec<String> {
        let needle = format!("\"msg\":{}", serde_json::Value::String(msg.to_string()));
        self.lock()
            .lines
            .iter()
            .filter(|l| l.contains(&needle))
            .cloned()
            .collect()
    }

    /// The whole trace as JSON lines.
    pub fn to_jsonl(&self) -> String {
        let b = self.lock();
        let mut s = String::new();
        for l in &b.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// A subscriber writing into this trace; `level` bounds events from the server and the
    /// simulator (`etcd_server*`, `sim*` targets); other crates (h2, hyper, tonic, turmoil)
    /// contribute INFO and above only.
    pub fn subscriber(&self, level: Level) -> impl Subscriber + Send + Sync {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry().with(TraceLayer {
            trace: self.clone(),
            level,
        })
    }
}

/// Formats simulated time as `<secs>.<micros>`.
pub fn fmt_time(t: Duration) -> String {
    format!("{}.{:06}", t.as_secs(), t.subsec_micros())
}

struct TraceLayer {
    trace: Trace,
    level: Level,
}

struct JsonVisitor {
    msg: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.fields.insert(field.name().into(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.msg = s;
        } else {
            self.fields.insert(field.name().into(), s.into());
        }
    }
}

fn ours(target: &str) -> bool {
    target.starts_with("etcd_server") || target.starts_with("sim")
}

impl<S: Subscriber> Layer<S> for TraceLayer {
    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        if meta.is_span() {
            return false;
        }
        let lvl = *meta.level();
        lvl <= self.level
            && (lvl <= Level::INFO || ours(meta.target()))
            && !meta.target().starts_with("turmoil")
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(
            self.level.max(Level::INFO),
        ))
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let host = self.trace.current_host();
        // Inside a host's tick turmoil knows the time to the microsecond; outside, the driver
        // stamps the time of the step it is at.
        let t = match &host {
            Some(_) => turmoil::sim_elapsed(),
            None => None,
        }
        .unwrap_or_else(|| self.trace.lock().driver_now);
        let mut v = JsonVisitor {
            msg: String::new(),
            fields: serde_json::Map::new(),
        };
        event.record(&mut v);
        let meta = event.metadata();
        let mut line = String::with_capacity(128);
        let _ = write!(
            line,
            "{{\"t\":\"{}\",\"host\":{},\"level\":\"{}\",\"target\":{},\"msg\":{}",
            fmt_time(t),
            serde_json::Value::String(host.as_deref().unwrap_or("sim").to_string()),
            meta.level(),
            serde_json::Value::String(meta.target().into()),
            serde_json::Value::String(v.msg),
        );
        for (k, val) in v.fields {
            let _ = write!(line, ",{}:{}", serde_json::Value::String(k), val);
        }
        line.push('}');
        self.trace.push(line);
    }
}
