//! Starting a member: a new one from flags, or a restart from its data dir.
//!
//! Owns: the data-dir layout (`member/wal`, `member/snap`, `member/snap/db`), recovery (newest
//! snapshot, then the backend's consistent index, then WAL replay of what follows), and the
//! spawning of the raft loop, the peer transport and the client and peer listeners.
//!
//! Must never: start a member whose backend is ahead of its WAL (that state cannot come from a
//! crash; it means the data dir was tampered with), or trust `--initial-cluster` over what the
//! data dir records on a restart.

use super::apply::Applier;
use super::raft_node::{Inputs, LoopSettings, RaftNode};
use super::request::{LeaseCheckpoint, LeaseCheckpointRequest, Op};
use super::status::{RaftStatus, ServerMetrics};
use super::storage::NodeStorage;
use super::v2store;
use super::version;
use super::{lock, EtcdServer, ServerError, Shared};
use crate::alarm::Alarms;
use crate::config::{split_urls, url_host_port, Config};
use crate::lease::Lessor;
use crate::membership::{load_members, load_removed, save_member, Cluster, MemberAttributes};
use crate::mvcc::watchable::WatchHub;
use crate::mvcc::{BackendOptions, Store};
use crate::rafthttp::{RaftService, Transport};
use crate::seam::World;
use crate::snap::Snapshotter;
use crate::wal::{Wal, WalOptions, WalSnapshot};
use etcd_api::etcdserverpb as pb;
use raft::eraftpb::{ConfState, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What the WAL's metadata record holds: who this member is and the cluster it joined.
#[derive(Debug, Serialize, Deserialize)]
struct WalMetadata {
    member_id: u64,
    cluster: Cluster,
}

/// A running member.
pub struct ServerHandle {
    /// The API-facing handle.
    pub server: EtcdServer,
    /// Client listener addresses actually bound (`host:port`).
    pub client_addrs: Vec<String>,
    /// Peer listener addresses actually bound.
    pub peer_addrs: Vec<String>,
    raft: JoinHandle<Result<(), ServerError>>,
    listeners: Vec<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl ServerHandle {
    /// Waits until the raft loop ends (on a storage error, or after `stop`).
    pub async fn wait(&mut self) -> Result<(), ServerError> {
        let r = match (&mut self.raft).await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Inconsistent(format!(
                "raft loop panicked: {e}"
            ))),
        };
        for l in &self.listeners {
            l.abort();
        }
        r
    }

    /// Stops the member: the raft loop finishes its current step, listeners close.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.wait().await
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// Recovers or bootstraps a member and starts all its tasks on the current runtime.
pub async fn start(cfg: Config, world: World) -> Result<ServerHandle, ServerError> {
    let (initial_cluster, initial_id) = Cluster::from_config(&cfg)?;
    let release = cfg.release()?;
    let disk = world.disk.clone();
    let data_dir = PathBuf::from(cfg.data_dir());
    let member_dir = data_dir.join("member");
    let wal_dir = member_dir.join("wal");
    let snap_dir = member_dir.join("snap");
    disk.create_dir_all(&snap_dir)
        .map_err(io(format!("create {}", snap_dir.display())))?;
    let wal_opts = WalOptions {
        segment_size: cfg.wal_segment_size,
    };
    let mut store = Store::open(
        disk.clone(),
        &snap_dir.join("db"),
        BackendOptions {
            batch_limit: cfg.backend_batch_limit,
            batch_interval: Duration::from_millis(cfg.backend_batch_interval.max(1)),
            defrag_skips_consistent_index: cfg
                .has_defect(crate::defects::Defect::DefragCommitWithoutConsistentIndex),
            ..BackendOptions::default()
        },
        {
            use crate::defects::Defect;
            // etcd 17780 lived in releases that also dropped the tombstone at the compaction
            // revision (18089) and compacted in batches after the apply.
            let ignores_scheduled = cfg.has_defect(Defect::RestoreIgnoresScheduledCompaction);
            crate::mvcc::StoreDefects {
                drop_tombstone_at_compaction: ignores_scheduled
                    || cfg.has_defect(Defect::CompactDropsTombstoneAtRevision),
                restore_skips_tombstone_only_keys: cfg
                    .has_defect(Defect::RestoreSkipsTombstoneOnlyKeys),
                compaction_commits_before_finish: ignores_scheduled
                    || cfg.has_defect(Defect::RestoreSkipsTombstoneOnlyKeys),
                restore_ignores_scheduled_compaction: ignores_scheduled,
            }
        },
    )
    .await?;
    store.set_offload(world.offload.clone());
    let snapshotter = Snapshotter::new(disk.clone(), &snap_dir);

    let recovered = if Wal::exists(&*disk, &wal_dir) {
        Some(
            recover(
                &wal_dir,
                &snapshotter,
                &mut store,
                &world,
                wal_opts,
                release,
            )
            .await?,
        )
    } else {
        None
    };
    let initialized = recovered.is_some();
    let (wal, mem, snapshot, mut cluster, member_id, applied) = match recovered {
        Some(r) => r,
        None => {
            let (cluster, member_id) = if cfg.initial_cluster_state == "existing" {
                let initial = cfg.validate()?;
                super::join::fetch_cluster(&cfg, &world, &initial).await?
            } else {
                (initial_cluster, initial_id)
            };
            let meta = WalMetadata { member_id, cluster };
            let bytes = serde_json::to_vec(&meta)
                .map_err(|e| ServerError::Inconsistent(format!("encode wal metadata: {e}")))?;
            let wal = Wal::create(disk.clone(), &wal_dir, &bytes, wal_opts).await?;
            let mem = MemStorage::new_with_conf_state(initial_conf_state(&meta.cluster));
            for m in &meta.cluster.members {
                save_member(store.backend_mut(), m);
            }
            store.commit(true)?;
            let applied = Applied { raft: 0, store: 0 };
            (
                wal,
                mem,
                Snapshot::default(),
                meta.cluster,
                meta.member_id,
                applied,
            )
        }
    };
    // 3.6 checks --max-learners at bootstrap too (ValidateMaxLearnerConfig): this is where
    // etcd 19557's promoted-but-not-persisted learners stop 3.6.0-rc.0..rc.2.
    if release.has_feature_gates() && cluster.learner_count() > cfg.max_learners as usize {
        return Err(ServerError::TooManyLearners {
            learners: cluster.learner_count(),
            max: cfg.max_learners,
        });
    }
    cluster.removed = load_removed(store.backend()).map_err(crate::mvcc::MvccError::from)?;
    let snapshot_index = snapshot.get_metadata().index;
    tracing::info!(
        member = %format!("{member_id:x}"),
        cluster = %format!("{:x}", cluster.cluster_id),
        applied = applied.store,
        snapshot_index,
        "starting member"
    );
    store.record_events(true);
    let alarms = Arc::new(Mutex::new(
        Alarms::load(store.backend()).map_err(crate::mvcc::MvccError::from)?,
    ));
    let mut versions = version::load_versions(store.backend())?;
    let db_file = store.backend().path().display().to_string();
    version::check_data_versions(
        release,
        versions.cluster,
        versions.storage,
        versions.downgrade_target,
        &db_file,
    )?;
    version::sync_storage_version(store.backend_mut(), &mut versions, release);
    let versions = Arc::new(Mutex::new(versions));
    let mut lessor = Lessor::load(&store, Lessor::min_ttl_for(cfg.election_timeout()))?;
    lessor.set_checkpointing(cfg.lease_checkpointing());
    let lessor = Arc::new(Mutex::new(lessor));
    let checker = lessor.clone();
    store.set_lease_checker(Box::new(move |id| lock(&checker).exists(id)));
    let store = Arc::new(Mutex::new(store));
    let hub = Arc::new(WatchHub::with_defects(crate::mvcc::watchable::HubDefects {
        synced_watcher_keeps_start_rev: cfg
            .has_defect(crate::defects::Defect::SyncedWatcherKeepsStartRev),
        compacted_watcher_skips_ahead: cfg
            .has_defect(crate::defects::Defect::CompactedWatcherSkipsAhead),
        restore_lowers_future_watchers: cfg
            .has_defect(crate::defects::Defect::RestoreLowersFutureWatchers),
    }));
    let storage = NodeStorage {
        mem,
        snapshot,
        store: store.clone(),
    };

    let raft_cfg = raft::Config {
        id: member_id,
        election_tick: cfg.election_ticks(),
        heartbeat_tick: 1,
        applied: applied.raft,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 512,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let raw = RawNode::new(&raft_cfg, storage, &logger)?;

    // Peer transport and listeners.
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let mut peers = BTreeMap::new();
    for m in &cluster.members {
        if m.id != member_id {
            if let Some(u) = m.peer_urls.first() {
                peers.insert(m.id, url_host_port("peer URL", u)?);
            }
        }
    }
    let transport = Transport::start(world.net.clone(), peers, reports_tx.clone());
    let (inbound_tx, inbound_rx) = mpsc::channel(4096);
    let (prop_tx, prop_rx) = mpsc::channel(1024);
    let (read_tx, read_rx) = mpsc::channel(1024);
    let (transfer_tx, transfer_rx) = mpsc::channel(8);
    let (stop_tx, stop_rx) = oneshot::channel();

    let cluster = Arc::new(Mutex::new(cluster));
    let failpoints = Arc::new(crate::failpoints::Failpoints::default());
    let status = Arc::new(Mutex::new(RaftStatus::default()));
    let metrics = Arc::new(ServerMetrics::default());
    let mut seeds = ChaCha8Rng::seed_from_u64(world.seed ^ member_id);
    let server = EtcdServer {
        inner: Arc::new(Shared {
            cfg: cfg.clone(),
            member_id,
            cluster: cluster.clone(),
            store: store.clone(),
            hub: hub.clone(),
            lessor: lessor.clone(),
            alarms: alarms.clone(),
            versions: versions.clone(),
            release,
            transfers: transfer_tx,
            status: status.clone(),
            metrics: metrics.clone(),
            failpoints: failpoints.clone(),
            proposals: prop_tx,
            reads: read_tx,
            request_ids: Mutex::new(
                ChaCha8Rng::from_rng(&mut seeds)
                    .map_err(|e| ServerError::Inconsistent(format!("seed request ids: {e}")))?,
            ),
            net: world.net.clone(),
            clock: world.clock.clone(),
        }),
    };

    // etcd runs it before serving peers or clients, on a member that has data.
    if initialized && cfg.feature_enabled("InitialCorruptCheck") {
        super::corrupt::initial_check(&server).await?;
    }

    let mut listeners = Vec::new();
    let mut peer_addrs = Vec::new();
    // Peers also serve the Cluster service, so that a joining member can learn its id, and the
    // Lease service, so that followers can forward renewals to the leader.
    let peer_router =
        tonic::service::Routes::new(RaftService::new(inbound_tx, cluster.clone()).into_server())
            .add_service(pb::cluster_server::ClusterServer::new(
                crate::api::ClusterApi::new(server.clone()),
            ))
            .add_service(pb::lease_server::LeaseServer::new(
                crate::api::LeaseApi::new(server.clone()),
            ))
            .prepare()
            .into_axum_router()
            .merge(
                axum::Router::new()
                    .route("/version", axum::routing::get(version::versions_handler))
                    .route(
                        super::corrupt::PEER_HASHKV_PATH,
                        axum::routing::any(super::corrupt::serve_hashkv),
                    )
                    .with_state(server.clone()),
            );
    for u in split_urls(&cfg.listen_peer_urls) {
        let addr = url_host_port("--listen-peer-urls", &u)?;
        let l = world
            .net
            .bind(&addr)
            .await
            .map_err(io(format!("listen on peer URL {u}")))?;
        peer_addrs.push(l.local_addr());
        listeners.push(tokio::spawn(crate::api::serve(l, peer_router.clone())));
    }
    let mut client_addrs = Vec::new();
    let client_router = crate::api::client_router(server.clone());
    for u in split_urls(&cfg.listen_client_urls) {
        let addr = url_host_port("--listen-client-urls", &u)?;
        let l = world
            .net
            .bind(&addr)
            .await
            .map_err(io(format!("listen on client URL {u}")))?;
        client_addrs.push(l.local_addr());
        listeners.push(tokio::spawn(crate::api::serve(l, client_router.clone())));
    }

    let mut wal = wal;
    let fsync_metrics = metrics.clone();
    wal.set_fsync_observer(move |d| fsync_metrics.observe_wal_fsync(d));
    let node = RaftNode {
        raw,
        wal,
        snapshotter,
        applier: Applier {
            clock: world.clock.clone(),
            store,
            alarms: alarms.clone(),
            versions,
            release,
            force_snapshot: Default::default(),
            disk: world.disk.clone(),
            metrics: metrics.clone(),
            lessor: lessor.clone(),
            cluster,
            hub: hub.clone(),
            index_before_apply: cfg.has_defect(crate::defects::Defect::ConsistentIndexBeforeApply),
            strip_ranges_without_waiter: cfg
                .has_defect(crate::defects::Defect::StripTxnRangesWithoutWaiter),
            failpoints,
        },
        transport,
        rng: ChaCha8Rng::from_rng(&mut seeds)
            .map_err(|e| ServerError::Inconsistent(format!("seed raft rng: {e}")))?,
        status,
        metrics,
        settings: LoopSettings {
            heartbeat: cfg.heartbeat(),
            election_ticks: cfg.election_ticks(),
            snapshot_count: cfg.snapshot_count(),
            catchup_entries: cfg.snapshot_catchup_entries,
            batch_interval: Duration::from_millis(cfg.backend_batch_interval.max(1)),
            max_learners: cfg.max_learners as usize,
            apply_before_wal_sync: cfg.has_defect(crate::defects::Defect::ApplyBeforeWalSync),
            follower_acks_before_wal_sync: cfg
                .has_defect(crate::defects::Defect::FollowerAcksBeforeWalSync),
            // Drawn after the raft rng, whose stream it must not shift.
            read_ctx_base: super::raft_node::read_ctx_base(member_id, seeds.gen()),
        },
        applied: applied.store,
        snapshot_index,
        removed: false,
        contacts: Default::default(),
    };
    let inputs = Inputs {
        inbound: inbound_rx,
        reports: reports_rx,
        reports_tx,
        proposals: prop_rx,
        reads: read_rx,
        transfers: transfer_rx,
        stop: stop_rx,
    };
    let raft = tokio::spawn(node.run(inputs));
    listeners.push(tokio::spawn(sync_watchers(server.clone(), hub)));
    listeners.push(tokio::spawn(revoke_expired_leases(server.clone())));
    listeners.push(tokio::spawn(checkpoint_leases(server.clone())));
    listeners.push(tokio::spawn(version::monitor_cluster_version(
        server.clone(),
    )));
    listeners.push(tokio::spawn(version::monitor_downgrade(server.clone())));
    listeners.push(tokio::spawn(super::corrupt::monitor(server.clone())));
    listeners.push(tokio::spawn(publish_attributes(
        server.clone(),
        MemberAttributes {
            member_id,
            name: cfg.name.clone(),
            client_urls: split_urls(&cfg.advertise_client_urls),
        },
    )));
    Ok(ServerHandle {
        server,
        client_addrs,
        peer_addrs,
        raft,
        listeners,
        stop: Some(stop_tx),
    })
}

/// The raft configuration of a static cluster: every member votes.
fn initial_conf_state(cluster: &Cluster) -> ConfState {
    ConfState {
        voters: cluster.voter_ids(),
        learners: cluster.learner_ids(),
        ..Default::default()
    }
}

/// etcd's syncWatchersLoop: every 100 ms, unsynced watchers catch up from the history.
async fn sync_watchers(server: EtcdServer, hub: Arc<WatchHub>) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        every.tick().await;
        let store = server.store();
        if let Err(e) = hub.sync(&store) {
            tracing::warn!(error = %e, "watch catch-up failed; retrying");
        }
    }
}

/// etcd's revokeExpiredLeases loop: every 500 ms the leader proposes a revoke for each expired
/// lease (at most 1000 per round); followers never do. Before revoking, the member confirms it
/// is still the leader with a ReadIndex round in the same term (etcd's ensureLeadership, the
/// fix for etcd issue 15247): a leader that was stalled, e.g. by a slow disk, must not revoke
/// leases that were renewed on the new leader meanwhile.
async fn revoke_expired_leases(server: EtcdServer) {
    let check_leadership = !server
        .config()
        .has_defect(crate::defects::Defect::RevokeWithoutLeadershipCheck);
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        every.tick().await;
        let expired = lock(&server.lessor()).expired(server.now(), 1000);
        if expired.is_empty() {
            continue;
        }
        let before = server.status();
        if !before.is_leader || (check_leadership && server.linearizable_read().await.is_err()) {
            continue;
        }
        let after = server.status();
        if !after.is_leader || after.term != before.term {
            tracing::warn!("leadership changed while checking expired leases; not revoking");
            continue;
        }
        for id in expired {
            tracing::info!(lease = %format!("{id:x}"), "revoking expired lease");
            let s = server.clone();
            tokio::spawn(async move {
                let req = pb::LeaseRevokeRequest { id };
                if let Err(e) = s.propose(Op::LeaseRevoke(req)).await {
                    tracing::debug!(lease = %format!("{id:x}"), error = %e, "revoke of expired lease failed");
                }
            });
        }
    }
}

/// etcd's checkpointScheduledLeases: every 500 ms the leader proposes the remaining TTLs of the
/// leases due for a checkpoint (at most 1000 per proposal; a no-op with checkpointing off).
async fn checkpoint_leases(server: EtcdServer) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        every.tick().await;
        loop {
            let due = lock(&server.lessor()).due_checkpoints(server.now(), 1000);
            if due.is_empty() || !server.status().is_leader {
                break;
            }
            let full = due.len() == 1000;
            let req = LeaseCheckpointRequest {
                checkpoints: due
                    .into_iter()
                    .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                    .collect(),
            };
            if let Err(e) = server.propose(Op::LeaseCheckpoint(req)).await {
                tracing::debug!(error = %e, "lease checkpoint failed");
            }
            if !full {
                break;
            }
        }
    }
}

/// etcd's publishV3: record this member's name and client URLs through raft, retrying until
/// it succeeds, so that every member lists them.
async fn publish_attributes(server: EtcdServer, attrs: MemberAttributes) {
    loop {
        match server.propose(Op::MemberAttrSet(attrs.clone())).await {
            Ok(_) => {
                tracing::info!(name = %attrs.name, client_urls = ?attrs.client_urls, "published local member to cluster through raft");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "publishing member attributes failed; retrying");
                tokio::time::sleep(server.config().heartbeat()).await;
            }
        }
    }
}

/// Where applying stands after recovery.
struct Applied {
    /// What raft-rs is told is applied (never past its commit index).
    raft: u64,
    /// The backend's consistent index: committed entries up to here are skipped. It can be
    /// ahead of `raft` when the backend came from a leader's snapshot, which carries the
    /// leader's backend as it was when sent.
    store: u64,
}

type Recovered = (Wal, MemStorage, Snapshot, Cluster, u64, Applied);

/// Restart: newest snapshot, backend consistent index, WAL replay.
async fn recover(
    wal_dir: &Path,
    snapshotter: &Snapshotter,
    store: &mut Store,
    world: &World,
    wal_opts: WalOptions,
    release: version::Release,
) -> Result<Recovered, ServerError> {
    // etcd's order: the WAL's snapshot markers decide which snapshot file is usable; the WAL
    // then replays the entries after that snapshot.
    let (mut wal, mut contents) = Wal::open(world.disk.clone(), wal_dir, wal_opts).await?;
    let snapshot = snapshotter
        .load_newest_available(&contents.snapshots)?
        .unwrap_or_default();
    let marker = WalSnapshot {
        index: snapshot.get_metadata().index,
        term: snapshot.get_metadata().term,
    };
    if contents.snapshot.unwrap_or_default() != marker {
        // The newest snapshot file is damaged: replay from the older one's marker.
        drop(wal);
        (wal, contents) = Wal::open_at(world.disk.clone(), wal_dir, wal_opts, marker).await?;
    }
    let meta: WalMetadata = serde_json::from_slice(&contents.metadata).map_err(|e| {
        ServerError::Inconsistent(format!(
            "wal metadata in {} is not readable: {e}",
            wal_dir.display()
        ))
    })?;
    let snap_index = snapshot.get_metadata().index;
    let mut ci = store.consistent_index();
    if snap_index > ci {
        // A snapshot from the leader was saved but the backend never committed its content:
        // load it from the file (local snapshots carry no data; the backend is always at or
        // past their index).
        if snapshot.get_data().is_empty() {
            return Err(ServerError::Inconsistent(format!(
                "backend consistent index {ci} is behind snapshot {snap_index}, which has no data"
            )));
        }
        store.restore_snapshot(
            snapshot.get_data(),
            snap_index,
            snapshot.get_metadata().term,
        )?;
        store.commit(true)?;
        ci = store.consistent_index();
    }
    let mem = MemStorage::new();
    if snap_index > 0 {
        mem.wl().apply_snapshot(snapshot.clone())?;
    } else {
        mem.initialize_with_conf_state(initial_conf_state(&meta.cluster));
    }
    let entries: Vec<_> = contents
        .entries
        .into_iter()
        .filter(|e| e.index > snap_index)
        .collect();
    if let Some(first) = entries.first() {
        if first.index != snap_index + 1 {
            return Err(ServerError::Inconsistent(format!(
                "wal in {} starts at index {} but the newest snapshot is at {snap_index}",
                wal_dir.display(),
                first.index
            )));
        }
    }
    mem.wl().append(&entries)?;
    // The v2 store's view of the roles (3.5's membership), and the members the release starts
    // with: the backend's, reconciled with it as the release does (etcd 19557).
    let base = if snap_index > 0 {
        v2store::roles_of(snapshot.get_metadata().get_conf_state())
    } else {
        meta.cluster
            .members
            .iter()
            .map(|m| (m.id, m.is_learner))
            .collect()
    };
    let v2 = v2store::replay_roles(base, &entries, ci.max(contents.hard_state.commit));
    let mut meta = meta;
    let stored = load_members(store.backend()).map_err(crate::mvcc::MvccError::from)?;
    if !stored.is_empty() {
        meta.cluster.members = v2store::reconcile(release, stored, &v2, store.backend_mut());
        // raft's configuration as of the applied index is the member table's (the
        // snapshot's may be older); changes after it come again from the log.
        mem.wl().set_conf_state(initial_conf_state(&meta.cluster));
    }
    let mut hs = contents.hard_state;
    hs.commit = hs.commit.max(snap_index);
    // The WAL's commit index is saved without an fdatasync when only it changed, so after a
    // power loss the backend may have applied (hence the cluster committed) entries past it.
    // Entries the WAL holds up to the consistent index are committed; past its last index the
    // data dir contradicts itself (unless the backend came from a leader's snapshot).
    let last = mem.last_index()?;
    if ci > hs.commit {
        if ci <= last {
            hs.commit = ci;
        } else if snap_index == 0 {
            return Err(ServerError::Inconsistent(format!(
                "backend consistent index {ci} is ahead of the wal's last index {last}"
            )));
        }
    }
    let raft_applied = ci.min(hs.commit).max(snap_index);
    mem.wl().set_hardstate(hs);
    let mut meta_only = snapshot;
    meta_only.clear_data();
    let applied = Applied {
        raft: raft_applied,
        store: ci.max(raft_applied),
    };
    Ok((wal, mem, meta_only, meta.cluster, meta.member_id, applied))
}
