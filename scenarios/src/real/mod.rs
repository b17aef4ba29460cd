//! Real mode: the harness's [`Cluster`] as member processes on loopback, our `etcd-server` or
//! a real etcd binary (`--etcd-bin`), under the same workloads, recorder, nemesis, checks and
//! report as the simulation.
//!
//! Fault model: process faults are real signals (a crash is `kill -9`: the page cache
//! survives, so only the `keep-all` crash model exists here, never a power loss; a pause is
//! SIGSTOP, a resume SIGCONT; a restart starts the next incarnation on the same data dir and
//! ports). Network faults (partitions, isolation, one-way cuts, link latency and loss) act in
//! loopback proxies in front of every member's client and peer port ([`proxy`]); the initiator
//! of a peer connection is named from `/proc` ([`procnet`]). Disk, clock, release and
//! membership faults have no real counterpart here: applying one is an error naming it.
//!
//! Time: hosts run on a current-thread tokio runtime in a `LocalSet` on the harness's thread,
//! so the same non-`Send` host futures run in both worlds; [`Cluster::step`] runs them for a
//! few milliseconds of wall time. Proxies run on their own worker thread, so their delays do
//! not wait for the harness. A poller asks every member's real client port for its status
//! every 100 ms; what the harness observes of leaders comes from there.
//!
//! Guarantees: same seed, same fault schedule and the same workload choices as the
//! simulation; never the same timing or trace (real mode has no trace hash). Every process
//! is killed and the work directory removed when the cluster is dropped.
//!
//! Must never: be reached from a simulated run (it uses the host's clock, files, sockets and
//! processes directly), or observe through a proxy.

// Real mode runs real processes, files and ports on the wall clock: there is no simulated seam.
#![allow(clippy::disallowed_methods)]

mod observe;
mod ports;
mod process;
mod procnet;
mod proxy;

use crate::catalogue::Scenario;
use crate::cluster::{Cluster, HostFn, KvHash, ListedMember};
use anyhow::{bail, Context};
use etcd_server::etcdserver::lock;
use etcd_server::etcdserver::version::Versions;
use etcd_server::seam::real::RealNetwork;
use observe::MemberStatus;
use process::{free_port, Binary, Member, MemberSpec};
use proxy::{Links, Owners, Proxy};
use rand_chacha::ChaCha8Rng;
use sim::{ClientCtx, CrashModel, Fault, Seeds, Simulation};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Wall time one [`Cluster::step`] runs the hosts for.
const STEP: Duration = Duration::from_millis(5);
/// How often each member's status is asked, and how long an answer may take.
const POLL_EVERY: Duration = Duration::from_millis(100);
const POLL_TIMEOUT: Duration = Duration::from_millis(300);
/// A status older than this is no status (the member is stopped, killed or unreachable).
const STATUS_FRESH: Duration = Duration::from_secs(1);
/// Longest a member may take to answer on its client port after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one observation (hash, member list, versions, metrics) may take.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The initiator name of connections no member made (the harness's hosts).
const CLIENT: &str = "client";

/// How to run a scenario on processes (`etcd-sim run --real --etcd-bin PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealOptions {
    /// The member binary: our `etcd-server`, or a real etcd.
    pub bin: PathBuf,
}

impl RealOptions {
    /// The arguments of `etcd-sim run` that ask for this again.
    pub(crate) fn replay_args(&self) -> String {
        format!(" --real --etcd-bin {}", self.bin.display())
    }
}

/// Whether `bin` is our `etcd-server` (it takes our defect switches), from its `--version`.
pub(crate) fn is_ours(bin: &Path) -> anyhow::Result<bool> {
    let binary = runtime()?
        .block_on(Binary::detect(bin))
        .with_context(|| format!("real mode needs a member binary ({})", bin.display()))?;
    Ok(binary.flavor == process::Flavor::Ours)
}

/// Each member's latest status and when it came.
type Statuses = Rc<RefCell<BTreeMap<String, (MemberStatus, Instant)>>>;

/// A cluster of member processes on loopback, behind proxies.
pub struct RealCluster {
    seeds: Seeds,
    bin: Binary,
    rt: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
    /// The proxies' worker thread (kept for as long as the proxies run).
    _proxy_rt: tokio::runtime::Runtime,
    t0: Instant,
    work: PathBuf,
    names: Vec<String>,
    members: BTreeMap<String, Member>,
    /// Pid of each member's current incarnation, for naming proxy initiators.
    pids: Arc<Mutex<BTreeMap<u32, String>>>,
    links: Links,
    proxies: Vec<Proxy>,
    /// What hosts dial: each member's client proxy.
    client_addrs: BTreeMap<String, String>,
    hosts: BTreeMap<String, Rc<Cell<bool>>>,
    statuses: Statuses,
    /// How each member's incarnations ended on their own (not killed by the harness).
    exits: BTreeMap<String, String>,
}

/// One tokio current-thread runtime for the harness's side.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the real-mode runtime")
}

impl RealCluster {
    /// Starts `sc.members` members of `opts.bin` with the scenario's flags and waits until
    /// each answers on its client port.
    pub(crate) fn start(
        sc: &Scenario,
        seed: u64,
        opts: &RealOptions,
    ) -> anyhow::Result<Box<dyn Cluster>> {
        let rt = runtime()?;
        let proxy_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("real-proxies")
            .enable_all()
            .build()
            .context("start the proxies' runtime")?;
        let bin = rt
            .block_on(Binary::detect(&opts.bin))
            .with_context(|| format!("real mode needs a member binary ({})", opts.bin.display()))?;
        let work = work_dir(sc.name, seed)?;
        let seeds = Seeds::new(seed);
        let names: Vec<String> = (0..sc.members).map(|i| format!("m{i}")).collect();
        let links = Links::default();
        let pids: Arc<Mutex<BTreeMap<u32, String>>> = Arc::default();
        let owners: Owners = {
            let pids = pids.clone();
            Arc::new(move |peer| {
                let known: Vec<(u32, String)> =
                    lock(&pids).iter().map(|(p, n)| (*p, n.clone())).collect();
                let ids: Vec<u32> = known.iter().map(|(p, _)| *p).collect();
                procnet::socket_owner(peer, &ids)
                    .and_then(|pid| known.iter().find(|(p, _)| *p == pid))
                    .map_or_else(|| CLIENT.to_string(), |(_, n)| n.clone())
            })
        };
        let mut specs = Vec::new();
        let mut proxies = Vec::new();
        let mut client_addrs = BTreeMap::new();
        for name in &names {
            let (client_port, peer_port) = (free_port()?, free_port()?);
            // Each proxy draws its losses from its own stream (DESIGN.md §2).
            let proxy_for = |port: u16, role: &str| -> anyhow::Result<Proxy> {
                let _in_rt = proxy_rt.enter();
                let listen = proxy_rt
                    .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
                    .context("bind a proxy port")?;
                let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                Ok(Proxy::start(
                    listen,
                    name.clone(),
                    target,
                    links.clone(),
                    owners.clone(),
                    seeds.derive(&format!("proxy/{name}/{role}")),
                )?)
            };
            let client_proxy = proxy_for(client_port, "client")?;
            let peer_proxy = proxy_for(peer_port, "peer")?;
            client_addrs.insert(name.clone(), client_proxy.addr().to_string());
            specs.push(MemberSpec {
                name: name.clone(),
                data_dir: work.join(name),
                client_port,
                peer_port,
                advertise_client_port: client_proxy.addr().port(),
                advertise_peer_port: peer_proxy.addr().port(),
            });
            proxies.push(client_proxy);
            proxies.push(peer_proxy);
        }
        let initial: Vec<(String, u16)> = specs
            .iter()
            .map(|s| (s.name.clone(), s.advertise_peer_port))
            .collect();
        let logs = work.join("logs");
        let members = rt.block_on(async {
            let mut members = BTreeMap::new();
            for spec in specs {
                let name = spec.name.clone();
                let m = Member::start(&bin, spec, &initial, true, &sc.flags, &logs).await?;
                members.insert(name, m);
            }
            for m in members.values_mut() {
                m.wait_ready(READY_TIMEOUT).await?;
            }
            Ok::<_, process::ProcessError>(members)
        })?;
        let mut cluster = RealCluster {
            seeds,
            bin,
            rt,
            local: tokio::task::LocalSet::new(),
            _proxy_rt: proxy_rt,
            t0: Instant::now(),
            work,
            names,
            members,
            pids,
            links,
            proxies,
            client_addrs,
            hosts: BTreeMap::new(),
            statuses: Rc::default(),
            exits: BTreeMap::new(),
        };
        cluster.note_pids();
        cluster.start_pollers();
        crate::history::set_real_epoch(Some(cluster.t0));
        Ok(Box::new(cluster))
    }

    /// Records every member's current pid for the proxies.
    fn note_pids(&mut self) {
        let mut pids = lock(&self.pids);
        pids.clear();
        for (name, m) in &self.members {
            if let Some(pid) = m.pid() {
                pids.insert(pid, name.clone());
            }
        }
    }

    /// One local task per member asking its real client port for its status.
    fn start_pollers(&mut self) {
        for (name, m) in &self.members {
            let endpoint = format!("127.0.0.1:{}", m.spec().client_port);
            let (name, statuses) = (name.clone(), self.statuses.clone());
            self.local.spawn_local(async move {
                loop {
                    let asked = tokio::time::timeout(POLL_TIMEOUT, observe::status(&endpoint));
                    if let Ok(Ok(st)) = asked.await {
                        statuses
                            .borrow_mut()
                            .insert(name.clone(), (st, Instant::now()));
                    }
                    tokio::time::sleep(POLL_EVERY).await;
                }
            });
        }
    }

    /// Member `m`'s status, if it came within [`STATUS_FRESH`].
    fn status(&self, m: &str) -> Option<MemberStatus> {
        let statuses = self.statuses.borrow();
        let (st, at) = statuses.get(m)?;
        (at.elapsed() <= STATUS_FRESH).then(|| st.clone())
    }

    fn member(&mut self, name: &str) -> anyhow::Result<&mut Member> {
        self.members
            .get_mut(name)
            .with_context(|| format!("no member {name} in this real cluster"))
    }

    /// Runs `f` on the harness's runtime (outside the hosts' `LocalSet`).
    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Member `m`'s real client port.
    fn port(&self, m: &str) -> Option<u16> {
        self.members.get(m).map(|x| x.spec().client_port)
    }

    fn observe<T, E: std::fmt::Display>(
        &self,
        what: &str,
        m: &str,
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match self.block_on(async { tokio::time::timeout(OBSERVE_TIMEOUT, f).await }) {
            Ok(Ok(x)) => Ok(x),
            Ok(Err(e)) => Err(format!("{what} of {m}: {e}")),
            Err(_) => Err(format!(
                "{what} of {m}: no answer within {OBSERVE_TIMEOUT:?}"
            )),
        }
    }

    fn block(&self, from: &str, to: &str) {
        self.links.block(from, to);
    }

    /// Every node a network fault can name: the members and the harness's clients.
    fn nodes(&self) -> Vec<String> {
        let mut all = self.names.clone();
        all.push(CLIENT.to_string());
        all
    }

    /// Signals member `node`'s process (or restarts it); its status is dropped until the
    /// poller hears from it again.
    fn process_op(&mut self, node: &str, op: ProcessOp) -> anyhow::Result<()> {
        self.statuses.borrow_mut().remove(node);
        let m = self
            .members
            .get_mut(node)
            .with_context(|| format!("no member {node} in this real cluster"))?;
        let rt = &self.rt;
        match op {
            ProcessOp::Kill => rt.block_on(m.kill())?,
            ProcessOp::Restart => rt.block_on(m.restart())?,
            ProcessOp::Stop => rt.block_on(m.stop())?,
            ProcessOp::Cont => rt.block_on(m.cont())?,
        }
        if op == ProcessOp::Restart {
            self.note_pids();
        }
        Ok(())
    }
}

/// What real mode does to a member's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessOp {
    /// SIGKILL.
    Kill,
    /// SIGKILL if running, then the next incarnation.
    Restart,
    /// SIGSTOP.
    Stop,
    /// SIGCONT.
    Cont,
}

/// A fresh directory for one run's data dirs and logs.
fn work_dir(scenario: &str, seed: u64) -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0u32.. {
        let dir = base.join(format!(
            "etcd-sim-real-{}-{scenario}-{seed}-{n}",
            std::process::id()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
        }
    }
    bail!("no free work directory under {}", base.display())
}

/// The member logs of `dir`, each line as written (etcd and our server log JSON lines).
fn read_logs(dir: &Path, names: &[String]) -> String {
    let mut out = String::new();
    for name in names {
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.log"))) {
            out.push_str(&text);
            if !text.ends_with('\n') && !text.is_empty() {
                out.push('\n');
            }
        }
    }
    out
}

impl Cluster for RealCluster {
    fn world(&self) -> &'static str {
        "real"
    }
    fn seed(&self) -> u64 {
        self.seeds.seed()
    }
    fn rng(&self, concern: &str) -> ChaCha8Rng {
        self.seeds.stream(concern)
    }
    fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }
    fn step(&mut self) -> anyhow::Result<()> {
        // Timers belong to the runtime: create the step's inside it.
        self.rt.block_on(
            self.local
                .run_until(async { tokio::time::sleep(STEP).await }),
        );
        for (name, m) in self.members.iter_mut() {
            if let Some(how) = m.exited_on_its_own() {
                if self.exits.get(name) != Some(&how) {
                    tracing::warn!(member = %name, exit = %how, "member exited on its own");
                    self.exits.insert(name.clone(), how);
                }
            }
        }
        Ok(())
    }
    fn member_names(&self) -> Vec<String> {
        self.names.clone()
    }
    fn active_members(&self) -> Vec<String> {
        self.names.clone()
    }
    fn leader(&self) -> Option<String> {
        self.names
            .iter()
            .filter_map(|m| {
                let st = self.status(m)?;
                (st.leader != 0 && st.leader == st.member_id).then(|| (st.raft_term, m.clone()))
            })
            .max()
            .map(|(_, m)| m)
    }
    fn stable_leader(&self) -> Option<String> {
        let leader = self.leader()?;
        let lst = self.status(&leader)?;
        let agree = self.names.iter().all(|m| match self.status(m) {
            Some(st) => st.leader == lst.member_id && st.raft_term == lst.raft_term,
            None => true,
        });
        agree.then_some(leader)
    }
    fn term(&self, m: &str) -> Option<u64> {
        self.status(m).map(|st| st.raft_term)
    }
    fn spawn_host(&mut self, name: &str, f: HostFn) -> anyhow::Result<()> {
        if self.hosts.contains_key(name) || self.members.contains_key(name) {
            bail!("host {name} already exists");
        }
        let cx = ClientCtx::new(
            name,
            Arc::new(RealNetwork),
            self.names.clone(),
            self.client_addrs.clone(),
        );
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        let fut = f(cx);
        self.local.spawn_local(async move {
            fut.await;
            flag.set(true);
        });
        self.hosts.insert(name.to_string(), done);
        Ok(())
    }
    fn host_done(&self, name: &str) -> bool {
        self.hosts.get(name).is_some_and(|d| d.get())
    }
    fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        tracing::info!(fault = %fault, "real mode applies");
        match fault {
            Fault::Partition { a, b } => {
                for x in &a {
                    for y in &b {
                        self.block(x, y);
                        self.block(y, x);
                    }
                }
            }
            Fault::PartitionOneway { from, to } => {
                for x in &from {
                    for y in &to {
                        self.block(x, y);
                    }
                }
            }
            Fault::Isolate(n) => {
                for o in self.nodes() {
                    self.block(&n, &o);
                    self.block(&o, &n);
                }
            }
            Fault::Split(groups) => {
                for (i, g) in groups.iter().enumerate() {
                    for (j, h) in groups.iter().enumerate() {
                        if i != j {
                            for x in g {
                                for y in h {
                                    self.block(x, y);
                                }
                            }
                        }
                    }
                }
            }
            Fault::Heal => self.links.heal(),
            Fault::LinkLatency { a, b, latency } => self.links.set_latency(&a, &b, latency),
            Fault::LinkLoss {
                from,
                to,
                probability,
            } => self.links.set_loss(&from, &to, probability),
            Fault::Crash {
                node,
                model: CrashModel::KeepAll,
            } => self.process_op(&node, ProcessOp::Kill)?,
            Fault::Crash { model, .. } => bail!(
                "real mode can only kill a process (kill -9: the page cache survives), not \
                 lose power ({model:?} needs the simulated disk: run this scenario in the \
                 simulation)"
            ),
            Fault::Restart(node) => self.process_op(&node, ProcessOp::Restart)?,
            Fault::Revive(node) => {
                if self.member(&node)?.exited_on_its_own().is_some() {
                    self.process_op(&node, ProcessOp::Restart)?;
                }
            }
            Fault::Pause(node) => self.process_op(&node, ProcessOp::Stop)?,
            Fault::Resume(node) => self.process_op(&node, ProcessOp::Cont)?,
            other => bail!(
                "real mode cannot apply `{other}`: it has no disk, clock, release, capacity \
                 or server failpoint faults (run this scenario in the simulation)"
            ),
        }
        Ok(())
    }
    fn is_blocked(&self, from: &str, to: &str) -> bool {
        self.links.rule(from, to).blocked
    }
    fn release_of(&self, _m: &str) -> Option<String> {
        None
    }
    fn disk_used(&self, _m: &str) -> Option<u64> {
        None
    }
    fn add_member(&mut self, name: &str, _flags: &[String]) -> anyhow::Result<()> {
        bail!("real mode cannot start a new member ({name}) yet: membership scenarios run in the simulation")
    }
    fn retire_member(&mut self, name: &str) -> anyhow::Result<()> {
        bail!("real mode cannot retire a member ({name}) yet: membership scenarios run in the simulation")
    }
    fn revision(&mut self, m: &str) -> Option<i64> {
        self.status(m).map(|st| st.revision)
    }
    fn hash_kv(&mut self, m: &str, rev: i64) -> Option<KvHash> {
        let endpoint = format!("127.0.0.1:{}", self.port(m)?);
        self.observe("HashKV", m, observe::hash_kv(&endpoint, rev))
            .map_err(|e| tracing::warn!("{e}"))
            .ok()
    }
    fn versions(&mut self, m: &str) -> Result<Versions, String> {
        let port = self.port(m).ok_or_else(|| format!("no member {m}"))?;
        if let Some(how) = self.exits.get(m) {
            return Err(how.clone());
        }
        self.observe("/version", m, observe::versions(port))
    }
    fn member_list(&mut self, m: &str) -> Option<Vec<ListedMember>> {
        let endpoint = format!("127.0.0.1:{}", self.port(m)?);
        let list = self
            .observe("MemberList", m, observe::member_list(&endpoint))
            .ok()?;
        Some(
            list.into_iter()
                .map(|x| ListedMember {
                    name: x.name,
                    peer_urls: x.peer_urls,
                    is_learner: x.is_learner,
                })
                .collect(),
        )
    }
    fn leader_changes_seen(&mut self, m: &str) -> u64 {
        let Some(port) = self.port(m) else { return 0 };
        self.observe("/metrics", m, observe::metrics(port))
            .map(|x| x.leader_changes_seen)
            .unwrap_or(0)
    }
    fn wal_fsync_histograms(&mut self) -> Vec<Vec<u64>> {
        let ports: Vec<(String, u16)> = self
            .members
            .iter()
            .map(|(n, m)| (n.clone(), m.spec().client_port))
            .collect();
        ports
            .into_iter()
            .filter_map(|(n, port)| self.observe("/metrics", &n, observe::metrics(port)).ok())
            .map(|x| x.wal_fsync_counts())
            .collect()
    }
    fn log_jsonl(&self) -> String {
        read_logs(&self.work.join("logs"), &self.names)
    }
    fn log_count(&self, msg: &str) -> u64 {
        // etcd (zap) logs `"msg":"..."`, our server (tracing) `"message":"..."`.
        let etcd = format!("\"msg\":\"{msg}\"");
        let ours = format!("\"message\":\"{msg}\"");
        self.log_jsonl()
            .lines()
            .filter(|l| l.contains(&etcd) || l.contains(&ours))
            .count() as u64
    }
    fn log_lines(&self) -> u64 {
        self.log_jsonl().lines().count() as u64
    }
    fn trace_hash(&self) -> String {
        "none (real mode)".into()
    }
    fn real_run(&self) -> Option<crate::report::RealRun> {
        Some(crate::report::RealRun {
            bin: self.bin.path.display().to_string(),
            version: match self.bin.flavor {
                process::Flavor::Etcd => format!("etcd {}", self.bin.version),
                process::Flavor::Ours => format!("etcd-server {}", self.bin.version),
            },
        })
    }
    fn as_sim(&mut self) -> Option<&mut Simulation> {
        None
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        crate::history::set_real_epoch(None);
        let mut members: Vec<Member> = std::mem::take(&mut self.members).into_values().collect();
        if let Err(e) = self.rt.block_on(process::shutdown_all(&mut members)) {
            tracing::warn!("real mode shutdown: {e}");
        }
        drop(members);
        self.proxies.clear();
        if let Err(e) = std::fs::remove_dir_all(&self.work) {
            tracing::warn!("real mode: removing {}: {e}", self.work.display());
        }
    }
}
