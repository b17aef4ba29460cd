//! etcd's strict reconfiguration check (`--strict-reconfig-check`, on by default) for member
//! removal: refuse a remove that would leave the cluster without a quorum of started, connected
//! voters (etcd's `mayRemoveMember`, `IsReadyToRemoveVotingMember`, `numConnectedSince`).
//!
//! Owns: the leader's record of when it last heard from each peer and since when without a
//! gap ([`PeerContacts`], etcd's `ActiveSince`), and the removal check on it. The check runs
//! on the leader (a follower forwards the request): our followers exchange no messages with
//! each other, so only the leader knows which peers are connected; etcd checks on the member
//! that receives the request, with its own peer streams.
//!
//! Must never: read the OS clock (times come from the member's clock), or refuse removing a
//! learner or a member that is down (etcd: "a downed member is safe to remove").

use crate::membership::Cluster;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// etcd's HealthInterval: a peer counts as connected once it has been for this long.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Silence after which a peer is no longer active (etcd's rafthttp ConnReadTimeout).
pub const CONN_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a reconfiguration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigError {
    /// etcd's ErrNotEnoughStartedMembers.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// etcd's ErrUnhealthy.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
}

impl ReconfigError {
    /// The gRPC status etcd answers with (ErrGRPCUnhealthy is Unavailable; etcd's
    /// ErrNotEnoughStartedMembers reaches clients as FailedPrecondition).
    pub fn to_status(&self) -> tonic::Status {
        match self {
            ReconfigError::Unhealthy => tonic::Status::unavailable(self.to_string()),
            ReconfigError::NotEnoughStartedMembers => {
                tonic::Status::failed_precondition(self.to_string())
            }
        }
    }
}

/// When the leader first heard from each peer after a silence, and when it last did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerContacts(BTreeMap<u64, (Instant, Instant)>);

impl PeerContacts {
    /// A message from `peer` arrived at `now`.
    pub fn heard(&mut self, peer: u64, now: Instant) {
        let e = self.0.entry(peer).or_insert((now, now));
        if now.saturating_duration_since(e.1) > CONN_READ_TIMEOUT {
            e.0 = now;
        }
        e.1 = now;
    }

    /// The stream to `peer` broke: it is inactive until heard from again.
    pub fn deactivate(&mut self, peer: u64) {
        self.0.remove(&peer);
    }

    /// Since when `peer` has been active without a gap (`None`: silent for too long, or never
    /// heard), etcd's `Transport.ActiveSince`.
    pub fn active_since(&self, peer: u64, now: Instant) -> Option<Instant> {
        self.0
            .get(&peer)
            .filter(|(_, last)| now.saturating_duration_since(*last) <= CONN_READ_TIMEOUT)
            .map(|(since, _)| *since)
    }

    /// Whether `peer` has been active for longer than [`HEALTH_INTERVAL`].
    fn connected_since_health_interval(&self, peer: u64, now: Instant) -> bool {
        self.active_since(peer, now)
            .is_some_and(|t| now.saturating_duration_since(t) > HEALTH_INTERVAL)
    }
}

/// etcd's `mayRemoveMember`, on the leader `me`: a learner or a downed member may go; a
/// voter may go only if enough voters are started and, without it, a quorum of the rest stays
/// connected.
pub fn may_remove_member(
    cluster: &Cluster,
    contacts: &PeerContacts,
    now: Instant,
    me: u64,
    id: u64,
) -> Result<(), ReconfigError> {
    // No need to check the quorum when removing a non-voting member. (An unknown id goes
    // through the checks; the change itself is then refused with "member not found".)
    if cluster.member(id).is_some_and(|m| m.is_learner) {
        return Ok(());
    }
    let voters: Vec<&crate::membership::Member> =
        cluster.members.iter().filter(|m| !m.is_learner).collect();
    // IsReadyToRemoveVotingMember: the started voters other than the target reach the quorum
    // of the cluster without it.
    let started = voters
        .iter()
        .filter(|m| m.id != id && !m.name.is_empty())
        .count();
    let others = voters.iter().filter(|m| m.id != id).count();
    if started < others / 2 + 1 {
        tracing::warn!(
            local_member_id = %format!("{me:x}"),
            requested_member_remove_id = %format!("{id:x}"),
            voters = voters.len(),
            started,
            "rejecting member remove request; not enough healthy members"
        );
        return Err(ReconfigError::NotEnoughStartedMembers);
    }
    if id != me && contacts.active_since(id, now).is_none() {
        // A downed member is safe to remove: it is not part of the active quorum.
        return Ok(());
    }
    let active = voters
        .iter()
        .filter(|m| m.id == me || contacts.connected_since_health_interval(m.id, now))
        .count();
    // The quorum of the cluster after the removal; one is subtracted as etcd does (the target
    // counted as active).
    let quorum = 1 + voters.len().saturating_sub(1) / 2;
    if active.saturating_sub(1) < quorum {
        tracing::warn!(
            local_member_id = %format!("{me:x}"),
            requested_member_remove_id = %format!("{id:x}"),
            active_peers = active,
            error = "etcdserver: unhealthy cluster",
            "rejecting member remove request; local member has not been connected to all peers, reconfigure breaks active quorum"
        );
        return Err(ReconfigError::Unhealthy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Member;

    fn cluster(names: &[(u64, &str)]) -> Cluster {
        Cluster {
            members: names
                .iter()
                .map(|(id, name)| Member {
                    id: *id,
                    name: name.to_string(),
                    peer_urls: vec![format!("http://m{id}:2380")],
                    client_urls: Vec::new(),
                    is_learner: false,
                })
                .collect(),
            cluster_id: 1,
            removed: Default::default(),
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a start instant; every other time is derived from it
    fn removing_a_healthy_voter_while_another_is_down_is_refused() {
        let c = cluster(&[(1, "m0"), (2, "m1"), (3, "m2")]);
        let start = Instant::now();
        let mut contacts = PeerContacts::default();
        // The leader (2) hears m0 for 10 s; m2 went silent after 1 s.
        contacts.heard(3, start);
        let mut t = start;
        while t < start + Duration::from_secs(10) {
            contacts.heard(1, t);
            t += Duration::from_millis(100);
        }
        let now = t;
        assert_eq!(
            may_remove_member(&c, &contacts, now, 2, 1),
            Err(ReconfigError::Unhealthy),
            "m1 and m0 would be left with m2 down"
        );
        // The downed member itself may go.
        assert_eq!(may_remove_member(&c, &contacts, now, 2, 3), Ok(()));
        // With m2 back for more than the health interval, m0 may go too.
        let mut t2 = now;
        while t2 < now + Duration::from_secs(6) {
            contacts.heard(1, t2);
            contacts.heard(3, t2);
            t2 += Duration::from_millis(100);
        }
        assert_eq!(may_remove_member(&c, &contacts, t2, 2, 1), Ok(()));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a start instant; every other time is derived from it
    fn a_peer_back_from_silence_counts_only_after_the_health_interval() {
        let c = cluster(&[(1, "m0"), (2, "m1"), (3, "m2")]);
        let start = Instant::now();
        let mut contacts = PeerContacts::default();
        contacts.heard(1, start);
        contacts.heard(3, start);
        // m2 silent for 6 s, then heard again: a new active period starts.
        let back = start + Duration::from_secs(6);
        contacts.heard(1, back);
        contacts.heard(3, back);
        assert_eq!(contacts.active_since(3, back), Some(back));
        // m0 (1) was also silent: both just came back, nobody has been connected 5 s.
        assert_eq!(
            may_remove_member(&c, &contacts, back, 2, 1),
            Err(ReconfigError::Unhealthy)
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a start instant; every other time is derived from it
    fn learners_and_unnamed_members_follow_etcds_rules() {
        let mut c = cluster(&[(1, "m0"), (2, "m1"), (3, "")]);
        let now = Instant::now();
        let contacts = PeerContacts::default();
        // Removing m0 leaves m1 (started) and an unstarted member: 1 < quorum 2.
        assert_eq!(
            may_remove_member(&c, &contacts, now, 2, 1),
            Err(ReconfigError::NotEnoughStartedMembers)
        );
        c.members[0].is_learner = true;
        assert_eq!(may_remove_member(&c, &contacts, now, 2, 1), Ok(()));
    }
}
