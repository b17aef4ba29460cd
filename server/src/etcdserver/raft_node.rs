//! The raft loop, shaped like etcd's `server/etcdserver/raft.go`.
//!
//! Owns: the raft-rs `RawNode`, the WAL, the snapshotter and the loop that drives them: a tick
//! every heartbeat interval of the node's clock (`seam::Clock`); for each Ready the leader's messages go out first, then HardState
//! and entries are saved to the WAL (fdatasync when raft says so), then the messages that must
//! follow persistence, then committed entries are applied, then `advance`. While the WAL save
//! blocks, no tick runs and no heartbeat goes out — exactly how a slow disk loses etcd its
//! leadership. Also: ReadIndex batching, snapshots every `--snapshot-count` entries, the
//! election-timeout randomisation from the seeded RNG.
//!
//! Must never: call raft-rs's own RNG-driven timeout without overriding it from our RNG, block
//! on a peer, or apply an entry twice.

use super::apply::Applier;
use super::status::{RaftStatus, ServerMetrics};
use super::{ProposeOutcome, ServerError};
use crate::rafthttp::{PeerReport, Transport};
use crate::snap::Snapshotter;
use crate::wal::{Wal, WalSnapshot};
use raft::eraftpb::{ConfChange, ConfState, Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::storage::NodeStorage;

/// A write to propose, with where its result goes.
pub struct Proposal {
    /// Request id (key of the waiter).
    pub id: u64,
    /// What to propose.
    pub kind: ProposalKind,
    /// The waiter.
    pub reply: oneshot::Sender<ProposeOutcome>,
}

/// A normal entry or a membership change.
#[derive(Clone)]
pub enum ProposalKind {
    /// Encoded `InternalRaftRequest`.
    Normal(Vec<u8>),
    /// A raft configuration change (its `id` is the request id).
    ConfChange(ConfChange),
}

/// A linearizable read waiting for ReadIndex and apply.
pub type ReadWaiter = oneshot::Sender<()>;

/// How long a ReadIndex request may go unanswered before it is sent again (etcd: 500 ms).
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);
/// etcd warns when applying one batch takes longer than this.
const APPLY_WARN: Duration = Duration::from_millis(100);

/// The inputs of the loop.
pub struct Inputs {
    /// Raft messages from peers.
    pub inbound: mpsc::Receiver<Message>,
    /// Reports from the transport.
    pub reports: mpsc::UnboundedReceiver<PeerReport>,
    /// The transport's report sender (passed back to `Transport::send`).
    pub reports_tx: mpsc::UnboundedSender<PeerReport>,
    /// Proposals from the API.
    pub proposals: mpsc::Receiver<Proposal>,
    /// Linearizable read requests from the API.
    pub reads: mpsc::Receiver<ReadWaiter>,
    /// Leadership transfer targets (MoveLeader).
    pub transfers: mpsc::Receiver<u64>,
    /// Stop signal.
    pub stop: oneshot::Receiver<()>,
}

/// Loop settings taken from the config.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Tick interval.
    pub heartbeat: Duration,
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// Raft log entries kept after a snapshot.
    pub catchup_entries: u64,
    /// Backend batch commit interval.
    pub batch_interval: Duration,
    /// `--max-learners`.
    pub max_learners: usize,
    /// The `apply-before-wal-sync` test defect (etcd 14370) is on.
    pub apply_before_wal_sync: bool,
    /// The `follower-acks-before-wal-sync` test defect (etcd 14143's class) is on.
    pub follower_acks_before_wal_sync: bool,
    /// The first ReadIndex context of this incarnation (see [`read_ctx_base`]).
    pub read_ctx_base: u64,
}

/// The first ReadIndex request context of a member's incarnation, as etcd's idutil.Generator
/// builds request ids: the member id's low 16 bits, then 24 bits drawn for this boot, then a
/// 24-bit counter. The leader keys pending read requests by context and a response goes to
/// whoever now has the sender's address, so a context reused by another member, or by the
/// next incarnation while the last one's request is still pending, could be answered with the
/// index confirmed for the older request (the hazard of etcd 20418's reused ReadIndex).
pub fn read_ctx_base(member_id: u64, boot_nonce: u64) -> u64 {
    ((member_id & 0xFFFF) << 48) | ((boot_nonce & 0xFF_FFFF) << 24) | 1
}

/// Everything the loop owns.
pub struct RaftNode {
    /// raft-rs.
    pub raw: RawNode<NodeStorage>,
    /// The write-ahead log.
    pub wal: Wal,
    /// Snapshot files.
    pub snapshotter: Snapshotter,
    /// Applies committed entries to the store.
    pub applier: Applier,
    /// Peer transport.
    pub transport: Transport,
    /// The seeded RNG for election timeouts.
    pub rng: ChaCha8Rng,
    /// Shared status for the API.
    pub status: Arc<Mutex<RaftStatus>>,
    /// Shared metrics.
    pub metrics: Arc<ServerMetrics>,
    /// Settings.
    pub settings: LoopSettings,
    /// Committed entries up to here are in the store (and skipped when raft delivers them).
    pub applied: u64,
    /// Index of the last snapshot.
    pub snapshot_index: u64,
    /// Set when this member applied its own removal: the loop ends.
    pub removed: bool,
    /// When each peer was last heard from (published on the leader).
    pub contacts: super::reconfig::PeerContacts,
}

struct Reads {
    next_ctx: u64,
    pending: Vec<ReadWaiter>,
    inflight: Option<(u64, Instant, Vec<ReadWaiter>)>,
    waiting_apply: Vec<(u64, Vec<ReadWaiter>)>,
}

impl RaftNode {
    /// Runs until stopped or until a storage error makes going on unsafe.
    pub async fn run(mut self, mut inputs: Inputs) -> Result<(), ServerError> {
        let hb = self.settings.heartbeat;
        // Ticks run on the node's clock: a node whose clock runs fast ticks (heartbeats,
        // election timeouts) faster, as a real machine with a fast oscillator does.
        let clock = self.applier.clock.clone();
        let ticker = tokio::time::sleep(clock.tokio_duration(hb));
        tokio::pin!(ticker);
        let mut batch = tokio::time::interval_at(
            Instant::now() + self.settings.batch_interval,
            self.settings.batch_interval,
        );
        batch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut waiters: BTreeMap<u64, oneshot::Sender<ProposeOutcome>> = BTreeMap::new();
        let mut reads = Reads {
            next_ctx: self.settings.read_ctx_base,
            pending: Vec::new(),
            inflight: None,
            waiting_apply: Vec::new(),
        };
        let mut last_tick = Instant::now();
        let mut stop_at: Option<Instant> = None;
        let mut seen = (u64::MAX, StateRole::Follower, 0usize);
        self.rerandomize(&mut seen);
        loop {
            tokio::select! {
                biased;
                _ = &mut inputs.stop => return Ok(()),
                _ = &mut ticker => {
                    let now = Instant::now();
                    let tick = clock.tokio_duration(hb);
                    ticker.as_mut().reset(now + tick);
                    let since = now - last_tick;
                    last_tick = now;
                    if self.raw.raft.state == StateRole::Leader && since > 2 * tick {
                        tracing::warn!(
                            heartbeat_interval = ?hb,
                            expected_duration = ?(2 * hb),
                            exceeded_duration = ?(since - 2 * tick),
                            "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk"
                        );
                        self.metrics.heartbeat_send_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.raw.tick();
                    retry_stale_read(&mut self.raw, &mut reads, now);
                    waiters.retain(|_, w| !w.is_closed());
                }
                Some(m) = inputs.inbound.recv() => {
                    self.step(m)?;
                    for _ in 0..256 {
                        match inputs.inbound.try_recv() {
                            Ok(m) => self.step(m)?,
                            Err(_) => break,
                        }
                    }
                }
                Some(r) = inputs.reports.recv() => match r {
                    PeerReport::Unreachable(id) => self.raw.report_unreachable(id),
                    PeerReport::Disconnected(id) => {
                        self.contacts.deactivate(id);
                        self.raw.report_unreachable(id);
                    }
                    PeerReport::Snapshot(id, ok) => self.raw.report_snapshot(
                        id,
                        if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure },
                    ),
                    PeerReport::Removed => self.removed = true,
                },
                Some(p) = inputs.proposals.recv() => {
                    self.propose(p, &mut waiters);
                    for _ in 0..256 {
                        match inputs.proposals.try_recv() {
                            Ok(p) => self.propose(p, &mut waiters),
                            Err(_) => break,
                        }
                    }
                }
                Some(r) = inputs.reads.recv() => {
                    reads.pending.push(r);
                    while let Ok(r) = inputs.reads.try_recv() {
                        reads.pending.push(r);
                    }
                }
                Some(target) = inputs.transfers.recv() => {
                    tracing::info!(target = %format!("{target:x}"), "leadership transfer requested");
                    self.raw.transfer_leader(target);
                }
                _ = batch.tick() => self.applier.commit_batch(true).await?,
            }
            self.rerandomize(&mut seen);
            if reads.inflight.is_none() && !reads.pending.is_empty() {
                let ctx = reads.next_ctx;
                reads.next_ctx += 1;
                self.raw.read_index(ctx.to_be_bytes().to_vec());
                reads.inflight = Some((ctx, Instant::now(), std::mem::take(&mut reads.pending)));
            }
            self.on_ready(&inputs.reports_tx, &mut waiters, &mut reads)
                .await?;
            if self.removed {
                // etcd's stopWithDelay: a member that applied its own removal keeps running
                // for ten heartbeats, so the others learn the removal is committed.
                let at = *stop_at.get_or_insert_with(|| Instant::now() + 10 * hb);
                if Instant::now() >= at {
                    tracing::warn!("the member has been permanently removed from the cluster");
                    return Ok(());
                }
            }
            self.rerandomize(&mut seen);
            self.publish_status();
        }
    }

    /// Steps a peer's message. A leader's heartbeat that commits past the end of this
    /// member's log means the log lost entries it had acknowledged (a disk that lied about a
    /// sync, or data truncated behind its back): raft-rs would panic there, and etcd's raft
    /// panics too, so the member stops with etcd's message instead.
    fn step(&mut self, m: Message) -> Result<(), ServerError> {
        if m.from != 0 && m.from != self.raw.raft.id {
            self.contacts.heard(m.from, self.applier.clock.now());
        }
        let last_index = self.raw.raft.raft_log.last_index();
        if m.get_msg_type() == MessageType::MsgHeartbeat
            && m.term >= self.raw.raft.term
            && m.commit > last_index
        {
            tracing::error!(
                to_commit = m.commit,
                last_index,
                from = %format!("{:x}", m.from),
                "tocommit is out of range; was the raft log corrupted, truncated, or lost?"
            );
            return Err(ServerError::LogLost(format!(
                "tocommit({}) is out of range [lastIndex({last_index})]. Was the raft log corrupted, truncated, or lost?",
                m.commit
            )));
        }
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(error = %e, "raft step rejected a message");
        }
        Ok(())
    }

    fn propose(
        &mut self,
        p: Proposal,
        waiters: &mut BTreeMap<u64, oneshot::Sender<ProposeOutcome>>,
    ) {
        let leader = self.raw.raft.leader_id;
        let proposed = match p.kind {
            ProposalKind::Normal(data) => self.raw.propose(Vec::new(), data),
            ProposalKind::ConfChange(cc) => self.raw.propose_conf_change(Vec::new(), cc),
        };
        match proposed {
            Ok(()) => {
                waiters.insert(p.id, p.reply);
            }
            Err(e) => {
                tracing::debug!(error = %e, leader = %format!("{leader:x}"), "proposal dropped");
                let _ = p.reply.send(ProposeOutcome::Dropped);
            }
        }
    }

    /// raft-rs draws election timeouts from `thread_rng` on every reset; replace each draw with
    /// one from our seeded RNG so that a run replays from its seed.
    fn rerandomize(&mut self, seen: &mut (u64, StateRole, usize)) {
        let r = &self.raw.raft;
        let now = (r.term, r.state, r.randomized_election_timeout());
        if now != *seen {
            let et = self.settings.election_ticks;
            let t = self.rng.gen_range(et..2 * et);
            self.raw.raft.set_randomized_election_timeout(t);
            *seen = (now.0, now.1, t);
        }
    }

    async fn on_ready(
        &mut self,
        reports: &mpsc::UnboundedSender<PeerReport>,
        waiters: &mut BTreeMap<u64, oneshot::Sender<ProposeOutcome>>,
        reads: &mut Reads,
    ) -> Result<(), ServerError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state);
        }
        // The leader's messages go out before it persists (etcd's raft.go does the same).
        self.transport.send(rd.take_messages(), reports);
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install_snapshot(snap).await?;
        }
        for rs in rd.take_read_states() {
            if let Some((ctx, _, _)) = &reads.inflight {
                if rs.request_ctx == ctx.to_be_bytes() {
                    if let Some((_, _, w)) = reads.inflight.take() {
                        reads.waiting_apply.push((rs.index, w));
                    }
                }
            }
        }
        if self.settings.apply_before_wal_sync && self.sole_voter_leading() {
            // etcd 14370's defect: a single voter's raft committed an entry on append and
            // etcd applied it, answering the client, while the WAL was still being saved.
            let unsynced: Vec<Entry> = rd
                .entries()
                .iter()
                .take_while(|e| e.get_entry_type() == EntryType::EntryNormal)
                .cloned()
                .collect();
            self.apply_each(unsynced, waiters)?;
        }
        if self.settings.follower_acks_before_wal_sync && self.raw.raft.state != StateRole::Leader {
            // etcd 14143's class as a defect: a non-leader's messages (append and vote
            // responses among them) go out before its entries are durable, as only the
            // leader's may.
            self.transport.send(rd.take_persisted_messages(), reports);
        }
        // Persist: HardState and entries to the WAL, fdatasync when raft requires it (the WAL
        // times each fdatasync, logs `slow fdatasync` and feeds the metrics observer).
        let hs = rd.hs().cloned();
        self.wal
            .save(hs.as_ref(), rd.entries(), rd.must_sync())
            .await?;
        {
            let store = self.raw.mut_store();
            if let Some(hs) = &hs {
                store.mem.wl().set_hardstate(hs.clone());
            }
            if !rd.entries().is_empty() {
                store.mem.wl().append(rd.entries())?;
            }
        }
        self.transport.send(rd.take_persisted_messages(), reports);
        let committed = rd.take_committed_entries();
        self.apply_entries(committed, waiters).await?;
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            let store = self.raw.mut_store();
            let mut hs = store.mem.rl().hard_state().clone();
            hs.commit = commit;
            store.mem.wl().set_hardstate(hs);
        }
        self.transport.send(light.take_messages(), reports);
        let committed = light.take_committed_entries();
        self.apply_entries(committed, waiters).await?;
        self.raw.advance_apply();
        // Reads whose index is applied can be served now.
        let applied = self.applied;
        let mut i = 0;
        while i < reads.waiting_apply.len() {
            if reads.waiting_apply[i].0 <= applied {
                let (_, ws) = reads.waiting_apply.swap_remove(i);
                for w in ws {
                    let _ = w.send(());
                }
            } else {
                i += 1;
            }
        }
        let applied = self.raw.raft.raft_log.applied;
        let forced = self
            .applier
            .force_snapshot
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            && applied > self.snapshot_index;
        if forced || applied >= self.snapshot_index + self.settings.snapshot_count {
            self.take_snapshot().await?;
        }
        Ok(())
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        let was_leader = lock(&self.status).is_leader;
        let is_leader = role == StateRole::Leader;
        if is_leader && !was_leader {
            // etcd's lessor.Promote: remaining TTLs restart, extended by an election timeout.
            let extend = self.settings.heartbeat * self.settings.election_ticks as u32;
            lock(&self.applier.lessor).promote(self.applier.clock.now(), extend);
        } else if was_leader && !is_leader {
            lock(&self.applier.lessor).demote();
        }
        let mut st = lock(&self.status);
        if leader != st.leader && leader != raft::INVALID_ID {
            st.leader_changes += 1;
            self.metrics
                .leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                leader = %format!("{leader:x}"),
                term = self.raw.raft.term,
                "raft leader changed"
            );
        }
        st.leader = leader;
        st.is_leader = role == StateRole::Leader;
    }

    async fn apply_entries(
        &mut self,
        entries: Vec<Entry>,
        waiters: &mut BTreeMap<u64, oneshot::Sender<ProposeOutcome>>,
    ) -> Result<(), ServerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.apply_each(entries, waiters)?;
        self.applier.commit_batch(false).await?;
        let took = started.elapsed();
        if took > APPLY_WARN {
            tracing::warn!(took = ?took, expected_duration = ?APPLY_WARN, "apply request took too long");
        }
        Ok(())
    }

    /// Whether this member leads and is the only voter.
    fn sole_voter_leading(&self) -> bool {
        self.raw.raft.state == StateRole::Leader && self.raw.raft.prs().is_singleton()
    }

    /// Applies entries not applied yet and answers their waiters (the backend batch is left
    /// for the caller to commit).
    fn apply_each(
        &mut self,
        entries: Vec<Entry>,
        waiters: &mut BTreeMap<u64, oneshot::Sender<ProposeOutcome>>,
    ) -> Result<(), ServerError> {
        for e in entries {
            if matches!(
                e.get_entry_type(),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2
            ) {
                if self.on_conf_change(&e, waiters)? {
                    self.removed = true;
                }
                self.applied = self.applied.max(e.index);
                continue;
            }
            if e.index <= self.applied {
                continue;
            }
            if let Some((id, result)) = self
                .applier
                .apply_entry(&e, |id| waiters.contains_key(&id))?
            {
                if let Some(w) = waiters.remove(&id) {
                    let _ = w.send(ProposeOutcome::Applied(result));
                }
            }
            self.applied = e.index;
        }
        Ok(())
    }

    /// A snapshot from the leader: save it durably (with the leader's backend data, so a
    /// crash before the backend holds it can recover from the file), load it into the store,
    /// then into raft. The store may be ahead of the snapshot's index (the leader sends its
    /// current backend, as etcd does); entries up to the store's index are then skipped.
    async fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), ServerError> {
        let (index, term) = (snap.get_metadata().index, snap.get_metadata().term);
        tracing::info!(index, term, "applying snapshot from leader");
        self.snapshotter.save(&snap).await?;
        self.wal.save_snapshot(WalSnapshot { index, term }).await?;
        let store_index = self.applier.restore(snap.get_data(), index, term)?;
        let mut meta_only = snap;
        meta_only.clear_data();
        let storage = self.raw.mut_store();
        storage.mem.wl().apply_snapshot(meta_only.clone())?;
        storage.snapshot = meta_only;
        self.applied = store_index.max(index);
        self.snapshot_index = index;
        Ok(())
    }

    /// etcd's triggerSnapshot: commit the backend (which then holds everything up to the
    /// applied index), record a snapshot of the applied index in the snap dir and the WAL,
    /// compact the in-memory raft log keeping catch-up entries, release old WAL segments.
    /// The snapshot file carries no data: the backend is the data. A follower that needs a
    /// snapshot is sent the backend as it is when the message goes out.
    async fn take_snapshot(&mut self) -> Result<(), ServerError> {
        // raft's applied index, not the store's: after a snapshot from the leader the store can
        // be ahead of the entries raft has delivered, and a snapshot must name an entry raft has.
        let index = self.raw.raft.raft_log.applied;
        let term = self.raw.raft.raft_log.term(index)?;
        self.applier.commit(true).await?;
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state());
        self.snapshotter.save(&snap).await?;
        self.wal.save_snapshot(WalSnapshot { index, term }).await?;
        let compact_to = index.saturating_sub(self.settings.catchup_entries);
        let storage = self.raw.mut_store();
        storage.snapshot = snap;
        let first = storage.mem.first_index()?;
        if compact_to > first {
            storage.mem.wl().compact(compact_to)?;
        }
        self.wal.release_to(index).await?;
        self.snapshotter.purge(5)?;
        self.snapshot_index = index;
        tracing::info!(index, term, compacted_to = compact_to, "saved snapshot");
        Ok(())
    }

    fn conf_state(&self) -> ConfState {
        // raft-rs builds this from hash sets: sort, so snapshots are byte-identical per seed.
        let mut cs = self.raw.raft.prs().conf().to_conf_state();
        cs.voters.sort_unstable();
        cs.voters_outgoing.sort_unstable();
        cs.learners.sort_unstable();
        cs.learners_next.sort_unstable();
        cs
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        let mut st = lock(&self.status);
        st.term = r.term;
        st.commit = r.raft_log.committed;
        st.applied = self.applied;
        st.leader = r.leader_id;
        st.is_leader = r.state == StateRole::Leader;
        st.progress.clear();
        if st.is_leader {
            st.contacts.clone_from(&self.contacts);
            st.progress
                .extend(r.prs().iter().map(|(id, pr)| (*id, pr.matched)));
            st.progress.sort_unstable();
        }
    }
}

/// A ReadIndex request the leader never answered (lost message, leader change) is sent again.
fn retry_stale_read(raw: &mut RawNode<NodeStorage>, reads: &mut Reads, now: Instant) {
    let stale = matches!(&reads.inflight, Some((_, at, _)) if now - *at > READ_INDEX_RETRY);
    if stale {
        if let Some((sent, _, w)) = reads.inflight.take() {
            let ctx = reads.next_ctx;
            reads.next_ctx += 1;
            tracing::warn!(
                sent_request_id = sent,
                retry_timeout = ?READ_INDEX_RETRY,
                "waiting for ReadIndex response took too long, retrying"
            );
            raw.read_index(ctx.to_be_bytes().to_vec());
            reads.inflight = Some((ctx, now, w));
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod read_ctx_tests {
    use super::read_ctx_base;

    #[test]
    fn read_contexts_differ_across_members_and_boots() {
        let a = read_ctx_base(0x8e9e_05c5_2164_694d, 7);
        assert_ne!(a, read_ctx_base(0x8e9e_05c5_2164_694e, 7), "another member");
        assert_ne!(a, read_ctx_base(0x8e9e_05c5_2164_694d, 8), "the next boot");
        // A boot's contexts count up from its base without reaching the next boot's range
        // for 2^24 requests.
        assert_eq!(a & 0xFF_FFFF, 1);
        assert_eq!(a >> 48, 0x694d);
    }
}
