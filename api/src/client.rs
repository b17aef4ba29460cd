//! A native etcd v3 client over one tonic [`Channel`]: etcd's five client services side by side,
//! and the two bidirectional streams (watch, lease keep-alive) opened with their sending half.
//!
//! Owns: how a channel becomes clients (message size limits as etcd's clientv3: it accepts
//! responses up to `math.MaxInt32` bytes) and how a bidirectional stream is opened.
//!
//! Must never: retry, pick endpoints or hide a `Status`: callers see each RPC's outcome exactly
//! as the server sent it, which is what a history checker needs.

use crate::etcdserverpb as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// Largest response accepted (etcd clientv3's default `MaxCallRecvMsgSize`, `math.MaxInt32`).
pub const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// Requests queued on an open stream before `send` waits.
const STREAM_QUEUE: usize = 64;

/// etcd's client services on one channel.
#[derive(Debug, Clone)]
pub struct Client {
    /// Range, Put, DeleteRange, Txn, Compact.
    pub kv: pb::kv_client::KvClient<Channel>,
    /// Watch (bidirectional; see [`Client::watch`]).
    pub watch: pb::watch_client::WatchClient<Channel>,
    /// Grant, revoke, keep-alive (see [`Client::keep_alive`]), time-to-live, leases.
    pub lease: pb::lease_client::LeaseClient<Channel>,
    /// Member list/add/remove/update/promote.
    pub cluster: pb::cluster_client::ClusterClient<Channel>,
    /// Status, alarms, defragment, hashes, snapshot, move-leader, downgrade.
    pub maintenance: pb::maintenance_client::MaintenanceClient<Channel>,
}

/// The sending half of a bidirectional stream and the responses coming back.
pub struct BidiStream<Req, Resp> {
    /// Send further requests on the stream; dropping it closes the client's side.
    pub requests: mpsc::Sender<Req>,
    /// The server's responses, in order.
    pub responses: Streaming<Resp>,
}

impl Client {
    /// Clients on `channel` (connected or lazy).
    pub fn new(channel: Channel) -> Self {
        Client {
            kv: pb::kv_client::KvClient::new(channel.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: pb::watch_client::WatchClient::new(channel.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: pb::lease_client::LeaseClient::new(channel.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            cluster: pb::cluster_client::ClusterClient::new(channel.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            maintenance: pb::maintenance_client::MaintenanceClient::new(channel)
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
        }
    }

    /// Connects to `endpoint` over TCP: `http://host:port`, or `host:port` as etcdctl's
    /// `--endpoints` takes it.
    pub async fn connect(endpoint: &str) -> Result<Self, tonic::transport::Error> {
        let url = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = tonic::transport::Endpoint::from_shared(url)?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(Client::new(channel))
    }

    /// Opens a watch stream whose first request is `create` (usually a `CreateRequest`).
    pub async fn watch(
        &mut self,
        create: pb::WatchRequest,
    ) -> Result<BidiStream<pb::WatchRequest, pb::WatchResponse>, Status> {
        let (requests, outbound) = open_outbound(create);
        let responses = self.watch.watch(outbound).await?.into_inner();
        Ok(BidiStream {
            requests,
            responses,
        })
    }

    /// Opens a keep-alive stream for lease `id`, sending the first keep-alive at once.
    pub async fn keep_alive(
        &mut self,
        id: i64,
    ) -> Result<BidiStream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>, Status> {
        let (requests, outbound) = open_outbound(pb::LeaseKeepAliveRequest { id });
        let responses = self.lease.lease_keep_alive(outbound).await?.into_inner();
        Ok(BidiStream {
            requests,
            responses,
        })
    }
}

/// A request stream that starts with `first`, and the sender for the rest.
fn open_outbound<T: Send + 'static>(first: T) -> (mpsc::Sender<T>, ReceiverStream<T>) {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    // The queue is fresh and has room, so this cannot fail.
    let _ = tx.try_send(first);
    (tx, ReceiverStream::new(rx))
}

/// A put of `value` at `key`, nothing else asked.
pub fn put_request(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// A linearizable read of the one key `key`.
pub fn range_request(key: impl Into<Vec<u8>>) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

/// A linearizable read of every key that starts with `prefix` (etcdctl's `get --prefix`).
pub fn prefix_range_request(prefix: impl Into<Vec<u8>>) -> pb::RangeRequest {
    let key = prefix.into();
    pb::RangeRequest {
        range_end: prefix_range_end(&key),
        key,
        ..Default::default()
    }
}

/// The key range etcd means by "every key with this prefix": the prefix with its last byte
/// below 0xff incremented, trailing 0xff bytes dropped; all keys (`"\0"`) when none is.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_range_end;

    #[test]
    fn prefix_range_end_is_etcds_get_prefix_range_end() {
        assert_eq!(prefix_range_end(b"/a"), b"/b");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_range_end(b""), vec![0]);
    }
}
