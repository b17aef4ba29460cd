//! A minimal write workload and a read-back helper, for the simulator's own tests, the
//! determinism proof and the speed benchmark (richer workloads live in `scenarios`).
//!
//! Owns: [`start_writer`] (an open-loop client putting a unique key at a fixed rate, recording
//! which writes were acknowledged), [`read_all`] and [`assert_no_acked_write_lost`].
//!
//! Must never: invent outcomes (a write is acknowledged only when the server said so), or use
//! time other than the simulated clock.

use crate::{SimError, Simulation};
use etcd_api::etcdserverpb as pb;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Most puts a writer keeps in flight; beyond that it skips its tick (an outage must not pile
/// up unbounded requests).
pub const MAX_IN_FLIGHT: usize = 64;

/// What a writer saw.
#[derive(Debug, Default)]
pub struct Writes {
    /// Acknowledged writes: key → value.
    pub acked: BTreeMap<String, String>,
    /// Writes that failed or timed out (their outcome is unknown).
    pub failed: u64,
    /// Ticks skipped because `MAX_IN_FLIGHT` puts were outstanding.
    pub skipped: u64,
}

/// Starts client host `name` issuing one put of a unique key (`<name>/<n>`) every `period`
/// until `stop` is set, without waiting for earlier puts (open loop). Puts go to `members` in
/// turn; a failed put moves the writer to the next member.
pub fn start_writer(
    s: &mut Simulation,
    name: &str,
    members: Vec<String>,
    period: Duration,
    stop: Rc<Cell<bool>>,
) -> Result<Rc<RefCell<Writes>>, SimError> {
    if members.is_empty() {
        return Err(SimError::Config(
            "a writer needs at least one member".into(),
        ));
    }
    let writes = Rc::new(RefCell::new(Writes::default()));
    let w = writes.clone();
    let cname = name.to_string();
    s.client(name, move |cx| async move {
        let mut clients = BTreeMap::new();
        for m in &members {
            match cx.client(m) {
                Ok(c) => {
                    clients.insert(m.clone(), c);
                }
                Err(e) => tracing::warn!(target: "sim::client", member = %m, error = %e, "no client"),
            }
        }
        let at = Rc::new(Cell::new(0usize));
        let in_flight = Rc::new(Cell::new(0usize));
        let mut tasks = Vec::new();
        let mut i = 0u64;
        let mut tick = tokio::time::interval(period);
        while !stop.get() {
            tick.tick().await;
            if in_flight.get() >= MAX_IN_FLIGHT {
                w.borrow_mut().skipped += 1;
                continue;
            }
            let member = members[at.get() % members.len()].clone();
            let Some(mut c) = clients.get(&member).cloned() else {
                at.set(at.get() + 1);
                continue;
            };
            let key = format!("{cname}/{i:06}");
            let value = format!("v{i}");
            i += 1;
            let (w, at, in_flight) = (w.clone(), at.clone(), in_flight.clone());
            in_flight.set(in_flight.get() + 1);
            tasks.push(tokio::task::spawn_local(async move {
                // tonic's own timeout does not cover waiting for a (re)connection.
                let put = c.kv.put(pb::PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                });
                let res = match tokio::time::timeout(crate::client::REQUEST_TIMEOUT, put).await {
                    Ok(r) => r.map(tonic::Response::into_inner).map_err(|e| e.to_string()),
                    Err(_) => Err("client timeout".to_string()),
                };
                match res {
                    Ok(r) => {
                        let rev = r.header.map(|h| h.revision).unwrap_or(0);
                        tracing::info!(target: "sim::client", key = %key, member = %member, rev, "put ok");
                        w.borrow_mut().acked.insert(key, value);
                    }
                    Err(e) => {
                        tracing::info!(target: "sim::client", key = %key, member = %member, error = %e, "put failed");
                        w.borrow_mut().failed += 1;
                        at.set(at.get() + 1);
                    }
                }
                in_flight.set(in_flight.get() - 1);
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    })?;
    Ok(writes)
}

/// Reads every key from `member` with a linearizable range read (retrying for up to ten
/// seconds), running the simulation until the read completes.
pub fn read_all(s: &mut Simulation, member: &str) -> Result<BTreeMap<String, String>, SimError> {
    type Out = Rc<RefCell<Option<Result<BTreeMap<String, String>, String>>>>;
    let out: Out = Rc::new(RefCell::new(None));
    let o = out.clone();
    let m = member.to_string();
    let name = format!("reader-{member}-{}", s.elapsed().as_micros());
    s.client(&name, move |cx| async move {
        let mut result = Err("no attempt".to_string());
        for _ in 0..20 {
            result = read_once(&cx, &m).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        *o.borrow_mut() = Some(result);
    })?;
    s.run_until("a read", Duration::from_secs(60), |s| s.client_done(&name))?;
    let r = out.borrow_mut().take();
    r.unwrap_or_else(|| Err("reader did not finish".into()))
        .map_err(|e| SimError::Config(format!("read from {member}: {e}")))
}

async fn read_once(
    cx: &crate::ClientCtx,
    member: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut c = cx.client(member)?;
    let every_key = pb::RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let resp =
        c.kv.range(every_key)
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
    let mut map = BTreeMap::new();
    for kv in resp.kvs {
        map.insert(
            String::from_utf8_lossy(&kv.key).into_owned(),
            String::from_utf8_lossy(&kv.value).into_owned(),
        );
    }
    Ok(map)
}

/// Checks that every acknowledged write is present, with its value, on every member; returns
/// the first missing one as an error.
pub fn assert_no_acked_write_lost(s: &mut Simulation, writes: &Writes) -> Result<(), String> {
    if writes.acked.is_empty() {
        return Err("no write was acknowledged".into());
    }
    for m in s.member_names() {
        let data = read_all(s, &m).map_err(|e| e.to_string())?;
        for (k, v) in &writes.acked {
            if data.get(k) != Some(v) {
                return Err(format!(
                    "acknowledged write {k}={v} is {:?} on {m} (seed {})",
                    data.get(k),
                    s.seed()
                ));
            }
        }
    }
    Ok(())
}
