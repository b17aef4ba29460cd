//! Peer transport: raft messages between members over gRPC (tonic, HTTP/2).
//!
//! Owns: one bounded outgoing queue and one sender task per peer (reconnecting with backoff),
//! and the inbound gRPC service that hands received messages to the raft loop.
//!
//! Must never: block the raft loop. A full queue or a broken connection drops the message and
//! reports the peer unreachable (as etcd's rafthttp does); raft retransmits what matters.

mod sender;

pub use sender::{channel_to, PeerSender};

use crate::membership::Cluster;
use crate::seam::Network;
use futures::StreamExt;
use raft::eraftpb::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Generated gRPC code for the peer transport (`api/proto/etcdsim/rafthttp.proto`).
pub use etcd_api::rafthttp as pb;

/// Outgoing queue length per peer (etcd's streamBufSize).
pub const PEER_QUEUE: usize = 4096;

/// Largest peer message we accept (snapshots travel inside messages).
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// What the transport tells the raft loop about peers.
#[derive(Debug)]
pub enum PeerReport {
    /// Sending to this peer failed (its queue is full); raft should probe it again.
    Unreachable(u64),
    /// The stream to this peer broke or could not be opened: it is unreachable and no longer
    /// active (etcd's peer status turns inactive).
    Disconnected(u64),
    /// A snapshot message was handed to the connection (true) or failed (false).
    Snapshot(u64, bool),
    /// A peer says this member was removed from the cluster.
    Removed,
}

/// All peers of this member.
#[derive(Debug)]
pub struct Transport {
    peers: BTreeMap<u64, PeerSender>,
    net: Arc<dyn Network>,
    reports: mpsc::UnboundedSender<PeerReport>,
}

impl Transport {
    /// Starts a sender task per peer (`id → host:port`).
    pub fn start(
        net: Arc<dyn Network>,
        peers: BTreeMap<u64, String>,
        reports: mpsc::UnboundedSender<PeerReport>,
    ) -> Transport {
        let mut t = Transport {
            peers: BTreeMap::new(),
            net,
            reports,
        };
        for (id, addr) in peers {
            t.add_peer(id, addr);
        }
        t
    }

    /// Starts sending to a new peer (replacing any sender it had).
    pub fn add_peer(&mut self, id: u64, addr: String) {
        let sender = PeerSender::start(id, addr, self.net.clone(), self.reports.clone());
        self.peers.insert(id, sender);
    }

    /// Stops sending to a removed peer (its task ends when its queue is dropped).
    pub fn remove_peer(&mut self, id: u64) {
        self.peers.remove(&id);
    }

    /// Whether `id` is a known peer.
    pub fn has_peer(&self, id: u64) -> bool {
        self.peers.contains_key(&id)
    }

    /// Queues messages without waiting; drops and reports on a full queue or unknown peer.
    pub fn send(&self, msgs: Vec<Message>, reports: &mpsc::UnboundedSender<PeerReport>) {
        for m in msgs {
            let to = m.to;
            let is_snap = m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
            let ok = match self.peers.get(&to) {
                Some(p) => p.try_send(m),
                None => false,
            };
            if !ok {
                // A closed report channel means the raft loop is gone: nothing left to tell.
                let _ = reports.send(PeerReport::Unreachable(to));
                if is_snap {
                    let _ = reports.send(PeerReport::Snapshot(to, false));
                }
            }
        }
    }
}

/// What a removed member is told when it sends (etcd's rafthttp answers 410 Gone).
pub const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";

/// The inbound side: decodes batches and forwards them to the raft loop.
#[derive(Debug, Clone)]
pub struct RaftService {
    inbound: mpsc::Sender<Message>,
    cluster: Arc<Mutex<Cluster>>,
}

impl RaftService {
    /// Messages go to `inbound` (the raft loop's receive queue); senders that `cluster` lists
    /// as removed are refused.
    pub fn new(inbound: mpsc::Sender<Message>, cluster: Arc<Mutex<Cluster>>) -> Self {
        RaftService { inbound, cluster }
    }

    fn is_removed(&self, id: u64) -> bool {
        self.cluster
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .removed
            .contains(&id)
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> pb::raft_server::RaftServer<Self> {
        pb::raft_server::RaftServer::new(self)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE)
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<pb::RaftBatch>>,
    ) -> Result<tonic::Response<pb::Empty>, tonic::Status> {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            for raw in batch.messages {
                let msg: Message = protobuf::Message::parse_from_bytes(&raw).map_err(|e| {
                    tonic::Status::invalid_argument(format!("bad raft message: {e}"))
                })?;
                if self.is_removed(msg.from) {
                    return Err(tonic::Status::failed_precondition(REMOVED_MESSAGE));
                }
                if self.inbound.send(msg).await.is_err() {
                    return Err(tonic::Status::unavailable("etcdserver: server stopped"));
                }
            }
        }
        Ok(tonic::Response::new(pb::Empty {}))
    }
}
