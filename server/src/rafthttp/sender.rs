//! One peer's outgoing queue and the task that streams it over gRPC.
//!
//! Owns: the connection to one peer, reconnecting with backoff after any failure.
//!
//! Must never: wait on the raft loop, or keep more than `PEER_QUEUE` messages.

use super::{pb, PeerReport, MAX_PEER_MESSAGE, PEER_QUEUE};
use crate::seam::Network;
use hyper_util::rt::TokioIo;
use raft::eraftpb::{Message, MessageType};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Most messages put in one gRPC frame.
const MAX_BATCH: usize = 256;
/// Wait before reconnecting to a failed peer.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// The handle the transport keeps for one peer.
#[derive(Debug)]
pub struct PeerSender {
    queue: mpsc::Sender<Message>,
}

impl PeerSender {
    /// Spawns the sender task for peer `id` at `addr` (`host:port`).
    pub fn start(
        id: u64,
        addr: String,
        net: Arc<dyn Network>,
        reports: mpsc::UnboundedSender<PeerReport>,
    ) -> PeerSender {
        let (queue, rx) = mpsc::channel(PEER_QUEUE);
        tokio::spawn(run(id, addr, net, rx, reports));
        PeerSender { queue }
    }

    /// Queues a message; false if the queue is full or the task has ended.
    pub fn try_send(&self, m: Message) -> bool {
        self.queue.try_send(m).is_ok()
    }
}

/// A tonic channel whose connections go through the seam's network.
pub fn channel_to(net: Arc<dyn Network>, addr: &str) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    let target = addr.to_string();
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri| {
            let net = net.clone();
            let target = target.clone();
            async move { net.connect(&target).await.map(TokioIo::new) }
        })),
    )
}

async fn run(
    id: u64,
    addr: String,
    net: Arc<dyn Network>,
    mut rx: mpsc::Receiver<Message>,
    reports: mpsc::UnboundedSender<PeerReport>,
) {
    let channel = match channel_to(net, &addr) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(peer = %format!("{id:x}"), error = %e, "cannot create peer channel");
            return;
        }
    };
    loop {
        let mut client = pb::raft_client::RaftClient::new(channel.clone())
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let (tx, srx) = mpsc::channel::<pb::RaftBatch>(16);
        let mut call = tokio::spawn(async move { client.stream(ReceiverStream::new(srx)).await });
        loop {
            tokio::select! {
                first = rx.recv() => {
                    let Some(first) = first else { return };
                    let mut msgs = vec![first];
                    while msgs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(m) => msgs.push(m),
                            Err(_) => break,
                        }
                    }
                    let snaps: Vec<u64> = msgs
                        .iter()
                        .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
                        .map(|m| m.to)
                        .collect();
                    let mut batch = pb::RaftBatch { messages: Vec::with_capacity(msgs.len()) };
                    for m in &msgs {
                        match protobuf::Message::write_to_bytes(m) {
                            Ok(b) => batch.messages.push(b),
                            Err(e) => tracing::error!(error = %e, "cannot encode raft message"),
                        }
                    }
                    let sent = tx.send(batch).await.is_ok();
                    for to in snaps {
                        let _ = reports.send(PeerReport::Snapshot(to, sent));
                    }
                    if !sent {
                        break;
                    }
                }
                res = &mut call => {
                    if let Ok(Err(status)) = &res {
                        if status.message() == super::REMOVED_MESSAGE {
                            let _ = reports.send(PeerReport::Removed);
                            return;
                        }
                    }
                    tracing::debug!(peer = %format!("{id:x}"), result = ?res.map(|r| r.map(|_| ())), "peer stream ended");
                    break;
                }
            }
        }
        call.abort();
        let _ = reports.send(PeerReport::Disconnected(id));
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}
