//! raft-rs's wire types (`eraftpb`: entries, messages, snapshots, configuration changes) and the
//! few helpers raft 0.7 expects beside them, in place of crates.io's `raft-proto` 0.7.0.
//!
//! Owns: the rust-protobuf 2 code generated from `proto/eraftpb.proto` (checked in under
//! `src/generated/`, so that no build script runs protoc) and the configuration-change helpers
//! raft calls: [`ConfChangeI`], [`new_conf_change_single`], [`conf_state_eq`], and the joint-
//! consensus queries on `ConfChangeV2`.
//!
//! Must never: be edited by hand under `src/generated/` (`bash ci/regen-api.sh` writes it and
//! `.ci/run` checks it), or change the wire format: field numbers and types are raft-rs's.

#[cfg(feature = "prost-codec")]
compile_error!("this raft-proto carries the rust-protobuf (protobuf-codec) types only");

/// The generated protocol types.
#[allow(warnings, clippy::all)] // generated code, as rust-protobuf 2.28 writes it
#[rustfmt::skip]
#[path = "generated/eraftpb.rs"]
pub mod eraftpb;

mod confchange;

pub use confchange::{conf_state_eq, new_conf_change_single, ConfChangeI};

/// The types raft's own prelude re-exports.
pub mod prelude {
    pub use crate::eraftpb::{
        ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2,
        ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
    };
}

impl eraftpb::Snapshot {
    /// A snapshot at index 0 carries nothing (raft's "empty snapshot").
    pub fn is_empty(&self) -> bool {
        self.get_metadata().index == 0
    }
}
