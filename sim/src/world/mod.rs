//! The world builder and driver: a turmoil simulation running the real server on each member
//! host and scenario code on client hosts, stepped by the caller in simulated time.
//!
//! Owns: [`SimConfig`] (seed, member count, flags, tick, link latency, trace level),
//! [`Simulation`] (the turmoil `Sim`, members and their disks, link faults, clients, the fault
//! schedule, the trace and its per-simulation subscriber) and the accessors scenarios use to
//! observe the cluster (leader, status, leader changes).
//!
//! Must never: install a global tracing subscriber, read the wall clock, use an unseeded RNG,
//! or let a member's failure abort the simulation (it is recorded and observable instead).

pub(crate) mod member;

use crate::client::ClientCtx;
use crate::clock::ClockError;
use crate::clock::NodeClock;
use crate::disk::SimDisk;
use crate::faults::Fault;
use crate::net::{LinkFaults, SimNetwork};
use crate::rng::Seeds;
use crate::trace::Trace;
use crate::SimError;
use etcd_server::etcdserver::RaftStatus;
use etcd_server::EtcdServer;
use member::{member_args, parse_config, Member, Slot, Software};
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tracing::Level;

pub use member::DATA_DIR;

/// The simulated wall-clock epoch (2025-01-01T00:00:00Z), fixed so nothing depends on today.
const EPOCH_SECS: u64 = 1_735_689_600;

/// How to build a simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The run's seed: every random choice derives from it.
    pub seed: u64,
    /// Number of members (`m0`, `m1`, ...): 1, 3 or 5 (any count ≥ 1 works).
    pub members: usize,
    /// Flags (`--flag=value`) for every member, applied after the simulator's defaults.
    pub flags: Vec<String>,
    /// Flags for single members, applied last.
    pub member_flags: BTreeMap<usize, Vec<String>>,
    /// turmoil's step: how far simulated time moves per step (default 1 ms). Timers inside a
    /// host fire at their exact time; message delivery between hosts is quantised to it.
    pub tick: Duration,
    /// Smallest one-way network latency (default 1 ms).
    pub min_latency: Duration,
    /// Largest one-way network latency (default 2 ms); drawn from turmoil's exponential curve.
    pub max_latency: Duration,
    /// Most verbose level recorded from the server and the simulator (default INFO).
    pub trace_level: Level,
    /// How often the driver writes every member's raft status (term, leader, commit, applied)
    /// to the trace, so the trace hash covers the cluster's progress (default 1 s; `None`: never).
    pub status_interval: Option<Duration>,
}

impl SimConfig {
    /// `members` members, seed `seed`, defaults elsewhere.
    pub fn new(seed: u64, members: usize) -> Self {
        SimConfig {
            seed,
            members,
            flags: Vec::new(),
            member_flags: BTreeMap::new(),
            tick: Duration::from_millis(1),
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(2),
            trace_level: Level::INFO,
            status_interval: Some(Duration::from_secs(1)),
        }
    }

    /// Adds a flag (`--flag=value`) for every member.
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.flags.push(flag.into());
        self
    }

    /// Adds a flag for member `index` only.
    pub fn member_flag(mut self, index: usize, flag: impl Into<String>) -> Self {
        self.member_flags
            .entry(index)
            .or_default()
            .push(flag.into());
        self
    }

    /// Sets the trace level.
    pub fn trace_level(mut self, level: Level) -> Self {
        self.trace_level = level;
        self
    }

    /// Sets the step size.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }
}

/// A running simulated world. Not `Send`: it lives on the thread that drives it, which is also
/// where its trace subscriber is installed.
pub struct Simulation {
    pub(crate) sim: turmoil::Sim<'static>,
    seeds: Seeds,
    trace: Trace,
    pub(crate) members: Vec<Member>,
    links: LinkFaults,
    pub(crate) clients: BTreeMap<String, Rc<Cell<bool>>>,
    schedule: Vec<(Duration, u64, Fault)>,
    next_fault: u64,
    status_interval: Option<Duration>,
    next_status: Duration,
    pub(crate) clocks: BTreeMap<String, NodeClock>,
    pub(crate) faults_applied: Vec<(Duration, String)>,
    /// Flags every member gets (also members added later).
    base_flags: Vec<String>,
    /// Members stopped for good.
    retired: std::collections::BTreeSet<String>,
    // Dropped last, so events emitted while the simulation is torn down still land here.
    _subscriber: tracing::subscriber::DefaultGuard,
}

impl Simulation {
    /// Builds the world and registers every member's host (nothing runs until the first step).
    pub fn new(cfg: SimConfig) -> Result<Simulation, SimError> {
        if cfg.members == 0 {
            return Err(SimError::Config("at least one member".into()));
        }
        if cfg.tick.is_zero() || cfg.max_latency < cfg.min_latency {
            return Err(SimError::Config(
                "tick > 0 and max_latency ≥ min_latency".into(),
            ));
        }
        let seeds = Seeds::new(cfg.seed);
        let trace = Trace::default();
        let subscriber = tracing::subscriber::set_default(trace.subscriber(cfg.trace_level));
        let sim = turmoil::Builder::new()
            .rng_seed(seeds.derive("turmoil"))
            .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .tick_duration(cfg.tick)
            .simulation_duration(Duration::from_secs(365 * 24 * 3600))
            .min_message_latency(cfg.min_latency)
            .max_message_latency(cfg.max_latency)
            .tcp_capacity(1024)
            .build();
        let links = LinkFaults::new(seeds.stream("network"));
        let mut world = Simulation {
            sim,
            seeds,
            trace,
            members: Vec::new(),
            links,
            clients: BTreeMap::new(),
            schedule: Vec::new(),
            next_fault: 0,
            status_interval: cfg.status_interval,
            next_status: Duration::ZERO,
            clocks: BTreeMap::new(),
            faults_applied: Vec::new(),
            base_flags: Vec::new(),
            retired: Default::default(),
            _subscriber: subscriber,
        };
        let names: Vec<String> = (0..cfg.members).map(|i| format!("m{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            let mut extra = cfg.flags.clone();
            extra.extend(cfg.member_flags.get(&i).cloned().unwrap_or_default());
            world.register_member(name, &names, &extra)?;
        }
        world.base_flags = cfg.flags.clone();
        tracing::info!(target: "sim", seed = cfg.seed, members = cfg.members, "simulation built");
        Ok(world)
    }

    /// Registers member `name`'s host with `--initial-cluster` naming `cluster` (itself
    /// included) and `extra` flags applied last.
    fn register_member(
        &mut self,
        name: &str,
        cluster: &[String],
        extra: &[String],
    ) -> Result<(), SimError> {
        let args = member_args(name, cluster, extra);
        let config = parse_config(name, &args)?;
        let disk = SimDisk::new(name, self.seeds.stream(&format!("disk/{name}")));
        let slot = Rc::new(RefCell::new(Slot::default()));
        let clock = Arc::new(ClockError::default());
        let config = Rc::new(RefCell::new(config));
        let software = Software {
            clock: clock.clone(),
            name: name.to_string(),
            config: config.clone(),
            disk: disk.clone(),
            links: self.links.clone(),
            seeds: self.seeds,
            slot: slot.clone(),
            trace: self.trace.clone(),
        };
        self.sim.host(name, move || software.clone().run());
        self.members.push(Member {
            name: name.to_string(),
            disk,
            clock,
            slot,
            config,
        });
        Ok(())
    }

    /// Starts a new member `name` on an empty disk that joins the running cluster
    /// (`--initial-cluster-state=existing`), as an operator does after `etcdctl member add`:
    /// the member must have been added through the Cluster API first, or it refuses to start
    /// (its exit reason says why). `--initial-cluster` names every member the simulation
    /// knows that is up, plus the new one. `extra` flags are applied after the run's flags.
    pub fn add_member(&mut self, name: &str, extra: &[String]) -> Result<(), SimError> {
        if self.member(name).is_ok() || self.clients.contains_key(name) {
            return Err(SimError::Config(format!("host {name} already exists")));
        }
        let mut cluster: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.slot.borrow().server.is_some())
            .map(|m| m.name.clone())
            .collect();
        cluster.push(name.to_string());
        let mut flags = self.base_flags.clone();
        flags.push("--initial-cluster-state=existing".to_string());
        flags.extend(extra.iter().cloned());
        self.record_fault(format!("start new member {name} joining {cluster:?}"));
        self.register_member(name, &cluster, &flags)
    }

    /// Stops member `name` for good (after `member remove`, or to retire it): its host is
    /// crashed with its disk kept; it never restarts unless [`Fault::Restart`] is applied.
    pub fn retire_member(&mut self, name: &str) -> Result<(), SimError> {
        self.member(name)?;
        self.record_fault(format!("retire member {name}"));
        self.retired.insert(name.to_string());
        if self.turmoil().is_host_running(name) {
            self.quiet_teardown(name, false);
        }
        self.set_slot_down(name)
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seeds.seed()
    }

    /// A fresh copy of the seeded stream for `concern` (e.g. `"workload/c0"`). Each call
    /// restarts the stream: take it once per consumer.
    pub fn rng(&self, concern: &str) -> ChaCha8Rng {
        self.seeds.stream(concern)
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The hash of the trace so far: equal seeds give equal hashes.
    pub fn trace_hash(&self) -> String {
        self.trace.hash()
    }

    /// The shared link-fault table.
    pub fn links(&self) -> &LinkFaults {
        &self.links
    }

    /// The etcd release member `name` runs (or starts next) as (`--emulate-release`).
    pub fn release_of(&self, name: &str) -> Option<String> {
        let m = self.members.iter().find(|m| m.name == name)?;
        let release = m.config.borrow().emulate_release.clone();
        Some(release)
    }

    /// Member names, in order (retired ones included).
    pub fn member_names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    /// Members not retired, in order.
    pub fn active_members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| !self.retired.contains(&m.name))
            .map(|m| m.name.clone())
            .collect()
    }

    pub(crate) fn member(&self, name: &str) -> Result<&Member, SimError> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| SimError::UnknownHost(name.to_string()))
    }

    pub(crate) fn turmoil(&mut self) -> &mut turmoil::Sim<'static> {
        &mut self.sim
    }

    /// The disk of member `name` (inject faults, change latency, inspect files).
    pub fn disk(&self, name: &str) -> Result<SimDisk, SimError> {
        Ok(self.member(name)?.disk.clone())
    }

    /// The running server of member `name`, if it is up.
    pub fn server(&self, name: &str) -> Option<EtcdServer> {
        self.member(name).ok()?.slot.borrow().server.clone()
    }

    /// The raft status of member `name`, if it is up.
    pub fn status(&self, name: &str) -> Option<RaftStatus> {
        self.server(name).map(|s| s.status())
    }

    /// Why member `name`'s last incarnation ended on its own (start failure, storage error).
    pub fn exit_reason(&self, name: &str) -> Option<String> {
        self.member(name).ok()?.slot.borrow().exit.clone()
    }

    /// Incarnations of member `name` started so far.
    pub fn incarnations(&self, name: &str) -> u64 {
        self.member(name)
            .map(|m| m.slot.borrow().incarnations)
            .unwrap_or(0)
    }

    /// `etcd_server_leader_changes_seen_total` of member `name`, summed over its incarnations.
    pub fn leader_changes(&self, name: &str) -> u64 {
        let Ok(m) = self.member(name) else { return 0 };
        let s = m.slot.borrow();
        s.leader_changes_before
            + s.server
                .as_ref()
                .map(|srv| srv.metrics().leader_changes())
                .unwrap_or(0)
    }

    /// The member that believes it leads with the highest term, if any.
    pub fn leader(&self) -> Option<String> {
        self.members
            .iter()
            .filter_map(|m| {
                let st = m.slot.borrow().server.as_ref()?.status();
                st.is_leader.then(|| (st.term, m.name.clone()))
            })
            .max()
            .map(|(_, n)| n)
    }

    /// The leader, if every running member not retired agrees on it (same leader id, same
    /// term).
    pub fn stable_leader(&self) -> Option<String> {
        let leader = self.leader()?;
        let lst = self.status(&leader)?;
        let lid = self.server(&leader)?.member_id();
        let agree = self.active_members().iter().all(|m| match self.status(m) {
            Some(st) => st.leader == lid && st.term == lst.term,
            None => true,
        });
        agree.then_some(leader)
    }

    /// Registers a client host `name` running `f(ctx)`. It starts on the next step; its
    /// completion is visible through [`Simulation::client_done`].
    pub fn client<F, Fut>(&mut self, name: &str, f: F) -> Result<(), SimError>
    where
        F: FnOnce(ClientCtx) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        if self.clients.contains_key(name) || self.member(name).is_ok() {
            return Err(SimError::Config(format!("host {name} already exists")));
        }
        let ctx = ClientCtx::simulated(
            name,
            SimNetwork::new(name, self.links.clone()),
            self.member_names(),
        );
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        let fut = f(ctx);
        let (trace, host) = (self.trace.clone(), name.to_string());
        self.sim.client(name, async move {
            trace.enter_host(&host);
            fut.await;
            flag.set(true);
            Ok(())
        });
        self.clients.insert(name.to_string(), done);
        Ok(())
    }

    /// Whether client `name` has finished.
    pub fn client_done(&self, name: &str) -> bool {
        self.clients.get(name).is_some_and(|c| c.get())
    }

    /// Schedules `fault` at simulated time `at` (applied by the step that reaches it; faults at
    /// the same time apply in the order they were scheduled).
    pub fn schedule(&mut self, at: Duration, fault: Fault) {
        self.next_fault += 1;
        self.schedule.push((at, self.next_fault, fault));
        self.schedule.sort_by_key(|(t, n, _)| (*t, *n));
    }

    /// Advances simulated time by one tick, applying faults that have come due.
    pub fn step(&mut self) -> Result<(), SimError> {
        let now = self.sim.elapsed();
        self.trace.set_now(now);
        while self.schedule.first().is_some_and(|(t, _, _)| *t <= now) {
            let (_, _, fault) = self.schedule.remove(0);
            self.apply(fault)?;
        }
        self.sim
            .step()
            .map_err(|e| SimError::Turmoil(e.to_string()))?;
        let now = self.sim.elapsed();
        self.trace.set_now(now);
        if let Some(every) = self.status_interval {
            if now >= self.next_status {
                self.next_status = now + every;
                self.trace_status();
            }
        }
        Ok(())
    }

    /// Writes every member's raft status to the trace (`target: sim::status`).
    pub fn trace_status(&self) {
        for m in &self.members {
            let s = m.slot.borrow();
            match &s.server {
                Some(srv) => {
                    let st = srv.status();
                    tracing::info!(target: "sim::status", node = %m.name, up = true,
                        term = st.term, leader = %format!("{:x}", st.leader),
                        commit = st.commit, applied = st.applied,
                        leader_changes = s.leader_changes_before + srv.metrics().leader_changes(),
                        "status");
                }
                None => tracing::info!(target: "sim::status", node = %m.name, up = false, "status"),
            }
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        let end = self.elapsed() + d;
        while self.elapsed() < end {
            self.step()?;
        }
        Ok(())
    }

    /// Runs until `cond` holds (checked after every step) or `timeout` of simulated time has
    /// passed; returns how long it took.
    pub fn run_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Simulation) -> bool,
    ) -> Result<Duration, SimError> {
        let start = self.elapsed();
        loop {
            if cond(self) {
                return Ok(self.elapsed() - start);
            }
            if self.elapsed() - start >= timeout {
                return Err(SimError::Timeout {
                    what: what.to_string(),
                    after: timeout,
                });
            }
            self.step()?;
        }
    }

    /// Runs until every client has finished, or `timeout`.
    pub fn run_clients(&mut self, timeout: Duration) -> Result<Duration, SimError> {
        self.run_until("clients to finish", timeout, |s| {
            s.clients.values().all(|c| c.get())
        })
    }

    /// Runs until a leader is elected that every running member follows.
    pub fn await_leader(&mut self, timeout: Duration) -> Result<String, SimError> {
        self.run_until("a stable leader", timeout, |s| s.stable_leader().is_some())?;
        self.stable_leader().ok_or_else(|| SimError::Timeout {
            what: "a stable leader".into(),
            after: timeout,
        })
    }

    pub(crate) fn record_fault(&mut self, what: String) {
        let now = self.elapsed();
        self.trace.set_now(now);
        tracing::info!(target: "sim::fault", fault = %what, "fault");
        self.faults_applied.push((now, what));
    }

    /// The simulated wall-clock epoch as a duration since the Unix epoch.
    pub(crate) fn turmoil_epoch(&self) -> Duration {
        Duration::from_secs(EPOCH_SECS)
    }

    /// A JSON summary of the run so far: seed, simulated seconds, trace hash and length, each
    /// member's state (up, incarnations, leader changes, exit reason) and the faults applied.
    pub fn summary_json(&self) -> String {
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|m| {
                let slot = m.slot.borrow();
                serde_json::json!({
                    "name": m.name,
                    "up": slot.server.is_some(),
                    "incarnations": slot.incarnations,
                    "leader_changes": self.leader_changes(&m.name),
                    "exit": slot.exit,
                    "disk": {
                        "syncs": m.disk.stats().syncs,
                        "max_sync_ms": m.disk.stats().max_sync.as_millis() as u64,
                        "faults_fired": m.disk.stats().faults_fired,
                    },
                })
            })
            .collect();
        let faults: Vec<serde_json::Value> = self
            .faults_applied
            .iter()
            .map(|(t, f)| serde_json::json!({"t": crate::trace::fmt_time(*t), "fault": f}))
            .collect();
        serde_json::json!({
            "seed": self.seed(),
            "sim_secs": self.elapsed().as_secs_f64(),
            "trace_hash": self.trace_hash(),
            "trace_lines": self.trace.len(),
            "leader": self.leader(),
            "members": members,
            "faults": faults,
        })
        .to_string()
    }

    /// Every fault applied so far, with its simulated time.
    pub fn faults_applied(&self) -> &[(Duration, String)] {
        &self.faults_applied
    }
}

/// Client URL port of every member.
pub const CLIENT_PORT: u16 = 2379;
/// Peer URL port of every member.
pub const PEER_PORT: u16 = 2380;
