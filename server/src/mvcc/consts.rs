//! etcd's protobuf enum values, which the generated types carry as raw `i32` fields.

/// `RangeRequest.SortOrder`.
pub mod sort_order {
    /// No sorting (keys come in ascending key order).
    pub const NONE: i32 = 0;
    /// Ascending.
    pub const ASCEND: i32 = 1;
    /// Descending.
    pub const DESCEND: i32 = 2;
}

/// `RangeRequest.SortTarget`.
pub mod sort_target {
    /// By key.
    pub const KEY: i32 = 0;
    /// By version.
    pub const VERSION: i32 = 1;
    /// By create revision.
    pub const CREATE: i32 = 2;
    /// By mod revision.
    pub const MOD: i32 = 3;
    /// By value.
    pub const VALUE: i32 = 4;
}

/// `Compare.CompareResult`.
pub mod compare_result {
    /// `==`.
    pub const EQUAL: i32 = 0;
    /// `>`.
    pub const GREATER: i32 = 1;
    /// `<`.
    pub const LESS: i32 = 2;
    /// `!=`.
    pub const NOT_EQUAL: i32 = 3;
}

/// `Compare.CompareTarget`.
pub mod compare_target {
    /// The key's version.
    pub const VERSION: i32 = 0;
    /// The key's create revision.
    pub const CREATE: i32 = 1;
    /// The key's mod revision.
    pub const MOD: i32 = 2;
    /// The key's value.
    pub const VALUE: i32 = 3;
    /// The key's lease.
    pub const LEASE: i32 = 4;
}

/// `mvccpb.Event.EventType`.
pub mod event_type {
    /// A put.
    pub const PUT: i32 = 0;
    /// A delete.
    pub const DELETE: i32 = 1;
}
