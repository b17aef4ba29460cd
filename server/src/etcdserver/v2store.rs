//! The membership a 3.5 release keeps in its v2 store, and what each release does with it at
//! start-up: etcd issue 19557.
//!
//! In etcd 3.5 the v2 store (the `.snap` file's store plus the WAL's configuration changes
//! replayed on top) is where membership lives; the backend's `members` bucket is a copy. 3.6
//! reads membership from the backend. 3.5.1–3.5.19 promote a learner in the v2 store only (the
//! backend save refuses to overwrite an existing member), so after an upgrade 3.6.0-rc.0..rc.2
//! read promoted voters back as learners and refuse to start (`membership: too many learner
//! members in cluster`); 3.6.0-rc.3 and later promote them back at bootstrap
//! (`SyncLearnerPromotionIfNeeded`).
//!
//! Owns: rebuilding the v2 view from the raft snapshot's configuration and the committed
//! configuration changes after it (our snapshots carry the configuration, not a v2 store
//! dump, which names the same roles), and reconciling the backend's members with it per
//! release.
//!
//! Must never: write the backend on a 3.5 release (the v2 store is its truth; the backend
//! copy stays as the release left it), or repair on a release that does not.

use super::version::Release;
use crate::backend::Backend;
use crate::membership::{save_member, Member, MemberChange};
use raft::eraftpb::{ConfChange, ConfState, Entry, EntryType};
use std::collections::BTreeMap;

/// Member id → whether the v2 store holds it as a learner.
pub type Roles = BTreeMap<u64, bool>;

/// The roles the v2 store holds after replay: `base` (the snapshot's configuration, or the
/// initial members when there is no snapshot), then every configuration change up to `commit`.
pub fn replay_roles(base: Roles, entries: &[Entry], commit: u64) -> Roles {
    let mut roles = base;
    for e in entries.iter().filter(|e| e.index <= commit) {
        if e.get_entry_type() != EntryType::EntryConfChange {
            continue;
        }
        let Ok(cc) = <ConfChange as protobuf::Message>::parse_from_bytes(&e.data) else {
            continue;
        };
        match serde_json::from_slice::<MemberChange>(&cc.context) {
            Ok(MemberChange::Add(m)) => {
                roles.insert(m.id, m.is_learner);
            }
            Ok(MemberChange::Promote(id)) => {
                roles.insert(id, false);
            }
            Ok(MemberChange::Remove(id)) => {
                roles.remove(&id);
            }
            Err(_) => {}
        }
    }
    roles
}

/// Roles from a raft configuration.
pub fn roles_of(cs: &ConfState) -> Roles {
    let voters = cs.get_voters().iter().map(|id| (*id, false));
    let learners = cs.get_learners().iter().map(|id| (*id, true));
    voters.chain(learners).collect()
}

/// Reconciles the backend's members with the v2 view as `release` does at start-up, and
/// returns the members the member table starts with.
pub fn reconcile(
    release: Release,
    mut members: Vec<Member>,
    v2: &Roles,
    backend: &mut Backend,
) -> Vec<Member> {
    if release.is_3_5() {
        // 3.5 recovers membership from the v2 store.
        for m in &mut members {
            if let Some(learner) = v2.get(&m.id) {
                m.is_learner = *learner;
            }
        }
        return members;
    }
    if !release.repairs_learner_promotion() {
        return members;
    }
    for m in &mut members {
        if m.is_learner && v2.get(&m.id) == Some(&false) {
            tracing::warn!(member = %format!("{:x}", m.id), "Syncing member in v3store");
            m.is_learner = false;
            save_member(backend, m);
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf_change_entry(index: u64, change: &MemberChange) -> Entry {
        let cc = ConfChange {
            context: serde_json::to_vec(change).unwrap_or_default().into(),
            ..Default::default()
        };
        let mut e = Entry {
            index,
            data: protobuf::Message::write_to_bytes(&cc)
                .unwrap_or_default()
                .into(),
            ..Default::default()
        };
        e.set_entry_type(EntryType::EntryConfChange);
        e
    }

    fn member(id: u64, learner: bool) -> Member {
        Member {
            id,
            name: format!("m{id}"),
            peer_urls: vec![format!("http://m{id}:2380")],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    #[test]
    fn replay_follows_committed_changes_only() {
        let base: Roles = [(1, false)].into_iter().collect();
        let entries = vec![
            conf_change_entry(2, &MemberChange::Add(member(2, true))),
            conf_change_entry(3, &MemberChange::Promote(2)),
            conf_change_entry(4, &MemberChange::Add(member(3, true))),
        ];
        let roles = replay_roles(base, &entries, 3);
        assert_eq!(roles, [(1, false), (2, false)].into_iter().collect());
        let cs = ConfState {
            voters: vec![1, 2],
            learners: vec![3],
            ..Default::default()
        };
        assert_eq!(
            roles_of(&cs),
            [(1, false), (2, false), (3, true)].into_iter().collect()
        );
    }
}
