//! Membership changes through raft configuration changes (etcd's `applyConfChange`).
//!
//! Owns: applying a committed `ConfChange` entry to raft (every time raft delivers it, so
//! raft's configuration always follows its log), to the member table and `members` bucket
//! (once, guarded by the consistent index), and to the peer transport; a member that applies
//! its own removal stops.
//!
//! Must never: apply a change the replicated member table refuses (every member validates the
//! same way and skips it), or change raft's configuration outside an entry.

use super::apply::Applier;
use super::raft_node::{lock, RaftNode};
use super::request::{ApplyResult, OpResponse};
use super::{ProposeOutcome, ServerError};
use crate::config::url_host_port;
use crate::membership::{save_member, save_removed, MemberChange};
use raft::eraftpb::{ConfChange, ConfChangeType, Entry};
use std::collections::BTreeMap;
use tokio::sync::oneshot;

impl Applier {
    /// Applies a membership change to the member table; `None` if invalid (with the error).
    pub fn apply_membership(
        &self,
        change: &MemberChange,
        max_learners: usize,
        index: u64,
        term: u64,
    ) -> ApplyResult {
        let mut store = lock(&self.store);
        let mut cluster = lock(&self.cluster);
        let result = match cluster.validate_change(change, max_learners) {
            Err(e) => Err(e.to_status()),
            Ok(()) => {
                cluster.apply_change(change);
                match change {
                    MemberChange::Add(m) => save_member(store.backend_mut(), m),
                    MemberChange::Promote(id) => match cluster.member(*id) {
                        // etcd 19557: 3.5.1-3.5.19's backend save refuses an existing member
                        // and the error is ignored; only the v2 store learns the promotion.
                        Some(_) if self.release.drops_learner_promotion_in_backend() => {
                            tracing::debug!(member = %format!("{id:x}"), "member already exists; backend not updated");
                        }
                        Some(m) => save_member(store.backend_mut(), m),
                        None => {}
                    },
                    MemberChange::Remove(id) => save_removed(store.backend_mut(), *id),
                }
                Ok(OpResponse::Members(cluster.members.clone()))
            }
        };
        store.set_consistent_index(index, term);
        result
    }
}

impl RaftNode {
    /// A committed configuration change; true if this member was removed.
    pub(super) fn on_conf_change(
        &mut self,
        e: &Entry,
        waiters: &mut BTreeMap<u64, oneshot::Sender<ProposeOutcome>>,
    ) -> Result<bool, ServerError> {
        let cc: ConfChange = match protobuf::Message::parse_from_bytes(&e.data) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "undecodable conf change; skipping");
                self.applier.mark_applied(e.index, e.term)?;
                return Ok(false);
            }
        };
        let change: Option<MemberChange> = serde_json::from_slice(&cc.context).ok();
        let Some(change) = change else {
            tracing::error!(
                index = e.index,
                "conf change without a member change; skipping"
            );
            self.applier.mark_applied(e.index, e.term)?;
            return Ok(false);
        };
        let first_time = e.index > self.applied;
        let result = if first_time {
            self.applier
                .apply_membership(&change, self.settings.max_learners, e.index, e.term)
        } else {
            Ok(OpResponse::Members(Vec::new()))
        };
        // raft follows every change the member table accepted; one it refused is a no-op
        // everywhere (etcd sets NodeID = None for those). A change raft delivers again after a
        // restart was accepted then if the table had it; raft's configuration must see it too.
        let accepted = result.is_ok();
        if accepted {
            let cs = self.raw.apply_conf_change(&cc)?;
            self.raw.mut_store().mem.wl().set_conf_state(cs);
            self.update_transport(&change);
        }
        if let Some(w) = waiters.remove(&cc.id) {
            let _ = w.send(ProposeOutcome::Applied(result));
        }
        let me = self.raw.raft.id;
        let removed_self = accepted && matches!(change, MemberChange::Remove(id) if id == me);
        if accepted {
            tracing::info!(change = ?change_kind(&cc), node = %format!("{:x}", cc.node_id), "applied membership change");
        }
        Ok(removed_self)
    }

    fn update_transport(&mut self, change: &MemberChange) {
        let me = self.raw.raft.id;
        match change {
            MemberChange::Add(m) if m.id != me => {
                if let Some(addr) = m
                    .peer_urls
                    .first()
                    .and_then(|u| url_host_port("peer URL", u).ok())
                {
                    self.transport.add_peer(m.id, addr);
                }
            }
            MemberChange::Remove(id) => self.transport.remove_peer(*id),
            _ => {}
        }
    }
}

fn change_kind(cc: &ConfChange) -> &'static str {
    match cc.get_change_type() {
        ConfChangeType::AddNode => "add-node",
        ConfChangeType::AddLearnerNode => "add-learner",
        ConfChangeType::RemoveNode => "remove-node",
    }
}
