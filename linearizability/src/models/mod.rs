//! Sequential specifications: a register, a key-value map and etcd.
//!
//! Owns: model semantics. Must never contain search logic or parsing of log formats.

pub mod etcd;
mod initial_value;
pub mod kv;
pub mod register;
