//! Simulated processes: a member's etcd process dying, being killed and restarted, restarted
//! as another release, frozen and thawed, and revived after it stopped on its own.
//!
//! Fault model:
//! - **Crash** (power loss or process kill, by [`CrashModel`]): the process stops at once; its
//!   disk keeps what the model lets survive of unsynced writes (torn prefix, page cache, ...).
//!   It sends nothing while dying (no FIN or RST); peers learn of it when they next send.
//! - **Restart**: the process is killed (its page cache survives: the kernel did not die) and
//!   the same software starts again on the same disk; after a crash it just starts.
//! - **Restart as a release** (`--emulate-release`): a rolling upgrade or downgrade step; the
//!   member keeps that release for every later start.
//! - **Pause / resume**: a SIGSTOP as seen from outside: the node's links (both directions)
//!   and its disk syncs freeze, so the raft loop blocks in its next fdatasync and nothing it
//!   sends arrives until it resumes; its timers still run.
//! - **Revive**: a member whose process ended on its own (a fatal storage error, a refused
//!   start) starts again on its disk; a running member is left alone.
//!
//! Guarantees: a restarted member gets the same disk and nothing else from its last life
//! (a new raft seed per incarnation, derived from the run's seed); the teardown's socket
//! closes reach no one, so the order of task drops (process-wide task ids) never shows in
//! the trace.
//!
//! Must never: give a member another member's disk, or let a member's death abort the run.

use crate::disk::CrashModel;
use crate::{SimError, Simulation};

impl Simulation {
    /// The member's process dies; its disk keeps what `model` lets survive.
    pub(crate) fn crash_process(&mut self, node: &str, model: CrashModel) -> Result<(), SimError> {
        let disk = self.disk(node)?;
        // Stale handles fail from here on, so nothing the dying tasks do on drop lands.
        disk.crash(model);
        self.links().resume(node);
        self.quiet_teardown(node, false);
        self.set_slot_down(node)
    }

    /// Kills (page cache kept) and restarts the member on its disk, or starts it after a crash.
    pub(crate) fn restart_process(&mut self, node: &str) -> Result<(), SimError> {
        let disk = self.disk(node)?;
        if self.turmoil().is_host_running(node) {
            disk.crash(CrashModel::KeepAll);
        }
        self.set_slot_down(node)?;
        self.links().resume(node);
        self.quiet_teardown(node, true);
        Ok(())
    }

    /// Restarts the member as `release` (validated with the server's own flag checks first).
    pub(crate) fn restart_process_as(&mut self, node: &str, release: &str) -> Result<(), SimError> {
        let member = self.member(node)?;
        let mut next = member.config.borrow().clone();
        next.emulate_release = release.to_string();
        next.release().map_err(|e| SimError::Flags {
            member: node.to_string(),
            message: e.to_string(),
        })?;
        *member.config.borrow_mut() = next;
        self.restart_process(node)
    }

    /// Freezes the node's links and disk syncs.
    pub(crate) fn pause_process(&mut self, node: &str) {
        self.links().pause(node);
        if let Ok(d) = self.disk(node) {
            d.pause();
        }
    }

    /// Undoes [`Simulation::pause_process`].
    pub(crate) fn resume_process(&mut self, node: &str) {
        self.links().resume(node);
        if let Ok(d) = self.disk(node) {
            d.resume();
        }
    }

    /// Restarts the member if its process ended on its own.
    pub(crate) fn revive_process(&mut self, node: &str) -> Result<(), SimError> {
        if self.exit_reason(node).is_some() {
            self.restart_process(node)?;
        }
        Ok(())
    }

    /// Crashes (or, with `restart`, kills and restarts) a member's host so that nothing it
    /// sends while dying reaches anyone. Its sockets are closed by task drops, whose order
    /// follows tokio's process-wide task ids (the current-thread runtime shards its task list
    /// by id), so FIN/RST segments sent during the teardown would reach peers in an order that
    /// depends on what else ran in the process. Cutting the host's links during the teardown
    /// drops them all: peers learn of the death when they next send (RST), as after a power
    /// loss. In-flight segments on those links are lost too.
    pub(crate) fn quiet_teardown(&mut self, node: &str, restart: bool) {
        let others: Vec<String> = self
            .members
            .iter()
            .map(|m| m.name.clone())
            .chain(self.clients.keys().cloned())
            .filter(|h| h != node)
            .collect();
        for o in &others {
            self.sim.partition(node, o.as_str());
        }
        if restart {
            self.sim.bounce(node);
        } else {
            self.sim.crash(node);
        }
        for o in &others {
            self.sim.repair(node, o.as_str());
        }
    }

    /// Forgets the member's running server (keeping its leader-change count).
    pub(crate) fn set_slot_down(&self, name: &str) -> Result<(), SimError> {
        self.member(name)?.slot.borrow_mut().retire_server();
        Ok(())
    }
}
