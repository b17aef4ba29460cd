//! etcd's KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Owns: request validation, choosing the read path (ReadIndex for linearizable reads, local
//! for serializable ones and read-only txns after the barrier), proposing writes, and filling
//! response headers.
//!
//! Must never: apply a write outside raft.

use crate::etcdserver::request::{Op, OpResponse};
use crate::etcdserver::EtcdServer;
use crate::mvcc::{is_txn_readonly, validate_delete, validate_put, validate_range, validate_txn};
use etcd_api::etcdserverpb as pb;
use tonic::{Request, Response, Status};

/// The KV service.
pub struct KvApi {
    server: EtcdServer,
    skip_read_index: bool,
}

impl KvApi {
    /// A KV service over `server`.
    pub fn new(server: EtcdServer) -> Self {
        let skip_read_index = server
            .config()
            .has_defect(crate::defects::Defect::SkipReadIndex);
        KvApi {
            server,
            skip_read_index,
        }
    }

    /// etcd's learners serve serializable reads only.
    fn not_learner(&self) -> Result<(), Status> {
        if self.server.is_learner() {
            return Err(Status::unavailable(
                "etcdserver: rpc not supported for learner",
            ));
        }
        Ok(())
    }

    fn fill(&self, header: &mut Option<pb::ResponseHeader>) {
        let rev = header.as_ref().map(|h| h.revision).unwrap_or_default();
        *header = Some(self.server.header(rev));
    }
}

/// Whether every range of a read-only txn is serializable (etcd's isTxnSerializable).
fn txn_is_serializable(r: &pb::TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| match &op.request {
            Some(pb::request_op::Request::RequestRange(x)) => x.serializable,
            _ => true,
        })
}

/// Whether a txn may add data (a put in any branch), for the quota check.
fn txn_puts(r: &pb::TxnRequest) -> bool {
    r.success
        .iter()
        .chain(&r.failure)
        .any(|op| match &op.request {
            Some(pb::request_op::Request::RequestPut(_)) => true,
            Some(pb::request_op::Request::RequestTxn(t)) => txn_puts(t),
            _ => false,
        })
}

fn unexpected() -> Status {
    Status::internal("etcdserver: unexpected response type")
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvApi {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = req.into_inner();
        validate_range(&r)?;
        if !r.serializable && self.skip_read_index {
            // Deliberate defect (harness tests only): a local read answered as linearizable.
            self.not_learner()?;
        } else if !r.serializable {
            self.not_learner()?;
            self.server.linearizable_read().await?;
        }
        let mut resp = self.server.store().range(&r).map_err(|e| e.to_status())?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    type RangeStreamStream = futures::stream::Empty<Result<pb::RangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _req: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented(
            "etcdserver: RangeStream is not part of the etcd 3.5/3.6 API this server emulates",
        ))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let r = req.into_inner();
        self.not_learner()?;
        validate_put(&r)?;
        self.server.check_quota(r.key.len() + r.value.len())?;
        match self.server.propose(Op::Put(r)).await? {
            OpResponse::Put(mut resp) => {
                self.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = req.into_inner();
        self.not_learner()?;
        validate_delete(&r)?;
        match self.server.propose(Op::DeleteRange(r)).await? {
            OpResponse::DeleteRange(mut resp) => {
                self.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let r = req.into_inner();
        validate_txn(&r, self.server.config().max_txn_ops as usize)?;
        if !(is_txn_readonly(&r) && txn_is_serializable(&r)) {
            self.not_learner()?;
        }
        if is_txn_readonly(&r) {
            if !txn_is_serializable(&r) {
                self.server.linearizable_read().await?;
            }
            let resp = self
                .server
                .store()
                .read_txn(&r)
                .map_err(|e| e.to_status())?;
            if let Some(mut resp) = resp {
                self.fill(&mut resp.header);
                return Ok(Response::new(resp));
            }
        }
        if txn_puts(&r) {
            self.server.check_quota(prost::Message::encoded_len(&r))?;
        }
        match self.server.propose(Op::Txn(r)).await? {
            OpResponse::Txn(mut resp) => {
                self.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let r = req.into_inner();
        self.not_learner()?;
        match self.server.propose(Op::Compaction(r)).await? {
            OpResponse::Compaction(mut resp) => {
                self.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }
}
