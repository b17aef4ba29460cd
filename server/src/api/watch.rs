//! etcd's Watch service: one bidirectional stream per client, many watchers per stream.
//!
//! Owns: a stream's watchers (ids, filters, prev_kv, progress_notify), turning the hub's
//! batches into `WatchResponse`s (etcd's serverWatchStream), created/canceled responses,
//! progress requests and periodic progress notifications, and splitting a response too large
//! for the client into fragments for watchers that asked for them (etcd's sendFragments).
//!
//! Must never: block the apply loop (the hub only `try_send`s to a stream), or send a
//! watcher's events before its `created` response.

use crate::etcdserver::EtcdServer;
use crate::mvcc::consts::event_type;
use crate::mvcc::watchable::{KeyRange, WatchBatch, WatchHub};
use etcd_api::etcdserverpb as pb;
use etcd_api::mvccpb;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Batches the watch registry queues for a stream before its watchers fall back to catching up
/// from the history (etcd's `chanBufLen`).
const STREAM_QUEUE: usize = 128;
/// Responses queued for the client before the stream stops taking batches: etcd sends events
/// straight to the gRPC stream and queues only control responses (its `ctrlStreamBufLen`).
const RESPONSE_QUEUE: usize = 16;
/// etcd's watch filter types.
const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;
/// `clientv3.InvalidWatchID`: the watch id of a stream-wide progress response.
const INVALID_WATCH_ID: i64 = -1;

/// The Watch service.
pub struct WatchApi {
    server: EtcdServer,
    hub: Arc<WatchHub>,
    progress_interval: Duration,
    fragment_limit: usize,
}

impl WatchApi {
    /// A Watch service over `server`'s watch hub.
    pub fn new(server: EtcdServer, hub: Arc<WatchHub>, progress_interval: Duration) -> Self {
        // etcd's watch server: maxRequestBytes plus the gRPC overhead.
        let fragment_limit =
            (server.config().max_request_bytes as usize).saturating_add(super::GRPC_OVERHEAD_BYTES);
        WatchApi {
            server,
            hub,
            progress_interval,
            fragment_limit,
        }
    }
}

#[derive(Debug, Clone)]
struct WatcherOpts {
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    /// Events went out since the last periodic tick: the next notification is elided (etcd's
    /// `sws.progress[id] = false` after a key update).
    progress_elided: bool,
    fragment: bool,
}

struct StreamCtx {
    server: EtcdServer,
    hub: Arc<WatchHub>,
    stream: u64,
    next_id: i64,
    watchers: BTreeMap<i64, WatcherOpts>,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    /// A response of at least this many bytes is split for watchers that asked for fragments.
    fragment_limit: usize,
    /// The `progress-bypasses-watch-queue` test defect (etcd 15220) is on.
    progress_bypasses_queue: bool,
}

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchApi {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let incoming = req.into_inner();
        let (out, out_rx) = mpsc::channel(RESPONSE_QUEUE);
        let ctx = StreamCtx {
            server: self.server.clone(),
            hub: self.hub.clone(),
            stream: self.hub.new_stream(),
            next_id: 0,
            watchers: BTreeMap::new(),
            out,
            fragment_limit: self.fragment_limit,
            progress_bypasses_queue: self
                .server
                .config()
                .has_defect(crate::defects::Defect::ProgressBypassesWatchQueue),
        };
        let stalled = self.server.failpoints().watch_sends();
        tokio::spawn(run_stream(ctx, incoming, self.progress_interval, stalled));
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }
}

/// One watch stream: its requests, and its batches and progress notifications turned into
/// responses. While `stalled` (the `watch-send` failpoint) holds, it takes requests but sends no
/// events or progress notifications, as etcd's sendLoop held up before a send.
async fn run_stream(
    mut ctx: StreamCtx,
    mut incoming: Streaming<pb::WatchRequest>,
    progress_interval: Duration,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    let (tx, mut batches) = mpsc::channel::<WatchBatch>(STREAM_QUEUE);
    let start = tokio::time::Instant::now() + progress_interval;
    let mut progress = tokio::time::interval_at(start, progress_interval);
    // Go's ticker: ticks missed while the stream could not send are dropped, not sent in a burst.
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A client's half-close (the end of its requests) leaves the stream open for events, as
    // etcd's recvLoop returns nil on io.EOF; only a receive error or a gone client ends it.
    let mut requests_open = true;
    let mut sending = !*stalled.borrow_and_update();
    let mut failpoint_open = true;
    loop {
        let ok = tokio::select! {
            biased;
            changed = stalled.changed(), if failpoint_open => {
                failpoint_open = changed.is_ok();
                sending = !*stalled.borrow_and_update();
                true
            }
            req = incoming.next(), if requests_open => match req {
                Some(Ok(r)) => ctx.handle(r, &tx).await,
                Some(Err(_)) => false,
                None => {
                    requests_open = false;
                    true
                }
            },
            Some(b) = batches.recv(), if sending => ctx.deliver(b).await,
            _ = progress.tick(), if sending => ctx.progress_notify().await,
            // The client is gone (its response stream dropped): nothing more to deliver.
            _ = ctx.out.closed() => false,
        };
        if !ok {
            break;
        }
    }
    ctx.hub.remove_stream(ctx.stream);
}

impl StreamCtx {
    async fn send(&self, r: pb::WatchResponse) -> bool {
        self.out.send(Ok(r)).await.is_ok()
    }

    fn header_now(&self) -> Option<pb::ResponseHeader> {
        let rev = self.server.store().current_revision();
        Some(self.server.header(rev))
    }

    async fn handle(&mut self, r: pb::WatchRequest, tx: &mpsc::Sender<WatchBatch>) -> bool {
        match r.request_union {
            Some(pb::watch_request::RequestUnion::CreateRequest(c)) => {
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    while self.watchers.contains_key(&self.next_id) {
                        self.next_id += 1;
                    }
                    self.next_id
                };
                if self.watchers.contains_key(&id) || self.hub.contains(self.stream, id) {
                    let resp = pb::WatchResponse {
                        header: self.header_now(),
                        watch_id: id,
                        created: true,
                        canceled: true,
                        cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream"
                            .into(),
                        ..Default::default()
                    };
                    return self.send(resp).await;
                }
                // etcd: an empty key means the smallest key; an end of "\0" means no end.
                let key = if c.key.is_empty() { vec![0] } else { c.key };
                let range = KeyRange {
                    key,
                    range_end: c.range_end,
                };
                self.watchers.insert(
                    id,
                    WatcherOpts {
                        no_put: c.filters.contains(&FILTER_NOPUT),
                        no_delete: c.filters.contains(&FILTER_NODELETE),
                        prev_kv: c.prev_kv,
                        progress_notify: c.progress_notify,
                        progress_elided: false,
                        fragment: c.fragment,
                    },
                );
                let header = {
                    let store = self.server.store();
                    self.hub
                        .add(&store, self.stream, id, range, c.start_revision, tx.clone());
                    self.server.header(store.current_revision())
                };
                self.send(pb::WatchResponse {
                    header: Some(header),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                })
                .await
            }
            Some(pb::watch_request::RequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    self.hub.remove(self.stream, c.watch_id);
                    let resp = pb::WatchResponse {
                        header: self.header_now(),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    return self.send(resp).await;
                }
                true
            }
            Some(pb::watch_request::RequestUnion::ProgressRequest(_)) => {
                self.request_progress(None, INVALID_WATCH_ID).await
            }
            None => true,
        }
    }

    /// A progress notification at the store's revision for the stream's watchers (`only`:
    /// one of them), queued behind their events. With etcd 15220's defect it goes straight
    /// to the client instead, at whatever revision the store has reached.
    async fn request_progress(&mut self, only: Option<i64>, response_id: i64) -> bool {
        if self.progress_bypasses_queue {
            if !self.hub.stream_synced(self.stream) {
                return true;
            }
            let resp = pb::WatchResponse {
                header: self.header_now(),
                watch_id: response_id,
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let store = self.server.store();
        self.hub
            .request_progress(&store, self.stream, only, response_id);
        true
    }

    /// Sends a batch from the hub: a progress notification as it is, events through the
    /// watcher's filters and prev_kv.
    async fn deliver(&mut self, b: WatchBatch) -> bool {
        if b.progress {
            let resp = pb::WatchResponse {
                header: Some(self.server.header(b.revision)),
                watch_id: b.watch_id,
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let Some(opts) = self.watchers.get_mut(&b.watch_id) else {
            return true; // cancelled meanwhile
        };
        opts.progress_elided |= !b.events.is_empty();
        let opts = opts.clone();
        let mut events = Vec::with_capacity(b.events.len());
        for mut ev in b.events {
            let is_put = ev.r#type == event_type::PUT;
            if (is_put && opts.no_put) || (!is_put && opts.no_delete) {
                continue;
            }
            if opts.prev_kv {
                ev.prev_kv = self.prev_kv(&ev);
            }
            events.push(ev);
        }
        let canceled = b.compact_revision != 0;
        if canceled {
            self.watchers.remove(&b.watch_id);
        } else if events.is_empty() {
            return true;
        }
        // etcd's compaction cancel carries no revision (mvcc sends it with Revision 0).
        let revision = if canceled { 0 } else { b.revision };
        let resp = pb::WatchResponse {
            header: Some(self.server.header(revision)),
            watch_id: b.watch_id,
            canceled,
            compact_revision: b.compact_revision,
            events,
            ..Default::default()
        };
        if !opts.fragment {
            return self.send(resp).await;
        }
        for part in fragments(resp, self.fragment_limit) {
            if !self.send(part).await {
                return false;
            }
        }
        true
    }

    /// The key's value just before the event (etcd reads it at mod_revision - 1; a compacted
    /// revision leaves it out).
    fn prev_kv(&self, ev: &mvccpb::Event) -> Option<mvccpb::KeyValue> {
        let kv = ev.kv.as_ref()?;
        if kv.create_revision == kv.mod_revision && ev.r#type == event_type::PUT {
            return None; // a create has no previous value
        }
        let req = pb::RangeRequest {
            key: kv.key.clone(),
            revision: kv.mod_revision - 1,
            ..Default::default()
        };
        let resp = self.server.store().range(&req).ok()?;
        resp.kvs.into_iter().next()
    }

    /// Periodic progress notifications, one per watcher that asked for them and got no events
    /// since the last tick, each sent only while that watcher is synced (etcd's
    /// progressTicker in sendLoop).
    async fn progress_notify(&mut self) -> bool {
        let mut due = Vec::new();
        for (id, o) in self.watchers.iter_mut().filter(|(_, o)| o.progress_notify) {
            if !o.progress_elided {
                due.push(*id);
            }
            o.progress_elided = false;
        }
        for id in due {
            if !self.request_progress(Some(id), id).await {
                return false;
            }
        }
        true
    }
}

/// `WatchResponse.events`' field number.
const EVENTS_FIELD: u32 = 11;

/// etcd's sendFragments: a response of at least `limit` encoded bytes with two or more events
/// is split into several, each filled with events until the next one would bring it to `limit`
/// (at least one event each); all but the last carry `fragment = true`.
fn fragments(resp: pb::WatchResponse, limit: usize) -> Vec<pb::WatchResponse> {
    use prost::Message as _;
    if resp.events.len() < 2 || resp.encoded_len() < limit {
        return vec![resp];
    }
    let mut base = resp;
    let events = std::mem::take(&mut base.events);
    base.fragment = true;
    let base_len = base.encoded_len();
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = base_len;
    for ev in events {
        let ev_len = prost::encoding::message::encoded_len(EVENTS_FIELD, &ev);
        if !cur.is_empty() && size + ev_len >= limit {
            out.push(pb::WatchResponse {
                events: std::mem::take(&mut cur),
                ..base.clone()
            });
            size = base_len;
        }
        size += ev_len;
        cur.push(ev);
    }
    out.push(pb::WatchResponse {
        events: cur,
        fragment: false,
        ..base
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn response(n: usize, value_len: usize) -> pb::WatchResponse {
        pb::WatchResponse {
            watch_id: 3,
            events: (0..n)
                .map(|i| mvccpb::Event {
                    r#type: event_type::PUT,
                    kv: Some(mvccpb::KeyValue {
                        key: format!("k{i:04}").into_bytes(),
                        value: vec![b'v'; value_len],
                        mod_revision: 9,
                        create_revision: 9,
                        version: 1,
                        lease: 0,
                    }),
                    prev_kv: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn small_or_single_event_responses_are_not_fragmented() {
        let r = response(10, 10);
        assert_eq!(fragments(r.clone(), r.encoded_len() + 1), vec![r]);
        let one = response(1, 10_000);
        assert_eq!(fragments(one.clone(), 100), vec![one]);
    }

    #[test]
    fn fragments_follow_etcd_send_fragments() {
        let r = response(50, 100);
        let limit = 1000;
        let parts = fragments(r.clone(), limit);
        assert!(parts.len() > 1, "{} parts", parts.len());
        let last = parts.len() - 1;
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.fragment, i != last);
            assert_eq!(p.watch_id, 3);
            assert!(!p.events.is_empty());
            // etcd's rule: below the limit, or a single event.
            let mut as_sent = p.clone();
            as_sent.fragment = true;
            assert!(as_sent.encoded_len() < limit || p.events.len() == 1);
            // ... and full: the next event would have reached the limit.
            if i != last {
                as_sent.events.push(parts[i + 1].events[0].clone());
                assert!(as_sent.encoded_len() >= limit);
            }
        }
        let all: Vec<mvccpb::Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(all, r.events);
        // Events bigger than the limit go one per fragment.
        let big = fragments(response(3, 5000), 1000);
        assert_eq!(
            big.iter().map(|p| p.events.len()).collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }
}
