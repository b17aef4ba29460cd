//! etcd's Maintenance service: Status and Alarm now; the rest arrives with the maintenance issue.
//!
//! Owns: reporting this member's raft and backend state in etcd's Status form.
//!
//! Must never: report a value it does not know as if it knew it.

use crate::etcdserver::EtcdServer;
use crate::version;
use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse,
    PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use tonic::{Request, Response, Status};

/// The Maintenance service.
pub struct MaintenanceApi {
    server: EtcdServer,
}

impl MaintenanceApi {
    /// A Maintenance service over `server`.
    pub fn new(server: EtcdServer) -> Self {
        MaintenanceApi { server }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "etcdserver: {what} is not supported by this server yet"
    ))
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceApi {
    async fn alarm(&self, r: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        // action 0 = GET. No alarm can be raised yet (quota arrives with the maintenance issue),
        // so the list is truthfully empty; activating or deactivating is not supported yet.
        if r.into_inner().action != 0 {
            return Err(not_yet("alarm activate/deactivate"));
        }
        let rev = self.server.store().current_revision();
        Ok(Response::new(PbAlarmResponse {
            header: Some(self.server.header(rev)),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _r: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let st = self.server.status();
        let (rev, db_size, db_in_use) = {
            let store = self.server.store();
            (
                store.current_revision(),
                store.db_size(),
                store.db_size_in_use(),
            )
        };
        let quota = match self.server.config().quota_backend_bytes {
            0 => 2 * 1024 * 1024 * 1024,
            q => q as i64,
        };
        let mut errors = Vec::new();
        if st.leader == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        Ok(Response::new(PbStatusResponse {
            header: Some(self.server.header(rev)),
            version: version::SERVER_VERSION.to_string(),
            db_size,
            leader: st.leader,
            raft_index: st.commit,
            raft_term: st.term,
            raft_applied_index: st.applied,
            errors,
            db_size_in_use: db_in_use,
            is_learner: false,
            storage_version: version::STORAGE_VERSION.to_string(),
            db_size_quota: quota,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        _r: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        Err(not_yet("defragment"))
    }

    async fn hash(&self, _r: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(not_yet("hash"))
    }

    async fn hash_kv(
        &self,
        _r: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        Err(not_yet("hashkv"))
    }

    type SnapshotStream = futures::stream::Empty<Result<PbSnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _r: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_yet("snapshot"))
    }

    async fn move_leader(
        &self,
        _r: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(not_yet("move-leader"))
    }

    async fn downgrade(
        &self,
        _r: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(not_yet("downgrade"))
    }
}
