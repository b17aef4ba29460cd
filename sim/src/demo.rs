//! The reference scenario of the determinism proof, shared by its test and the `replay`
//! example: a cluster with a writing client, a leader partition, a power loss and restart of
//! a follower, and a slow-fsync window on the leader.
//!
//! Owns: the scenario's timeline. Must never: depend on anything but the seed and the member
//! count.

use crate::workload::start_writer;
use crate::{LatencyModel, SimConfig, SimError, Simulation};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tracing::Level;

/// What the reference scenario produced.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The run's seed.
    pub seed: u64,
    /// Hash of the whole trace.
    pub trace_hash: String,
    /// The trace, one JSON object per line.
    pub trace: Vec<String>,
    /// Acknowledged writes.
    pub acked: usize,
    /// Failed (indeterminate) writes.
    pub failed: u64,
    /// Leader changes seen, summed over members.
    pub leader_changes: u64,
    /// Simulated seconds.
    pub sim_secs: f64,
    /// Why the scenario stopped early, if it did (e.g. a timeout waiting for a leader).
    pub error: Option<String>,
    /// Exit reasons of members that stopped on their own (start failure, storage error).
    pub member_exits: Vec<(String, String)>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs the reference scenario (about 15 simulated seconds) with a DEBUG-level trace. Fails
/// only if the world cannot be built; a scenario that stops early reports it in `error`.
pub fn run(seed: u64, members: usize) -> Result<DemoOutcome, SimError> {
    let cfg = SimConfig::new(seed, members).trace_level(Level::DEBUG);
    let mut s = Simulation::new(cfg)?;
    let writes = Rc::new(std::cell::RefCell::new(crate::workload::Writes::default()));
    let error = timeline(&mut s, &writes).err().map(|e| e.to_string());
    if let Some(e) = &error {
        tracing::error!(target: "sim", error = %e, "scenario stopped early");
    }
    s.trace_status();
    let names = s.member_names();
    let w = writes.borrow();
    Ok(DemoOutcome {
        seed,
        trace_hash: s.trace_hash(),
        trace: s.trace().lines(),
        acked: w.acked.len(),
        failed: w.failed,
        leader_changes: names.iter().map(|n| s.leader_changes(n)).sum(),
        sim_secs: s.elapsed().as_secs_f64(),
        error,
        member_exits: names
            .iter()
            .filter_map(|n| s.exit_reason(n).map(|r| (n.clone(), r)))
            .collect(),
    })
}

fn timeline(
    s: &mut Simulation,
    out: &Rc<std::cell::RefCell<crate::workload::Writes>>,
) -> Result<(), SimError> {
    let leader = s.await_leader(secs(10.0))?;
    let stop = Rc::new(Cell::new(false));
    let names = s.member_names();
    let writes = start_writer(s, "c0", names.clone(), secs(0.02), stop.clone())?;
    s.run_for(secs(1.0))?;
    // Leader partition, then heal.
    s.isolate(&leader)?;
    s.run_for(secs(3.0))?;
    s.heal()?;
    s.run_for(secs(1.0))?;
    // Power loss and restart of a member that is not the current leader.
    let cur = s.leader().unwrap_or_default();
    let victim = names
        .iter()
        .find(|n| **n != cur)
        .cloned()
        .unwrap_or_else(|| names[0].clone());
    s.power_loss(&victim)?;
    s.run_for(secs(1.0))?;
    s.restart(&victim)?;
    s.run_for(secs(1.0))?;
    // A slow-fsync window on the current leader.
    let cur = s.leader().unwrap_or_else(|| names[0].clone());
    s.set_disk_latency(&cur, LatencyModel::slow(secs(1.5)))?;
    s.run_for(secs(3.0))?;
    s.set_disk_latency(&cur, LatencyModel::healthy())?;
    s.run_for(secs(2.0))?;
    stop.set(true);
    let r = s.run_clients(secs(20.0));
    std::mem::swap(&mut *out.borrow_mut(), &mut *writes.borrow_mut());
    r.map(|_| ())
}
