//! Configuration changes as raft 0.7 handles them: both message versions seen as a V2 change,
//! whether a V2 change enters or leaves a joint configuration, and configuration-state
//! equality that ignores the order of member ids.
//!
//! Must never: reorder or drop the changes of a request, or treat two configurations with
//! different `auto_leave` as equal.

use crate::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};
use std::borrow::Cow;

/// One member change: `node_id` added as a voter, added as a learner, or removed.
pub fn new_conf_change_single(node_id: u64, change_type: ConfChangeType) -> ConfChangeSingle {
    let mut single = ConfChangeSingle {
        node_id,
        ..Default::default()
    };
    single.set_change_type(change_type);
    single
}

/// A configuration change in either wire version (`ConfChange` or `ConfChangeV2`).
pub trait ConfChangeI {
    /// The change as a V2 change (a V1 change becomes one single change, context kept).
    fn into_v2(self) -> ConfChangeV2;

    /// The change as a V2 change, borrowed when it already is one.
    fn as_v2(&self) -> Cow<'_, ConfChangeV2>;

    /// The V1 message, when this is one.
    fn as_v1(&self) -> Option<&ConfChange>;
}

impl ConfChangeI for ConfChange {
    fn into_v2(mut self) -> ConfChangeV2 {
        let mut v2 = ConfChangeV2::default();
        v2.mut_changes()
            .push(new_conf_change_single(self.node_id, self.get_change_type()));
        v2.set_context(self.take_context());
        v2
    }

    fn as_v2(&self) -> Cow<'_, ConfChangeV2> {
        Cow::Owned(self.clone().into_v2())
    }

    fn as_v1(&self) -> Option<&ConfChange> {
        Some(self)
    }
}

impl ConfChangeI for ConfChangeV2 {
    fn into_v2(self) -> ConfChangeV2 {
        self
    }

    fn as_v2(&self) -> Cow<'_, ConfChangeV2> {
        Cow::Borrowed(self)
    }

    fn as_v1(&self) -> Option<&ConfChange> {
        None
    }
}

impl ConfChangeV2 {
    /// Whether applying this change enters a joint configuration, and if so whether raft
    /// leaves it by itself (`Some(true)`) or waits for an explicit empty change
    /// (`Some(false)`). `None`: a single change with the automatic transition, applied
    /// directly without a joint phase.
    pub fn enter_joint(&self) -> Option<bool> {
        let transition = self.get_transition();
        let direct = transition == ConfChangeTransition::Auto && self.changes.len() <= 1;
        if direct {
            return None;
        }
        Some(transition != ConfChangeTransition::Explicit)
    }

    /// Whether this is the empty change that leaves a joint configuration.
    pub fn leave_joint(&self) -> bool {
        self.get_transition() == ConfChangeTransition::Auto && self.changes.is_empty()
    }
}

/// The same ids, in any order (and any multiplicity).
fn same_ids(a: &[u64], b: &[u64]) -> bool {
    a.iter().all(|id| b.contains(id)) && b.iter().all(|id| a.contains(id))
}

/// Whether two configuration states name the same voters, learners, outgoing voters and next
/// learners (each in any order) and agree on `auto_leave`.
#[must_use]
pub fn conf_state_eq(a: &ConfState, b: &ConfState) -> bool {
    a.auto_leave == b.auto_leave
        && same_ids(a.get_voters(), b.get_voters())
        && same_ids(a.get_learners(), b.get_learners())
        && same_ids(a.get_voters_outgoing(), b.get_voters_outgoing())
        && same_ids(a.get_learners_next(), b.get_learners_next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf_state(voters: &[u64], learners: &[u64], auto_leave: bool) -> ConfState {
        let mut cs = ConfState::default();
        cs.set_voters(voters.to_vec());
        cs.set_learners(learners.to_vec());
        cs.auto_leave = auto_leave;
        cs
    }

    #[test]
    fn conf_states_are_equal_in_any_order_but_not_across_roles_or_auto_leave() {
        assert!(conf_state_eq(
            &conf_state(&[1, 2, 3], &[4], false),
            &conf_state(&[3, 1, 2], &[4], false)
        ));
        assert!(!conf_state_eq(
            &conf_state(&[1, 2], &[3], false),
            &conf_state(&[1, 2, 3], &[], false)
        ));
        assert!(!conf_state_eq(
            &conf_state(&[1], &[], false),
            &conf_state(&[1], &[], true)
        ));
    }

    #[test]
    fn a_v1_change_becomes_one_single_change_with_its_context() {
        let mut v1 = ConfChange {
            node_id: 7,
            ..Default::default()
        };
        v1.set_change_type(ConfChangeType::AddLearnerNode);
        v1.set_context(b"ctx".to_vec().into());
        let v2 = v1.as_v2().into_owned();
        assert_eq!(v2.changes.len(), 1);
        assert_eq!(v2.changes[0].node_id, 7);
        assert_eq!(
            v2.changes[0].get_change_type(),
            ConfChangeType::AddLearnerNode
        );
        assert_eq!(&v2.context[..], b"ctx");
        assert!(v1.as_v1().is_some() && v2.as_v1().is_none());
    }

    #[test]
    fn joint_transitions_follow_raft() {
        let single = |t| {
            let mut cc = ConfChangeV2::default();
            cc.set_transition(t);
            cc.mut_changes()
                .push(new_conf_change_single(2, ConfChangeType::AddNode));
            cc
        };
        assert_eq!(single(ConfChangeTransition::Auto).enter_joint(), None);
        assert_eq!(
            single(ConfChangeTransition::Implicit).enter_joint(),
            Some(true)
        );
        assert_eq!(
            single(ConfChangeTransition::Explicit).enter_joint(),
            Some(false)
        );
        let mut two = single(ConfChangeTransition::Auto);
        two.mut_changes()
            .push(new_conf_change_single(3, ConfChangeType::AddNode));
        assert_eq!(two.enter_joint(), Some(true));
        assert!(ConfChangeV2::default().leave_joint());
        assert!(!two.leave_joint());
    }
}
