//! One member of the simulated cluster: its flags, its disk, and the software its turmoil host
//! runs (the real `etcd_server::start`, then waiting on the raft loop).
//!
//! Owns: building the member's `Config` with etcd's flag names, the per-incarnation `World`
//! (the node's [`SimDisk`], its [`SimNetwork`], a seed derived from the run's seed and the
//! incarnation), and the [`Slot`] through which the driver sees the running server.
//!
//! Must never: hold a `RefCell` borrow across an `.await`, or give a restarted member anything
//! but the same disk.

use crate::clock::{ClockError, SkewedClock};
use crate::disk::SimDisk;
use crate::net::{LinkFaults, SimNetwork};
use crate::rng::Seeds;
use crate::trace::Trace;
use crate::SimError;
use clap::Parser;
use etcd_server::seam::World;
use etcd_server::{Config, EtcdServer};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// Where a member keeps its data on its own simulated disk.
pub const DATA_DIR: &str = "/var/lib/etcd";

/// What the driver knows about a member's current incarnation.
#[derive(Default)]
pub(crate) struct Slot {
    /// The running server's handle (None while starting, stopped or crashed).
    pub(crate) server: Option<EtcdServer>,
    /// Incarnations started so far (1 after the first start).
    pub(crate) incarnations: u64,
    /// Why the last incarnation ended, if it did on its own.
    pub(crate) exit: Option<String>,
    /// Leader changes seen by incarnations that are gone.
    pub(crate) leader_changes_before: u64,
}

impl Slot {
    /// Forgets the running server, keeping the leader changes it saw.
    pub(crate) fn retire_server(&mut self) {
        if let Some(server) = self.server.take() {
            self.leader_changes_before += server.metrics().leader_changes();
        }
    }
}

/// A member: name, flags, disk, driver-visible state.
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) disk: SimDisk,
    pub(crate) clock: Arc<ClockError>,
    pub(crate) slot: Rc<RefCell<Slot>>,
    /// The flags the next incarnation starts with (shared with its [`Software`], so an
    /// upgrade or downgrade changes the release of the next start only).
    pub(crate) config: Rc<RefCell<Config>>,
}

/// `--flag=value` strings (or `--flag value` pairs already joined) into an ordered map, so a
/// later setting of a flag replaces an earlier one.
pub(crate) fn merge_flags(map: &mut BTreeMap<String, Option<String>>, flags: &[String]) {
    for f in flags {
        match f.split_once('=') {
            Some((k, v)) => map.insert(k.to_string(), Some(v.to_string())),
            None => map.insert(f.to_string(), None),
        };
    }
}

/// The flags of member `name` of a cluster of `names`, with `extra` applied last.
pub(crate) fn member_args(name: &str, names: &[String], extra: &[String]) -> Vec<String> {
    let initial: Vec<String> = names
        .iter()
        .map(|n| format!("{n}=http://{n}:{}", crate::PEER_PORT))
        .collect();
    let client = format!("http://{name}:{}", crate::CLIENT_PORT);
    let peer = format!("http://{name}:{}", crate::PEER_PORT);
    let mut map = BTreeMap::new();
    merge_flags(
        &mut map,
        &[
            format!("--name={name}"),
            format!("--data-dir={DATA_DIR}"),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}", initial.join(",")),
            "--initial-cluster-state=new".to_string(),
            "--initial-cluster-token=etcd-sim".to_string(),
        ],
    );
    merge_flags(&mut map, extra);
    let mut args = vec!["etcd-server".to_string()];
    for (k, v) in map {
        match v {
            Some(v) => args.push(format!("{k}={v}")),
            None => args.push(k),
        }
    }
    args
}

/// Parses a member's flags with the server's own parser.
pub(crate) fn parse_config(name: &str, args: &[String]) -> Result<Config, SimError> {
    Config::try_parse_from(args).map_err(|e| SimError::Flags {
        member: name.to_string(),
        message: e.to_string(),
    })
}

/// Everything the member's host closure needs, cloned into every incarnation.
pub(crate) struct Software {
    pub(crate) name: String,
    pub(crate) config: Rc<RefCell<Config>>,
    pub(crate) disk: SimDisk,
    pub(crate) links: LinkFaults,
    pub(crate) seeds: Seeds,
    pub(crate) slot: Rc<RefCell<Slot>>,
    /// The node's clock error (skew and drift), shared by its incarnations.
    pub(crate) clock: Arc<ClockError>,
    /// The run's trace, told which runtime is this host's.
    pub(crate) trace: Trace,
}

impl Software {
    /// One incarnation: start the real server on the node's disk and run until its raft loop
    /// ends. Start failures and exits are recorded in the slot and the trace, never returned
    /// as errors (a member failing is an observation, not a simulator failure).
    pub(crate) async fn run(self) -> turmoil::Result {
        self.trace.enter_host(&self.name);
        let incarnation = {
            let mut s = self.slot.borrow_mut();
            s.incarnations += 1;
            s.exit = None;
            s.incarnations
        };
        let world = World {
            disk: Arc::new(self.disk.clone()),
            net: Arc::new(SimNetwork::new(&self.name, self.links.clone())),
            seed: self
                .seeds
                .derive(&format!("raft/{}/{incarnation}", self.name)),
            clock: Arc::new(SkewedClock::new(self.clock.clone())),
            // Blocking work runs inline: threads would make the run depend on the OS.
            offload: None,
        };
        tracing::info!(target: "sim::member", node = %self.name, incarnation, "member starting");
        let config = self.config.borrow().clone();
        tracing::info!(target: "sim::member", node = %self.name, release = %config.emulate_release, "member release");
        let mut handle = match etcd_server::start(config, world).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(target: "sim::member", node = %self.name, error = %e, "member failed to start");
                self.slot.borrow_mut().exit = Some(format!("start failed: {e}"));
                return Ok(());
            }
        };
        self.slot.borrow_mut().server = Some(handle.server.clone());
        let result = handle.wait().await;
        let reason = match &result {
            Ok(()) => "stopped".to_string(),
            Err(e) => format!("raft loop ended: {e}"),
        };
        tracing::warn!(target: "sim::member", node = %self.name, reason = %reason, "member exited");
        let mut s = self.slot.borrow_mut();
        s.retire_server();
        s.exit = Some(reason);
        Ok(())
    }
}

impl Clone for Software {
    fn clone(&self) -> Self {
        Software {
            name: self.name.clone(),
            config: self.config.clone(),
            disk: self.disk.clone(),
            links: self.links.clone(),
            seeds: self.seeds,
            slot: self.slot.clone(),
            clock: self.clock.clone(),
            trace: self.trace.clone(),
        }
    }
}
