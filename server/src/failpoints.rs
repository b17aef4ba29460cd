//! Test failpoints, like the gofail ones etcd's robustness tests compile in: places in the
//! server a test harness can hold up, to open a window that real timing opens rarely.
//!
//! Owns: each failpoint's state and the way code waits on it. `watch-send`: while set, every
//! watch stream of the member stops sending responses (etcd's `beforeSendWatchResponse`
//! failpoint with a sleep): its queue from the watch registry fills, and its watchers fall
//! back to catching up from the history, as a watch stream whose client reads slowly does.
//! `compact-before-set-finished`: armed, the member stops at its next compaction, after the
//! compaction's deletions and before its finished mark is committed (etcd's
//! `compactBeforeSetFinishedCompact` gofail failpoint with `panic`), as a process killed
//! mid-compaction does.
//!
//! Must never: be reachable from a flag, an API or a peer. Only the simulator sets failpoints
//! (on the member's [`crate::etcdserver::EtcdServer`]); every failpoint is off when a member
//! starts.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// A member's failpoints.
#[derive(Debug)]
pub struct Failpoints {
    watch_send_stalled: watch::Sender<bool>,
    compact_crash_armed: AtomicBool,
}

impl Default for Failpoints {
    fn default() -> Self {
        Failpoints {
            watch_send_stalled: watch::Sender::new(false),
            compact_crash_armed: AtomicBool::new(false),
        }
    }
}

impl Failpoints {
    /// Holds up (`true`) or releases every watch stream's sending.
    pub fn stall_watch_sends(&self, stalled: bool) {
        self.watch_send_stalled.send_replace(stalled);
    }

    /// Follows the watch-send failpoint: `true` while streams must not send.
    pub(crate) fn watch_sends(&self) -> watch::Receiver<bool> {
        self.watch_send_stalled.subscribe()
    }

    /// Arms (`true`) or disarms the `compact-before-set-finished` failpoint: armed, the
    /// member's next compaction stops it (once; a restarted member starts disarmed).
    pub fn crash_in_compaction(&self, armed: bool) {
        self.compact_crash_armed.store(armed, Ordering::SeqCst);
    }

    /// Whether a compaction just applied must stop the member; disarms the failpoint.
    pub(crate) fn fire_compact_before_set_finished(&self) -> bool {
        self.compact_crash_armed.swap(false, Ordering::SeqCst)
    }
}
