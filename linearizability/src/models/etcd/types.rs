//! Request and response types of the etcd model (serde), independent of any server crate.
//!
//! Owns: the vocabulary histories of etcd operations are written in. Must never contain
//! semantics (see `apply`) nor depend on the server crate or etcd client types.

use serde::{Deserialize, Serialize};

/// A key range: `key` alone (`range_end == None`), `[key, range_end)`, or every key `>= key`
/// when `range_end == Some("\0")` (etcd's convention).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct KeyRange {
    /// First key.
    pub key: String,
    /// End of the range (exclusive), see the type's documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
}

impl KeyRange {
    /// A single key.
    pub fn key(key: impl Into<String>) -> Self {
        KeyRange {
            key: key.into(),
            range_end: None,
        }
    }

    /// `[key, end)`.
    pub fn range(key: impl Into<String>, end: impl Into<String>) -> Self {
        KeyRange {
            key: key.into(),
            range_end: Some(end.into()),
        }
    }

    /// Whether `k` is in the range.
    pub fn contains(&self, k: &str) -> bool {
        match &self.range_end {
            None => k == self.key,
            Some(end) if end == "\0" => k >= self.key.as_str(),
            Some(end) => k >= self.key.as_str() && k < end.as_str(),
        }
    }
}

/// A Range request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct RangeRequest {
    /// The keys.
    #[serde(flatten)]
    pub range: KeyRange,
    /// Read at this revision (0 = latest).
    #[serde(default)]
    pub revision: i64,
    /// Maximum number of keys returned (0 = no limit).
    #[serde(default)]
    pub limit: i64,
    /// Return only the count.
    #[serde(default)]
    pub count_only: bool,
    /// Return keys without values.
    #[serde(default)]
    pub keys_only: bool,
}

/// A Put request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct PutRequest {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Attach to this lease (0 = none).
    #[serde(default)]
    pub lease: i64,
    /// Return the previous key-value.
    #[serde(default)]
    pub prev_kv: bool,
}

/// A DeleteRange request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct DeleteRangeRequest {
    /// The keys.
    #[serde(flatten)]
    pub range: KeyRange,
    /// Return the deleted key-values.
    #[serde(default)]
    pub prev_kv: bool,
}

/// What a compare looks at, with the operand.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    /// The value (a missing key never compares equal to a value... except by `NotEqual`).
    Value(String),
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    Create(i64),
    /// The mod revision (0 for a missing key).
    Mod(i64),
    /// The lease (0 for none or a missing key).
    Lease(i64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// A Txn guard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key (etcd also allows ranges: all keys in the range must satisfy the compare).
    #[serde(flatten)]
    pub range: KeyRange,
    /// The operator.
    pub op: CompareOp,
    /// The target and operand.
    pub target: CompareTarget,
}

/// An operation inside a Txn.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOp {
    /// A Range.
    Range(RangeRequest),
    /// A Put.
    Put(PutRequest),
    /// A DeleteRange.
    DeleteRange(DeleteRangeRequest),
    /// A nested Txn.
    Txn(TxnRequest),
}

/// A Txn request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct TxnRequest {
    /// Guards, all of which must hold for `success` to run.
    #[serde(default)]
    pub compare: Vec<Compare>,
    /// Run if every compare holds.
    #[serde(default)]
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    #[serde(default)]
    pub failure: Vec<RequestOp>,
}

/// A request to etcd (or a spontaneous event, for `LeaseExpire`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdRequest {
    /// Read keys.
    Range(RangeRequest),
    /// Write a key.
    Put(PutRequest),
    /// Delete keys.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Create a lease with a chosen id.
    LeaseGrant {
        /// Lease id (non-zero).
        id: i64,
        /// Time to live, seconds.
        ttl: i64,
    },
    /// Revoke a lease, deleting its keys.
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// A lease expiring on its own; record it as an unknown-outcome operation whose call time
    /// is when the TTL ran out (it may or may not have happened since).
    LeaseExpire {
        /// Lease id.
        id: i64,
    },
    /// Compact the key history up to a revision.
    Compact {
        /// The revision.
        revision: i64,
    },
}

/// A key-value pair with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value (empty with `keys_only`).
    pub value: String,
    /// Revision of the key's creation.
    pub create_revision: i64,
    /// Revision of the last modification.
    pub mod_revision: i64,
    /// Number of modifications since creation.
    pub version: i64,
    /// Attached lease (0 = none).
    #[serde(default)]
    pub lease: i64,
}

/// The body of a Range response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct RangeResult {
    /// The key-values (sorted by key, at most `limit`).
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range (ignoring `limit`).
    pub count: i64,
    /// Whether `limit` left keys out.
    #[serde(default)]
    pub more: bool,
}

/// The result of one (possibly nested) operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpResult {
    /// Range.
    Range(RangeResult),
    /// Put, with the previous key-value if asked for and present.
    Put {
        /// The previous key-value.
        #[serde(default)]
        prev_kv: Option<KeyValue>,
    },
    /// DeleteRange.
    DeleteRange {
        /// Number of keys deleted.
        deleted: i64,
        /// The deleted key-values if asked for.
        #[serde(default)]
        prev_kvs: Vec<KeyValue>,
    },
    /// Txn.
    Txn {
        /// Whether the compares held.
        succeeded: bool,
        /// Results of the executed branch.
        responses: Vec<OpResult>,
    },
    /// LeaseGrant.
    LeaseGrant {
        /// Lease id.
        id: i64,
        /// TTL granted.
        ttl: i64,
    },
    /// LeaseRevoke.
    LeaseRevoke,
    /// Compact.
    Compact,
}

/// A definite error: the request did not take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdError {
    /// The requested revision has been compacted.
    Compacted,
    /// The requested revision is in the future.
    FutureRevision,
    /// The lease does not exist.
    LeaseNotFound,
    /// A lease with that id already exists.
    LeaseExists,
}

/// A response from etcd.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdResponse {
    /// Success, with the header revision.
    Ok {
        /// Header revision.
        revision: i64,
        /// The body.
        result: OpResult,
    },
    /// A definite error.
    Error(EtcdError),
}
