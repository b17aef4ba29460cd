//! The seam between the server and the world it runs in.
//!
//! Owns the three traits through which the server reaches the outside: [`Disk`] (files and
//! fsync), [`Network`] (listeners and connections) and the RNG the caller hands in. The real-mode
//! implementations live in [`real`]; the simulator (`sim` crate) provides its own.
//!
//! Must never: let server code outside `real` call `std::fs`, `tokio::net`, the wall clock or an
//! unseeded RNG (`clippy.toml` enforces this). Time comes from `tokio::time` only, which the
//! simulator controls.

pub mod clock;
pub mod disk;
pub mod net;
pub mod offload;
pub mod real;

pub use clock::{Clock, TokioClock};
pub use disk::{Disk, DiskFile, OpenMode};
pub use net::{http_get, http_request, BoxIo, NetListener, Network};
pub use offload::Offload;

use std::sync::Arc;

/// Everything a server instance needs from its world, cloned into every task that needs it.
#[derive(Clone, Debug)]
pub struct World {
    /// The disk the data dir lives on.
    pub disk: Arc<dyn Disk>,
    /// Client and peer networking.
    pub net: Arc<dyn Network>,
    /// Seed for the server's own randomness (election timeouts, request ids).
    pub seed: u64,
    /// The clock lease expiry is measured on.
    pub clock: Arc<dyn Clock>,
    /// Where blocking work runs concurrently (`None`: inline, as in the simulator).
    pub offload: Option<Arc<dyn Offload>>,
}

impl World {
    /// The real world: std files with real fdatasync, tokio TCP, a seed from the caller.
    pub fn real(seed: u64) -> Self {
        World {
            disk: Arc::new(real::RealDisk),
            net: Arc::new(real::RealNetwork),
            seed,
            clock: Arc::new(TokioClock),
            offload: Some(Arc::new(real::ThreadOffload::new())),
        }
    }
}
