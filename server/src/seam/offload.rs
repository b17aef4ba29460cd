//! Running blocking work off the caller's thread: in real mode the backend's batch commit
//! (redb, two fdatasyncs) runs on its own thread, as etcd's backend commits in its own
//! goroutine, so the raft loop keeps serving while it syncs.
//!
//! Owns: the [`Offload`] trait. The real implementation lives in `real.rs`; the simulator
//! provides none (the server then runs the work inline, so a run stays deterministic).
//!
//! Must never: be given work that needs the caller's locks (the job runs concurrently).

use std::fmt::Debug;

/// A place to run blocking jobs concurrently with the caller.
pub trait Offload: Send + Sync + Debug + 'static {
    /// Runs `job` concurrently (or, if that is impossible, before returning).
    fn run(&self, job: Box<dyn FnOnce() + Send + 'static>);
}
