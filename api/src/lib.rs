//! etcd's v3 API as Rust types, gRPC clients and server traits, laid out as etcd's
//! `go.etcd.io/etcd/api/v3` packages are (`etcdserverpb`, `mvccpb`, `authpb`), plus
//! our peer transport (`rafthttp`) and a small native [`client`].
//!
//! Owns: the code prost and tonic generate from `api/proto/` (etcd's proto files as
//! etcd-client 0.21 ships them, gogoproto options stripped; field numbers are etcd's), checked
//! in under `src/generated/` so that building needs no `protoc`.
//!
//! Must never: be edited by hand under `src/generated/`. Change a proto, then run
//! `bash ci/regen-api.sh`; `.ci/run` fails when the checked-in code is not what the protos
//! generate.

/// Authentication types (`authpb`: users, roles, permissions).
#[allow(clippy::all)]
pub mod authpb {
    include!("generated/authpb.rs");
}

/// Key-value and event types (`mvccpb`).
#[allow(clippy::all)]
pub mod mvccpb {
    include!("generated/mvccpb.rs");
}

/// The v3 gRPC API: requests, responses, clients and server traits (`etcdserverpb`).
#[allow(clippy::all)]
pub mod etcdserverpb {
    include!("generated/etcdserverpb.rs");
}

/// Our peer transport: batches of raft messages between members (etcd's rafthttp, over gRPC).
#[allow(clippy::all)]
pub mod rafthttp {
    include!("generated/etcdsim.rafthttp.rs");
}

pub mod client;

/// The descriptors of etcd's v3 API protos and their imports (`google.api.http` annotations,
/// the routes of etcd's grpc-gateway, included), encoded as a `FileDescriptorSet` without
/// source info. For code that reads messages or routes by name, as a JSON gateway does.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("generated/etcd_api.fds.bin");
