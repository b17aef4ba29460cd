//! Linearizability checking for etcd-sim: history types, a Wing–Gong/Lowe checker with
//! P-compositionality, nondeterministic models and a deadline, models (register, key-value map,
//! etcd), parsers for Jepsen/porcupine logs and our JSON format, an HTML view, and the library
//! side of the `etcd-sim check` / `bench-check` commands.
//!
//! Owns: deciding whether a recorded history is linearizable and explaining why not. Must never
//! depend on the server or simulator crates, and must never read the wall clock in checking
//! logic except for the caller's deadline.

pub mod checker;
pub mod cli;
pub mod fxhash;
pub mod history;
pub mod html;
pub mod model;
pub mod models;
pub mod parse;
pub mod run;
pub mod synth;
pub mod watch;

pub use checker::{
    check, check_with, CheckOptions, CheckReport, CheckResult, Counterexample, LinStep,
    PartitionReport, SearchStats, StopReason, Undecided, Verdict, DEFAULT_CACHE_LIMIT_BYTES,
    DEFAULT_STEP_BUDGET,
};
pub use history::{FaultWindow, HistoryError, Operation};
pub use model::Model;
