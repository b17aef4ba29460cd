//! etcd's Watch service: one bidirectional stream per client, many watchers per stream.
//!
//! Owns: a stream's watchers (ids, filters, prev_kv, progress_notify), turning the hub's
//! batches into `WatchResponse`s (etcd's serverWatchStream), created/canceled responses,
//! progress requests and periodic progress notifications.
//!
//! Must never: block the apply loop (the hub only `try_send`s to a stream), or send a
//! watcher's events before its `created` response.

use crate::etcdserver::EtcdServer;
use crate::mvcc::consts::event_type;
use crate::mvcc::watchable::{KeyRange, WatchBatch, WatchHub};
use etcd_client::proto::{
    PbRangeRequest, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService,
};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Batches queued per stream before its slowest watchers fall back to catch-up.
const STREAM_QUEUE: usize = 1024;
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
}

impl WatchApi {
    /// A Watch service over `server`'s watch hub.
    pub fn new(server: EtcdServer, hub: Arc<WatchHub>, progress_interval: Duration) -> Self {
        WatchApi {
            server,
            hub,
            progress_interval,
        }
    }
}

#[derive(Debug, Clone)]
struct WatcherOpts {
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
}

struct StreamCtx {
    server: EtcdServer,
    hub: Arc<WatchHub>,
    stream: u64,
    next_id: i64,
    watchers: BTreeMap<i64, WatcherOpts>,
    out: mpsc::Sender<Result<PbWatchResponse, Status>>,
}

#[tonic::async_trait]
impl PbWatchService for WatchApi {
    type WatchStream = ReceiverStream<Result<PbWatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let incoming = req.into_inner();
        let (out, out_rx) = mpsc::channel(STREAM_QUEUE);
        let ctx = StreamCtx {
            server: self.server.clone(),
            hub: self.hub.clone(),
            stream: self.hub.new_stream(),
            next_id: 0,
            watchers: BTreeMap::new(),
            out,
        };
        tokio::spawn(run_stream(ctx, incoming, self.progress_interval));
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }
}

async fn run_stream(
    mut ctx: StreamCtx,
    mut incoming: Streaming<PbWatchRequest>,
    progress_interval: Duration,
) {
    let (tx, mut batches) = mpsc::channel::<WatchBatch>(STREAM_QUEUE);
    let start = tokio::time::Instant::now() + progress_interval;
    let mut progress = tokio::time::interval_at(start, progress_interval);
    loop {
        let ok = tokio::select! {
            biased;
            req = incoming.next() => match req {
                Some(Ok(r)) => ctx.handle(r, &tx).await,
                _ => false,
            },
            Some(b) = batches.recv() => ctx.deliver(b).await,
            _ = progress.tick() => ctx.progress_notify().await,
        };
        if !ok {
            break;
        }
    }
    ctx.hub.remove_stream(ctx.stream);
}

impl StreamCtx {
    async fn send(&self, r: PbWatchResponse) -> bool {
        self.out.send(Ok(r)).await.is_ok()
    }

    fn header_now(&self) -> Option<etcd_client::proto::PbResponseHeader> {
        let rev = self.server.store().current_revision();
        Some(self.server.header(rev))
    }

    async fn handle(&mut self, r: PbWatchRequest, tx: &mpsc::Sender<WatchBatch>) -> bool {
        match r.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    while self.watchers.contains_key(&self.next_id) {
                        self.next_id += 1;
                    }
                    self.next_id
                };
                if self.watchers.contains_key(&id) || self.hub.contains(self.stream, id) {
                    let resp = PbWatchResponse {
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
                    },
                );
                let header = {
                    let store = self.server.store();
                    self.hub
                        .add(&store, self.stream, id, range, c.start_revision, tx.clone());
                    self.server.header(store.current_revision())
                };
                self.send(PbWatchResponse {
                    header: Some(header),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                })
                .await
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    self.hub.remove(self.stream, c.watch_id);
                    let resp = PbWatchResponse {
                        header: self.header_now(),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    return self.send(resp).await;
                }
                true
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                if self.hub.stream_synced(self.stream) {
                    let resp = PbWatchResponse {
                        header: self.header_now(),
                        watch_id: INVALID_WATCH_ID,
                        ..Default::default()
                    };
                    return self.send(resp).await;
                }
                true
            }
            None => true,
        }
    }

    /// Applies the watcher's filters and prev_kv, then sends.
    async fn deliver(&mut self, b: WatchBatch) -> bool {
        let Some(opts) = self.watchers.get(&b.watch_id).cloned() else {
            return true; // cancelled meanwhile
        };
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
        let resp = PbWatchResponse {
            header: Some(self.server.header(b.revision)),
            watch_id: b.watch_id,
            canceled,
            compact_revision: b.compact_revision,
            events,
            ..Default::default()
        };
        self.send(resp).await
    }

    /// The key's value just before the event (etcd reads it at mod_revision - 1; a compacted
    /// revision leaves it out).
    fn prev_kv(&self, ev: &etcd_client::proto::PbEvent) -> Option<etcd_client::proto::PbKeyValue> {
        let kv = ev.kv.as_ref()?;
        if kv.create_revision == kv.mod_revision && ev.r#type == event_type::PUT {
            return None; // a create has no previous value
        }
        let req = PbRangeRequest {
            key: kv.key.clone(),
            revision: kv.mod_revision - 1,
            ..Default::default()
        };
        let resp = self.server.store().range(&req).ok()?;
        resp.kvs.into_iter().next()
    }

    /// Periodic progress notification for watchers that asked for it, when all are synced.
    async fn progress_notify(&mut self) -> bool {
        if !self.hub.stream_synced(self.stream) {
            return true;
        }
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, o)| o.progress_notify)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let resp = PbWatchResponse {
                header: self.header_now(),
                watch_id: id,
                ..Default::default()
            };
            if !self.send(resp).await {
                return false;
            }
        }
        true
    }
}
