//! etcd's Maintenance service: Status, Alarm, Defragment, Hash, HashKV, Snapshot, MoveLeader.
//!
//! Owns: reporting this member's raft and backend state in etcd's Status form, alarm
//! activation/deactivation through raft, local maintenance (defragment, hashes, snapshot
//! stream), leadership transfer, and the gRPC health status around a defragmentation
//! (NOT_SERVING while it runs with the `StopGRPCServiceOnDefrag` gate, etcd's healthNotifier).
//!
//! Must never: report a value it does not know as if it knew it. Downgrade arrives with the
//! release-lines work and says so.

use crate::alarm;
use crate::etcdserver::request::{Op, OpResponse};
use crate::etcdserver::EtcdServer;
use etcd_api::etcdserverpb as pb;
use sha2::Digest as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Bytes per Snapshot message (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// The Maintenance service.
pub struct MaintenanceApi {
    server: EtcdServer,
    defrag_health: DefragHealth,
}

impl MaintenanceApi {
    /// A Maintenance service over `server`, reporting defragmentations through
    /// `defrag_health`.
    pub fn new(server: EtcdServer, defrag_health: DefragHealth) -> Self {
        MaintenanceApi {
            server,
            defrag_health,
        }
    }
}

/// etcd's healthNotifier: the grpc.health.v1 status of the client listener around a
/// defragmentation.
pub struct DefragHealth {
    reporter: tonic_health::server::HealthReporter,
    /// The `StopGRPCServiceOnDefrag` gate.
    stop_serving: bool,
}

impl DefragHealth {
    /// Reports through `reporter`; NOT_SERVING during a defragmentation if `stop_serving`.
    pub fn new(reporter: tonic_health::server::HealthReporter, stop_serving: bool) -> Self {
        DefragHealth {
            reporter,
            stop_serving,
        }
    }

    /// etcd's defragStarted: NOT_SERVING with the gate on.
    async fn started(&self) {
        if self.stop_serving {
            tracing::warn!(
                service = "",
                status = "NOT_SERVING",
                reason = "defrag is active",
                "grpc service status changed"
            );
            self.reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
    }

    /// etcd's defragFinished: SERVING again, after every defragmentation, gate or not.
    async fn finished(&self) {
        tracing::info!(
            service = "",
            status = "SERVING",
            "grpc service status changed"
        );
        self.reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceApi {
    async fn alarm(
        &self,
        r: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let r = r.into_inner();
        if r.action == alarm::ACTION_GET {
            let rev = self.server.store().current_revision();
            return Ok(Response::new(pb::AlarmResponse {
                header: Some(self.server.header(rev)),
                alarms: self.server.alarms().list(r.alarm),
            }));
        }
        if r.action != alarm::ACTION_ACTIVATE && r.action != alarm::ACTION_DEACTIVATE {
            return Err(Status::invalid_argument("etcdserver: invalid alarm action"));
        }
        match self.server.propose(Op::Alarm(r)).await? {
            OpResponse::Alarm(mut resp) => {
                let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or_default();
                resp.header = Some(self.server.header(rev));
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal("etcdserver: unexpected response type")),
        }
    }

    async fn status(
        &self,
        _r: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let st = self.server.status();
        let (rev, db_size, db_in_use) = {
            let store = self.server.store();
            (
                store.current_revision(),
                store.db_size(),
                store.db_size_in_use(),
            )
        };
        let quota = self.server.quota_bytes();
        let mut errors: Vec<String> = self
            .server
            .alarms()
            .list(0)
            .iter()
            .map(|a| {
                format!(
                    "memberID:{} alarm:{}",
                    a.member_id,
                    alarm::alarm_name(a.alarm)
                )
            })
            .collect();
        if st.leader == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.server.header(rev)),
            version: self.server.release().to_string(),
            db_size,
            leader: st.leader,
            raft_index: st.commit,
            raft_term: st.term,
            raft_applied_index: st.applied,
            errors,
            db_size_in_use: db_in_use,
            is_learner: false,
            storage_version: storage_version(&self.server),
            db_size_quota: quota,
            // 3.5's StatusResponse has no downgrade field; 3.6 always sets it.
            downgrade_info: (!self.server.release().is_3_5()).then(|| pb::DowngradeInfo {
                enabled: self.server.downgrade_target().is_some(),
                target_version: self
                    .server
                    .downgrade_target()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            }),
        }))
    }

    async fn defragment(
        &self,
        _r: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        tracing::info!("starting defragment");
        self.defrag_health.started().await;
        let done = self.server.store().backend_mut().defragment();
        self.defrag_health.finished().await;
        done.map_err(|e| {
            tracing::warn!(error = %e, "failed to defragment");
            Status::internal(format!("etcdserver: defragment: {e}"))
        })?;
        tracing::info!("finished defragment");
        // etcd answers an empty DefragmentResponse, without a header.
        Ok(Response::new(pb::DefragmentResponse { header: None }))
    }

    async fn hash(
        &self,
        _r: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        // etcd hashes the whole backend file; ours is the CRC-32C of every bucket's content.
        let (data, rev) = {
            let store = self.server.store();
            let data = store.snapshot_data().map_err(|e| e.to_status())?;
            (data, store.current_revision())
        };
        Ok(Response::new(pb::HashResponse {
            header: Some(self.server.header(rev)),
            hash: crc32c::crc32c(&data),
        }))
    }

    async fn hash_kv(
        &self,
        r: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let rev = r.into_inner().revision;
        let (hash, current, compact) = self
            .server
            .store()
            .hash_kv(rev)
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.server.header(current)),
            hash,
            compact_revision: compact.max(0),
            hash_revision: if rev == 0 { current } else { rev },
        }))
    }

    type SnapshotStream = ReceiverStream<Result<pb::SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _r: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let (data, rev) = {
            let store = self.server.store();
            let data = store.snapshot_data().map_err(|e| e.to_status())?;
            (data, store.current_revision())
        };
        // etcd streams a database of whole 512-byte pages followed by its SHA-256; etcdctl
        // checks that shape. Pad our dump to whole pages (trailing zeros), then append the hash.
        let mut data = data;
        data.resize(data.len().div_ceil(512) * 512, 0);
        let digest = sha2::Sha256::digest(&data);
        data.extend_from_slice(&digest);
        let header = self.server.header(rev);
        let version = storage_version(&self.server);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let total = data.len();
            let mut sent = 0;
            for chunk in data.chunks(SNAPSHOT_CHUNK) {
                sent += chunk.len();
                let resp = pb::SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - sent) as u64,
                    blob: chunk.to_vec(),
                    version: version.clone(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(
        &self,
        r: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = r.into_inner().target_id;
        let st = self.server.status();
        if !st.is_leader {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        if self.server.cluster().member(target).is_none() {
            return Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            ));
        }
        if target != st.leader {
            self.server.move_leader(target).await?;
        }
        let rev = self.server.store().current_revision();
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(self.server.header(rev)),
        }))
    }

    async fn downgrade(
        &self,
        r: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        crate::etcdserver::version::downgrade(&self.server, r.into_inner())
            .await
            .map(Response::new)
    }
}

/// The storage version as Status and Snapshot carry it: `3.6.0`, empty when the data has none.
fn storage_version(server: &EtcdServer) -> String {
    server
        .storage_version()
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::DefragHealth;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;

    async fn status(service: &impl tonic_health::pb::health_server::Health) -> ServingStatus {
        let req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        let resp = service.check(req).await.expect("check");
        resp.into_inner().status()
    }

    #[tokio::test]
    async fn the_gate_makes_the_health_service_not_serving_during_a_defragmentation() {
        for (gate, during) in [
            (true, ServingStatus::NotServing),
            (false, ServingStatus::Serving),
        ] {
            let (reporter, _) = tonic_health::server::health_reporter();
            let service =
                tonic_health::server::HealthService::from_health_reporter(reporter.clone());
            let health = DefragHealth::new(reporter, gate);
            assert_eq!(status(&service).await, ServingStatus::Serving);
            health.started().await;
            assert_eq!(status(&service).await, during, "gate {gate}");
            health.finished().await;
            assert_eq!(status(&service).await, ServingStatus::Serving);
        }
    }
}
