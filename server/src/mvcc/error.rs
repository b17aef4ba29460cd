//! MVCC errors and their gRPC statuses, with etcd's exact codes and messages.

use crate::backend::BackendError;

/// etcd's client-visible error messages (`api/v3rpc/rpctypes`).
pub mod messages {
    /// `ErrGRPCCompacted` (OutOfRange).
    pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    /// `ErrGRPCFutureRev` (OutOfRange).
    pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
    /// `ErrGRPCKeyNotFound` (InvalidArgument).
    pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
    /// `ErrGRPCValueProvided` (InvalidArgument).
    pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
    /// `ErrGRPCLeaseProvided` (InvalidArgument).
    pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
    /// `ErrGRPCLeaseNotFound` (NotFound).
    pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
    /// `ErrGRPCEmptyKey` (InvalidArgument).
    pub const EMPTY_KEY: &str = "etcdserver: key is not provided";
    /// `ErrGRPCInvalidSortOption` (InvalidArgument).
    pub const INVALID_SORT_OPTION: &str = "etcdserver: invalid sort option";
    /// `ErrGRPCTooManyOps` (InvalidArgument).
    pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
    /// `ErrGRPCDuplicateKey` (InvalidArgument).
    pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
}

/// A failed MVCC operation. Request errors leave the store unchanged (a failing txn applies
/// none of its ops and does not bump the revision).
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// The requested revision has been compacted away.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// The put's lease does not exist (only with a lease checker installed).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// Sort order or target outside etcd's enums.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// An invariant of the store does not hold (a bug, reported instead of panicking).
    #[error("mvcc: internal error: {0}")]
    Internal(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A record of the `key` bucket cannot be decoded.
    #[error("mvcc: corrupt record in the key bucket at {key:02x?}: {detail}")]
    Corrupt {
        /// The bucket key of the record.
        key: Vec<u8>,
        /// What is wrong.
        detail: String,
    },
}

impl MvccError {
    /// The gRPC status etcd would return for this error.
    pub fn to_status(&self) -> tonic::Status {
        use tonic::Status;
        match self {
            MvccError::Compacted => Status::out_of_range(messages::COMPACTED),
            MvccError::FutureRev => Status::out_of_range(messages::FUTURE_REV),
            MvccError::KeyNotFound => Status::invalid_argument(messages::KEY_NOT_FOUND),
            MvccError::ValueProvided => Status::invalid_argument(messages::VALUE_PROVIDED),
            MvccError::LeaseProvided => Status::invalid_argument(messages::LEASE_PROVIDED),
            MvccError::LeaseNotFound => Status::not_found(messages::LEASE_NOT_FOUND),
            MvccError::InvalidSortOption => Status::invalid_argument(messages::INVALID_SORT_OPTION),
            MvccError::Backend(e @ BackendError::Io { .. }) => {
                Status::unavailable(format!("etcdserver: backend: {e}"))
            }
            MvccError::Backend(e) => Status::internal(format!("etcdserver: backend: {e}")),
            MvccError::Corrupt { .. } | MvccError::Internal(_) => {
                Status::internal(format!("etcdserver: {self}"))
            }
        }
    }

    pub(crate) fn corrupt(key: &[u8], detail: impl Into<String>) -> Self {
        MvccError::Corrupt {
            key: key.to_vec(),
            detail: detail.into(),
        }
    }
}
