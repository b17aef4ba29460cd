//! The cluster a run drives, in either world: the simulation, or member processes on
//! loopback (`crate::real`). One harness (workloads, recorder, nemesis, checks, report) runs
//! on both; this trait is everything it asks of a world.
//!
//! Owns: the [`Cluster`] trait and its implementation for [`Simulation`], which forwards one
//! to one (the same futures created in the same order, so trace hashes do not depend on this
//! seam).
//!
//! Must never: let the world move outside [`Cluster::step`], or hide a fault a world cannot
//! apply (it is an error naming the fault, never a silent no-op).

use etcd_server::etcdserver::version::Versions;
use rand_chacha::ChaCha8Rng;
use sim::{ClientCtx, Fault, Simulation};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The body of a client host: given its context, a future the world runs to completion.
pub type HostFn = Box<dyn FnOnce(ClientCtx) -> Pin<Box<dyn Future<Output = ()>>>>;

/// Wraps a host body for [`Cluster::spawn_host`].
pub fn host<F, Fut>(f: F) -> HostFn
where
    F: FnOnce(ClientCtx) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Box::new(move |cx| Box::pin(f(cx)))
}

/// A member's key-space hash at a revision (etcd's Maintenance.HashKV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    /// The hash.
    pub hash: u32,
    /// The member's compaction revision when it hashed.
    pub compact_revision: i64,
}

/// One entry of a member's member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// Its name (empty for a member added but not started).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// What the harness needs from a cluster. Time only moves inside [`Cluster::step`]; every
/// other method observes or changes the world at the current instant.
pub trait Cluster {
    /// `sim` or `real`, for messages.
    fn world(&self) -> &'static str;
    /// The run's seed.
    fn seed(&self) -> u64;
    /// A fresh copy of the seeded stream for `concern`.
    fn rng(&self, concern: &str) -> ChaCha8Rng;
    /// Time since the start (simulated, or wall time in real mode).
    fn elapsed(&self) -> Duration;
    /// Moves the world on by one step (1 ms simulated, a few ms of wall time in real mode).
    fn step(&mut self) -> anyhow::Result<()>;

    /// Member names in order, retired ones included.
    fn member_names(&self) -> Vec<String>;
    /// Members not retired, in order.
    fn active_members(&self) -> Vec<String>;
    /// The member that believes it leads with the highest term.
    fn leader(&self) -> Option<String>;
    /// The leader, if every running member agrees on it.
    fn stable_leader(&self) -> Option<String>;
    /// The raft term member `m` is in, if it answers.
    fn term(&self, m: &str) -> Option<u64>;

    /// Starts client host `name`; it runs from the next step.
    fn spawn_host(&mut self, name: &str, f: HostFn) -> anyhow::Result<()>;
    /// Whether host `name` has finished.
    fn host_done(&self, name: &str) -> bool;

    /// Applies `fault` now (an error if this world cannot).
    fn apply(&mut self, fault: Fault) -> anyhow::Result<()>;
    /// Whether bytes from `from` to `to` are blocked now.
    fn is_blocked(&self, from: &str, to: &str) -> bool;
    /// The etcd release member `m` runs as, where the world knows it.
    fn release_of(&self, m: &str) -> Option<String>;
    /// Bytes member `m`'s disk holds, where the world can tell.
    fn disk_used(&self, m: &str) -> Option<u64>;
    /// Starts a new member `name` joining the running cluster with extra `flags`.
    fn add_member(&mut self, name: &str, flags: &[String]) -> anyhow::Result<()>;
    /// Stops member `name` for good (it was removed from the cluster).
    fn retire_member(&mut self, name: &str) -> anyhow::Result<()>;

    /// Member `m`'s newest revision, if it answers.
    fn revision(&mut self, m: &str) -> Option<i64>;
    /// Member `m`'s key-space hash at `rev`, if it answers.
    fn hash_kv(&mut self, m: &str, rev: i64) -> Option<KvHash>;
    /// Member `m`'s versions, or why it is down.
    fn versions(&mut self, m: &str) -> Result<Versions, String>;
    /// Member `m`'s member list, if it answers.
    fn member_list(&mut self, m: &str) -> Option<Vec<ListedMember>>;
    /// `etcd_server_leader_changes_seen_total` of member `m` over its incarnations.
    fn leader_changes_seen(&mut self, m: &str) -> u64;
    /// Every member's WAL fsync histogram that it answers (counts per bucket of etcd's
    /// `FSYNC_BUCKETS`, last = +Inf).
    fn wal_fsync_histograms(&mut self) -> Vec<Vec<u64>>;

    /// The run's log as JSON lines (the simulation's trace; the members' logs in real mode).
    fn log_jsonl(&self) -> String;
    /// Log lines with message `msg`.
    fn log_count(&self, msg: &str) -> u64;
    /// Lines of the log.
    fn log_lines(&self) -> u64;
    /// The trace hash (equal seeds, equal hashes); real mode has none and says so.
    fn trace_hash(&self) -> String;
    /// The member binary, in real mode.
    fn real_run(&self) -> Option<crate::report::RealRun> {
        None
    }
    /// The simulation, for what only it can do (the disk-latency sweep's histograms).
    fn as_sim(&mut self) -> Option<&mut Simulation>;
}

impl Cluster for Simulation {
    fn world(&self) -> &'static str {
        "sim"
    }
    fn seed(&self) -> u64 {
        Simulation::seed(self)
    }
    fn rng(&self, concern: &str) -> ChaCha8Rng {
        Simulation::rng(self, concern)
    }
    fn elapsed(&self) -> Duration {
        Simulation::elapsed(self)
    }
    fn step(&mut self) -> anyhow::Result<()> {
        Ok(Simulation::step(self)?)
    }
    fn member_names(&self) -> Vec<String> {
        Simulation::member_names(self)
    }
    fn active_members(&self) -> Vec<String> {
        Simulation::active_members(self)
    }
    fn leader(&self) -> Option<String> {
        Simulation::leader(self)
    }
    fn stable_leader(&self) -> Option<String> {
        Simulation::stable_leader(self)
    }
    fn term(&self, m: &str) -> Option<u64> {
        self.status(m).map(|st| st.term)
    }
    fn spawn_host(&mut self, name: &str, f: HostFn) -> anyhow::Result<()> {
        Ok(self.client(name, f)?)
    }
    fn host_done(&self, name: &str) -> bool {
        self.client_done(name)
    }
    fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        Ok(Simulation::apply(self, fault)?)
    }
    fn is_blocked(&self, from: &str, to: &str) -> bool {
        self.links().is_blocked(from, to)
    }
    fn release_of(&self, m: &str) -> Option<String> {
        Simulation::release_of(self, m)
    }
    fn disk_used(&self, m: &str) -> Option<u64> {
        self.disk(m).ok().map(|d| d.used())
    }
    fn add_member(&mut self, name: &str, flags: &[String]) -> anyhow::Result<()> {
        Ok(Simulation::add_member(self, name, flags)?)
    }
    fn retire_member(&mut self, name: &str) -> anyhow::Result<()> {
        Ok(Simulation::retire_member(self, name)?)
    }
    fn revision(&mut self, m: &str) -> Option<i64> {
        self.server(m).map(|srv| srv.store().current_revision())
    }
    fn hash_kv(&mut self, m: &str, rev: i64) -> Option<KvHash> {
        let (h, _) = self.server(m)?.store().hash_by_rev(rev).ok()?;
        Some(KvHash {
            hash: h.hash,
            compact_revision: h.compact_revision,
        })
    }
    fn versions(&mut self, m: &str) -> Result<Versions, String> {
        match self.server(m) {
            Some(srv) => Ok(srv.versions()),
            None => Err(self.exit_reason(m).unwrap_or_else(|| "starting".into())),
        }
    }
    fn member_list(&mut self, m: &str) -> Option<Vec<ListedMember>> {
        let cluster = self.server(m)?.cluster();
        Some(
            cluster
                .members
                .iter()
                .map(|x| ListedMember {
                    name: x.name.clone(),
                    peer_urls: x.peer_urls.clone(),
                    is_learner: x.is_learner,
                })
                .collect(),
        )
    }
    fn leader_changes_seen(&mut self, m: &str) -> u64 {
        self.leader_changes(m)
    }
    fn wal_fsync_histograms(&mut self) -> Vec<Vec<u64>> {
        crate::driver::member_fsync_histograms(self)
    }
    fn log_jsonl(&self) -> String {
        self.trace().to_jsonl()
    }
    fn log_count(&self, msg: &str) -> u64 {
        self.trace().lines_with_msg(msg).len() as u64
    }
    fn log_lines(&self) -> u64 {
        self.trace().len()
    }
    fn trace_hash(&self) -> String {
        Simulation::trace_hash(self)
    }
    fn as_sim(&mut self) -> Option<&mut Simulation> {
        Some(self)
    }
}
