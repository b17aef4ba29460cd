//! The operator: what an etcd operator does to a running cluster in a fault schedule —
//! compaction, defragmentation, recovering from NOSPACE (compact, defrag every member, disarm),
//! replacing a member, adding a learner and promoting it — run on client hosts through the real
//! Cluster and Maintenance APIs over the simulated network.
//!
//! Owns: starting an action's host for a schedule entry ([`start`], with the [`OpContext`] the
//! runner keeps), each action's steps and retries, the [`WorldChanges`] queue through which an action
//! asks the driver to start a joining member or retire a removed one (the driver applies them
//! between steps), and the operator log (`Recorder::operator`). Compactions are recorded in the
//! client history (they change what reads may return); the other actions only in the log.
//!
//! Must never: act on the world from inside a host (only through [`WorldChanges`]), or report
//! an action as done before the server acknowledged it.

use crate::cluster::{host as host_fn, Cluster};
use crate::exec::{execute_recorded, prefix_end, Issuer};
use crate::history::Recorder;
use crate::nemesis::{label, resolve, FaultKind, ScheduledFault};
use crate::workload::OP_TIMEOUT;
use anyhow::Context;
use etcd_api::client::Client;
use etcd_api::etcdserverpb as pb;
use linearizability::models::etcd::{EtcdRequest, EtcdResponse};
use rand_chacha::ChaCha8Rng;
use sim::ClientCtx;
use sim::Fault;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// How long an action keeps retrying (simulated time).
pub const ACTION_DEADLINE: Duration = Duration::from_secs(30);
/// How long a health probe waits for its answer (simulated time).
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between attempts.
const RETRY: Duration = Duration::from_millis(500);

/// A change to the world an operator action needs from the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldChange {
    /// Start a new member that joins the running cluster.
    Start {
        /// Its name.
        name: String,
        /// Extra flags.
        flags: Vec<String>,
    },
    /// Stop a removed member for good.
    Retire(String),
}

/// The queue of world changes, shared by operator hosts and the driver.
#[derive(Debug, Clone, Default)]
pub struct WorldChanges(Rc<RefCell<VecDeque<WorldChange>>>);

impl WorldChanges {
    /// Asks the driver for a change.
    pub fn push(&self, c: WorldChange) {
        self.0.borrow_mut().push_back(c);
    }
    /// Takes every pending change.
    pub fn drain(&self) -> Vec<WorldChange> {
        self.0.borrow_mut().drain(..).collect()
    }
}

/// What an operator host needs.
#[derive(Clone)]
pub struct Operator {
    /// The host's context.
    pub cx: ClientCtx,
    /// Members to talk to (the simulation's members when the action started).
    pub members: Vec<String>,
    /// Where history and log go.
    pub rec: Recorder,
    /// Requests to the driver.
    pub changes: WorldChanges,
    /// Client id for recorded requests.
    pub client_id: u64,
}

/// What operator actions need from the runner: where to record, how to ask for world
/// changes, and the names handed out so far.
#[derive(Debug, Clone)]
pub struct OpContext {
    /// The run's recorder.
    pub rec: Recorder,
    /// Requests to the driver (start a member, retire one).
    pub changes: WorldChanges,
    /// Index of the next new member (`m{next_member}`).
    pub next_member: usize,
    /// Operator hosts started (the runner waits for them).
    pub hosts: Vec<String>,
}

/// Starts operator host `op{index}` running `action`.
fn operate<F, Fut>(
    s: &mut dyn Cluster,
    ctx: &mut OpContext,
    index: usize,
    action: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Operator) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let host = format!("op{index}");
    let (rec, changes, members) = (ctx.rec.clone(), ctx.changes.clone(), s.member_names());
    s.spawn_host(
        &host,
        host_fn(move |cx| {
            action(Operator {
                cx,
                members,
                rec,
                changes,
                client_id: 3_000_000 + index as u64,
            })
        }),
    )
    .with_context(|| format!("start operator host {host}"))?;
    ctx.hosts.push(host);
    Ok(())
}

/// Starts the operator action of schedule entry `index` on host `op{index}`; returns what it
/// is and the faults to apply now and at the end of its window.
pub fn start(
    s: &mut dyn Cluster,
    f: &ScheduledFault,
    index: usize,
    rng: &mut ChaCha8Rng,
    ctx: &mut OpContext,
) -> anyhow::Result<(String, Vec<Fault>, Vec<Fault>)> {
    Ok(match &f.fault {
        FaultKind::Compact { behind } => {
            let behind = *behind;
            operate(
                s,
                ctx,
                index,
                move |op| async move { op.compact(behind).await },
            )?;
            (format!("compact {behind} revisions behind"), vec![], vec![])
        }
        FaultKind::Defrag { node } => {
            let n = resolve(s, node, rng, &[]);
            let what = format!("defragment {}", label(node, &n));
            operate(s, ctx, index, move |op| async move { op.defrag(&n).await })?;
            (what, vec![], vec![])
        }
        FaultKind::RecoverNospace => {
            operate(
                s,
                ctx,
                index,
                |op| async move { op.recover_nospace().await },
            )?;
            (
                "NOSPACE runbook: compact, defragment, disarm".to_string(),
                vec![],
                vec![],
            )
        }
        FaultKind::ReplaceMember { node } => {
            let old = resolve(s, node, rng, &[]);
            let new = format!("m{}", ctx.next_member);
            ctx.next_member += 1;
            let what = format!("replace {} with {new}", label(node, &old));
            operate(s, ctx, index, move |op| async move {
                op.replace(&old, &new).await
            })?;
            (what, vec![], vec![])
        }
        FaultKind::AddLearnerCutOff => {
            let new = format!("m{}", ctx.next_member);
            ctx.next_member += 1;
            let what = format!("add learner {new}, cut off; promote until it succeeds");
            let cut = Fault::Isolate(new.clone());
            let deadline = Duration::from_millis(f.duration_ms) + ACTION_DEADLINE;
            let name = new.clone();
            operate(s, ctx, index, move |op| async move {
                if op.add(&name, true, &[]).await {
                    op.promote(&name, deadline).await;
                }
            })?;
            (what, vec![cut], vec![Fault::Heal])
        }
        FaultKind::ProbeHealth { node, path } => {
            let n = resolve(s, node, rng, &[]);
            let what = format!("GET {path} on {}", label(node, &n));
            let path = path.clone();
            operate(s, ctx, index, move |op| async move {
                op.probe_health(&n, &path).await
            })?;
            (what, vec![], vec![])
        }
        FaultKind::Downgrade { action, version } => {
            let what = match action.as_str() {
                "cancel" => "downgrade cancel".to_string(),
                a => format!("downgrade {a} {version}"),
            };
            let (action, version) = (action.clone(), version.clone());
            operate(s, ctx, index, move |op| async move {
                op.downgrade(&action, &version).await
            })?;
            (what, vec![], vec![])
        }
        other => anyhow::bail!("not an operator action: {other:?}"),
    })
}

/// An answer that says no, as opposed to one that says "not now" (no leader, timeout, a
/// member stopping or unreachable).
fn is_refusal(e: &str) -> bool {
    let transient = [
        "timed out",
        "no leader",
        "leader changed",
        "stopped",
        "transport",
    ];
    e.starts_with("etcdserver: ") && !transient.iter().any(|t| e.contains(t))
}

/// Runs one RPC with the operator's timeout; an error is the server's message.
async fn timed<T>(
    f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) if status.message().is_empty() => Err(status.code().to_string()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("timed out after {OP_TIMEOUT:?}")),
    }
}

impl Operator {
    async fn client(&self, member: &str) -> Result<Client, String> {
        self.cx.client(member)
    }

    /// Runs `f` against each member in turn (skipping `avoid`) until one succeeds or the
    /// deadline passes; returns the member that answered and the result.
    async fn on_any<T, F, Fut>(&self, avoid: &[String], mut f: F) -> Result<(String, T), String>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + ACTION_DEADLINE;
        // Each member's last answer: the failure names them all (a refusal by the leader is
        // not hidden behind a transport error from a dead member).
        let mut last: std::collections::BTreeMap<String, String> = Default::default();
        loop {
            for m in self.members.iter().filter(|m| !avoid.contains(m)) {
                match self.client(m).await {
                    Ok(c) => match f(c).await {
                        Ok(t) => return Ok((m.clone(), t)),
                        Err(e) => last.insert(m.clone(), format!("{m}: {e}")),
                    },
                    Err(e) => last.insert(m.clone(), e),
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(if last.is_empty() {
                    "no member to ask".to_string()
                } else {
                    last.into_values().collect::<Vec<_>>().join("; ")
                });
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One HTTP GET of a health endpoint; `ok` is a 200, the detail the status and body. It
    /// waits longer than etcd's request timeout (a linearizable_read check on a cut-off member
    /// answers only when its read times out).
    pub async fn probe_health(&self, member: &str, path: &str) {
        let get = self.cx.http_get(member, path);
        match tokio::time::timeout(PROBE_TIMEOUT, get).await {
            Ok(Ok((code, body))) => {
                let detail = format!("GET {path} on {member}: {code} {}", body.trim_end());
                self.rec.operator_event("health", code == 200, detail)
            }
            Ok(Err(e)) => self.rec.operator_event("health", false, e),
            Err(_) => self.rec.operator_event(
                "health",
                false,
                format!("GET {path} on {member}: timed out"),
            ),
        }
    }

    /// `Maintenance.Downgrade`: asks members in turn until one answers; an etcd refusal is the
    /// answer (logged, not retried), only unavailability moves on to the next member.
    pub async fn downgrade(&self, action: &str, version: &str) {
        use pb::downgrade_request::DowngradeAction;
        let event = format!("downgrade-{action}");
        let code = match action {
            "validate" => DowngradeAction::Validate,
            "enable" => DowngradeAction::Enable,
            _ => DowngradeAction::Cancel,
        };
        let deadline = tokio::time::Instant::now() + ACTION_DEADLINE;
        let mut last = "no member to ask".to_string();
        while tokio::time::Instant::now() < deadline {
            for m in &self.members {
                let Ok(mut c) = self.client(m).await else {
                    continue;
                };
                let req = pb::DowngradeRequest {
                    action: code as i32,
                    version: version.to_string(),
                };
                match timed(c.maintenance.downgrade(req)).await {
                    Ok(r) => {
                        let detail = format!("via {m}: cluster version {}", r.version);
                        return self.rec.operator_event(&event, true, detail);
                    }
                    Err(e) if is_refusal(&e) => {
                        return self.rec.operator_event(&event, false, format!("{m}: {e}"));
                    }
                    Err(e) => last = format!("{m}: {e}"),
                }
            }
            tokio::time::sleep(RETRY).await;
        }
        self.rec.operator_event(&event, false, last)
    }

    /// The current revision (a linearizable count-only read).
    async fn revision(&self) -> Result<i64, String> {
        let (_, rev) = self
            .on_any(&[], |mut c| async move {
                let count = pb::RangeRequest {
                    key: b"/".to_vec(),
                    range_end: prefix_end("/").into_bytes(),
                    count_only: true,
                    ..Default::default()
                };
                let r = timed(c.kv.range(count)).await?;
                Ok(r.header.map(|h| h.revision).unwrap_or(0))
            })
            .await?;
        Ok(rev)
    }

    /// Compacts to `behind` revisions before the current one (recorded in the history).
    pub async fn compact(&self, behind: i64) {
        let rev = match self.revision().await {
            Ok(r) => r,
            Err(e) => return self.rec.operator_event("compact", false, e),
        };
        let target = (rev - behind).max(1);
        let member = self.members[(target as usize) % self.members.len()].clone();
        let Ok(mut c) = self.client(&member).await else {
            return self
                .rec
                .operator_event("compact", false, format!("no client for {member}"));
        };
        let by = Issuer {
            client: self.client_id,
            host: self.cx.name(),
            member: &member,
            kind: "compact",
        };
        let req = EtcdRequest::Compact { revision: target };
        let record = execute_recorded(&mut c, req, false, OP_TIMEOUT, by).await;
        let (ok, detail) = match &record.response {
            Some(EtcdResponse::Ok { .. }) => (true, format!("compacted at {target} on {member}")),
            Some(EtcdResponse::Error(e)) => (false, format!("compact {target}: {e:?}")),
            None => (false, format!("compact {target}: {:?}", record.error)),
        };
        self.rec.records.borrow_mut().push(record);
        self.rec.operator_event("compact", ok, detail);
    }

    /// Defragments `member`'s backend.
    pub async fn defrag(&self, member: &str) {
        let r = match self.client(member).await {
            Ok(mut c) => timed(c.maintenance.defragment(pb::DefragmentRequest {}))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => self
                .rec
                .operator_event("defrag", true, format!("defragmented {member}")),
            Err(e) => self
                .rec
                .operator_event("defrag", false, format!("{member}: {e}")),
        }
    }

    /// etcd's NOSPACE runbook: compact to the current revision, defragment every member,
    /// disarm the alarm.
    pub async fn recover_nospace(&self) {
        self.compact(0).await;
        for m in self.members.clone() {
            self.defrag(&m).await;
        }
        let r = self
            .on_any(&[], |mut c| async move {
                // As `etcdctl alarm disarm`: list the alarms, deactivate each one.
                let list = || pb::AlarmRequest {
                    action: pb::alarm_request::AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: pb::AlarmType::None as i32,
                };
                let raised = timed(c.maintenance.alarm(list())).await?;
                for a in raised.alarms {
                    let disarm = pb::AlarmRequest {
                        action: pb::alarm_request::AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    };
                    timed(c.maintenance.alarm(disarm)).await?;
                }
                let left = timed(c.maintenance.alarm(list())).await?;
                if left.alarms.is_empty() {
                    Ok(())
                } else {
                    Err(format!("alarms still raised: {}", left.alarms.len()))
                }
            })
            .await;
        match r {
            Ok((m, ())) => {
                self.rec
                    .operator_event("disarm", true, format!("NOSPACE disarmed via {m}"))
            }
            Err(e) => self.rec.operator_event("disarm", false, e),
        }
    }

    /// Removes `old` from the cluster and adds `new` in its place (a new, empty member).
    pub async fn replace(&self, old: &str, new: &str) {
        let avoid = vec![old.to_string()];
        let old_id = self.member_id(old, &avoid).await;
        let Some(old_id) = old_id else {
            return self.rec.operator_event(
                "member-remove",
                false,
                format!("{old} not in member list"),
            );
        };
        match self
            .on_any(&avoid, |mut c| async move {
                let remove = pb::MemberRemoveRequest { id: old_id };
                timed(c.cluster.member_remove(remove)).await.map(|_| ())
            })
            .await
        {
            Ok((via, ())) => {
                self.rec.operator_event(
                    "member-remove",
                    true,
                    format!("removed {old} ({old_id:x}) via {via}"),
                );
                self.changes.push(WorldChange::Retire(old.to_string()));
            }
            Err(e) => return self.rec.operator_event("member-remove", false, e),
        }
        self.add(new, false, &avoid).await;
    }

    /// Adds `name` (as a learner if asked) and asks the driver to start it.
    pub async fn add(&self, name: &str, learner: bool, avoid: &[String]) -> bool {
        let url = format!("http://{name}:{}", sim::PEER_PORT);
        let action = if learner { "learner-add" } else { "member-add" };
        let r = self
            .on_any(avoid, |mut c| {
                let url = url.clone();
                async move {
                    let add = pb::MemberAddRequest {
                        peer_ur_ls: vec![url],
                        is_learner: learner,
                    };
                    timed(c.cluster.member_add(add)).await.map(|_| ())
                }
            })
            .await;
        match r {
            Ok((via, ())) => {
                self.rec
                    .operator_event(action, true, format!("added {name} ({url}) via {via}"));
                self.changes.push(WorldChange::Start {
                    name: name.to_string(),
                    flags: Vec::new(),
                });
                true
            }
            Err(e) => {
                self.rec.operator_event(action, false, e);
                false
            }
        }
    }

    /// The id of the member named `name`, from the member list of any other member.
    async fn member_id(&self, name: &str, avoid: &[String]) -> Option<u64> {
        let url = format!("http://{name}:{}", sim::PEER_PORT);
        let r = self
            .on_any(avoid, |mut c| {
                let url = url.clone();
                async move {
                    let l = timed(c.cluster.member_list(pb::MemberListRequest::default())).await?;
                    Ok(l.members
                        .iter()
                        .find(|m| m.peer_ur_ls.contains(&url))
                        .map(|m| m.id))
                }
            })
            .await;
        r.ok().and_then(|(_, id)| id)
    }

    /// Tries to promote learner `name` every half second until it succeeds or the deadline;
    /// every refusal is logged (etcd refuses a learner that has not caught up).
    pub async fn promote(&self, name: &str, deadline: Duration) {
        let avoid = vec![name.to_string()];
        let Some(id) = self.member_id(name, &avoid).await else {
            return self
                .rec
                .operator_event("promote", false, format!("{name} not in member list"));
        };
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let mut done = false;
            for m in &self.members {
                let r = match self.client(m).await {
                    Ok(mut c) => timed(c.cluster.member_promote(pb::MemberPromoteRequest { id }))
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => {
                        self.rec.operator_event(
                            "promote",
                            true,
                            format!("promoted {name} via {m}"),
                        );
                        done = true;
                        break;
                    }
                    Err(e) if e.contains("in sync with leader") => {
                        self.rec.operator_event("promote-refused", true, e);
                        break;
                    }
                    Err(_) => continue,
                }
            }
            if done {
                return;
            }
            if tokio::time::Instant::now() >= until {
                return self
                    .rec
                    .operator_event("promote", false, format!("{name} never promoted"));
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}
