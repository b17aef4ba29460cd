//! Lease clients: each grants short leases, attaches one key to each, keeps the lease alive a
//! few times (or for the whole run), then lets it expire, reading the key to see when it dies.
//!
//! Owns: [`LeasePlan`], the lease client loop, its [`LeaseLog`]s, and the history records it
//! adds: grant, put, reads (all linearizable, checked with the rest) and, for every lease that
//! may exist, a `LeaseExpire` event with an unknown outcome from the grant's call on (expiry is
//! the server's decision: it may happen at any time after the grant, or not in the run).
//!
//! Must never: reuse a lease id or a value, or record a refresh the server did not confirm.

use super::{Stop, OP_TIMEOUT};
use crate::exec::{execute_recorded, Issuer};
use crate::history::{now_us, LeaseLog, Record, Recorder};
use linearizability::models::etcd::{
    EtcdRequest, EtcdResponse, KeyRange, OpResult, PutRequest, RangeRequest,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sim::ClientCtx;
use std::time::Duration;

/// Key prefix of the lease clients.
pub const PREFIX: &str = "/lease/";
/// Client ids of lease clients (`+ 10 000 × index + incarnation`), apart from the traffic's.
const LEASE_CLIENT_IDS: u64 = 1_000_000;
/// Client ids of the expiry events (`+ 10 000 × index + lease number`).
const EXPIRY_IDS: u64 = 2_000_000;
/// How often a key whose lease was let go is read.
const POLL: Duration = Duration::from_millis(250);

/// What the lease clients do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeasePlan {
    /// Lease clients (each holds one lease at a time).
    pub clients: usize,
    /// TTLs drawn in this range (s).
    pub ttl_s: (i64, i64),
    /// Keep-alives (every TTL/3) before the lease is let go, drawn in `0..=keepalives`.
    pub keepalives: u32,
    /// Keep every lease alive until the end of the run instead (and read its key each time).
    pub hold: bool,
}

impl Default for LeasePlan {
    fn default() -> Self {
        LeasePlan {
            clients: 0,
            ttl_s: (2, 5),
            keepalives: 2,
            hold: false,
        }
    }
}

struct LeaseClient {
    cx: ClientCtx,
    index: u64,
    members: Vec<String>,
    at: usize,
    client_id: u64,
    incarnation: u64,
    rec: Recorder,
}

impl LeaseClient {
    fn member(&self) -> String {
        self.members[self.at % self.members.len()].clone()
    }

    /// Runs `req` on the current member, recorded; moves on (new client id, next member) after
    /// an unknown outcome.
    async fn exec(&mut self, req: EtcdRequest, kind: &'static str) -> Record {
        let member = self.member();
        let record = match self.cx.client(&member) {
            Ok(mut c) => {
                let by = Issuer {
                    client: self.client_id,
                    host: self.cx.name(),
                    member: &member,
                    kind,
                };
                execute_recorded(&mut c, req, false, OP_TIMEOUT, by).await
            }
            Err(e) => Record {
                client: self.client_id,
                host: self.cx.name().to_string(),
                member: member.clone(),
                kind: kind.to_string(),
                call_us: now_us(),
                ret_us: now_us(),
                serializable: false,
                request: req,
                response: None,
                error: Some(e),
                refused: false,
            },
        };
        if record.response.is_none() {
            self.incarnation += 1;
            self.client_id = LEASE_CLIENT_IDS + self.index * 10_000 + self.incarnation;
            self.at += 1;
        }
        self.rec.records.borrow_mut().push(record.clone());
        record
    }

    /// One keep-alive; the TTL the server answered (> 0: refreshed).
    async fn keep_alive(&mut self, id: i64) -> Option<i64> {
        let member = self.member();
        let mut c = self.cx.client(&member).ok()?;
        let once = async {
            // The stream opens with the keep-alive; one answer is all we wait for.
            let mut stream = c.keep_alive(id).await.ok()?;
            stream
                .responses
                .message()
                .await
                .ok()
                .flatten()
                .map(|r| r.ttl)
        };
        match tokio::time::timeout(OP_TIMEOUT, once).await {
            Ok(Some(ttl)) => Some(ttl),
            _ => {
                self.at += 1;
                None
            }
        }
    }

    /// A linearizable read of `key`: (call, return, present) if answered.
    async fn read(&mut self, key: &str) -> Option<(u64, u64, bool)> {
        let req = EtcdRequest::Range(RangeRequest {
            range: KeyRange::key(key.to_string()),
            ..Default::default()
        });
        let r = self.exec(req, "lease-read").await;
        match r.response {
            Some(EtcdResponse::Ok {
                result: OpResult::Range(rr),
                ..
            }) => Some((r.call_us, r.ret_us, !rr.kvs.is_empty())),
            _ => None,
        }
    }
}

/// Runs lease client `index` until `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cx: ClientCtx,
    index: u64,
    members: Vec<String>,
    plan: LeasePlan,
    mut rng: ChaCha8Rng,
    rec: Recorder,
    stop: Stop,
) {
    let at = rng.gen_range(0..members.len().max(1));
    let mut lc = LeaseClient {
        cx,
        index,
        members,
        at,
        client_id: LEASE_CLIENT_IDS + index * 10_000,
        incarnation: 0,
        rec: rec.clone(),
    };
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1_000))).await;
    let mut n = 0i64;
    while !stop.stopped() {
        n += 1;
        let id = ((300 + index as i64) << 32) | n;
        let ttl = rng.gen_range(plan.ttl_s.0..=plan.ttl_s.1);
        let key = format!("{PREFIX}c{index}-{n}");
        let grant = lc
            .exec(EtcdRequest::LeaseGrant { id, ttl }, "lease-grant")
            .await;
        let granted = match &grant.response {
            Some(EtcdResponse::Ok {
                result: OpResult::LeaseGrant { ttl, .. },
                ..
            }) => Some(*ttl),
            Some(_) => continue, // a definite error: no lease
            None => None,
        };
        let mut log = LeaseLog {
            id,
            key: key.clone(),
            ttl: granted.unwrap_or(ttl),
            ..Default::default()
        };
        if granted.is_some() {
            log.refreshes.push((grant.call_us, grant.ret_us));
            let put = PutRequest {
                key: key.clone(),
                value: format!("l{index}-{n}"),
                lease: id,
                prev_kv: false,
            };
            let r = lc.exec(EtcdRequest::Put(put), "lease-put").await;
            log.attached = matches!(r.response, Some(EtcdResponse::Ok { .. }));
            let period = Duration::from_millis((log.ttl as u64 * 1000 / 3).max(100));
            let mut left = rng.gen_range(0..=plan.keepalives);
            while (plan.hold || left > 0) && !stop.stopped() {
                left = left.saturating_sub(1);
                tokio::time::sleep(period).await;
                let call = now_us();
                if let Some(t) = lc.keep_alive(id).await {
                    if t > 0 {
                        log.refreshes.push((call, now_us()));
                    }
                }
                if plan.hold {
                    if let Some(obs) = lc.read(&key).await {
                        log.reads.push(obs);
                    }
                }
            }
            // Let it go: read until the key is gone.
            let deadline = now_us() + (log.ttl as u64 * 2_000_000) + 10_000_000;
            while !plan.hold && !stop.stopped() && now_us() < deadline {
                if let Some(obs) = lc.read(&key).await {
                    log.reads.push(obs);
                    if !obs.2 {
                        break;
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        }
        // The server may expire the lease at any time after the grant.
        rec.records.borrow_mut().push(Record {
            client: EXPIRY_IDS + index * 10_000 + n as u64,
            host: lc.cx.name().to_string(),
            member: String::new(),
            kind: "lease-expiry".into(),
            call_us: grant.call_us,
            ret_us: now_us(),
            serializable: false,
            request: EtcdRequest::LeaseExpire { id },
            response: None,
            error: Some("expiry is the server's decision: at any time after the grant".into()),
            refused: false,
        });
        rec.leases.borrow_mut().push(log);
    }
}
