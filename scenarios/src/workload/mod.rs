//! Workloads on simulated client hosts: the *etcd* and *kubernetes* traffic profiles
//! (DESIGN.md §7) at a set rate, with clients per member and cluster-wide, watchers from start
//! revisions around the newest, and a compactor every 200 ms (as etcd's robustness traffic).
//!
//! Owns: [`WorkloadConfig`], starting the client hosts ([`start`]), the closed-loop driver every
//! traffic client runs (one request at a time, paced to its share of the rate, a new client id
//! after an unknown outcome as Jepsen does), and the [`Traffic`] trait the profiles implement.
//!
//! Must never: draw randomness from anything but the run's `workload/<client>` streams, use
//! time other than the simulation's, or record a response the server did not send.

pub mod compact;
pub mod etcd;
pub mod kube;
pub mod lease;
pub mod watch;

use crate::cluster::{host as host_fn, Cluster};
use crate::exec::{execute_recorded, Issuer};
use crate::history::Recorder;
use anyhow::Context;
use linearizability::models::etcd::{EtcdRequest, EtcdResponse};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sim::ClientCtx;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// The compactor's client id (apart from the traffic clients' and their incarnations').
const COMPACTOR_CLIENT: u64 = 5_000_000;

/// How long a client waits for a response before recording an unknown outcome.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// Which traffic the run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// etcd traffic only.
    Etcd,
    /// kubernetes traffic only.
    Kubernetes,
    /// Both, on disjoint key prefixes, in one history.
    Mixed,
}

/// The shape of a run's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// Traffic profile.
    pub profile: Profile,
    /// Requests per simulated second, summed over all traffic clients.
    pub rate: u32,
    /// Traffic clients bound to each member.
    pub clients_per_member: usize,
    /// Traffic clients that use every member (moving to the next one after a failure).
    pub cluster_clients: usize,
    /// Watchers (each on a random member, from up to 100 revisions before or after the newest).
    pub watchers: usize,
    /// Lease clients (none by default).
    #[serde(default)]
    pub leases: lease::LeasePlan,
    /// Watchers start a new stream every 1-2 s from up to 100 revisions before or after the
    /// newest they have seen, as clients resuming from a stale bookmark do.
    #[serde(default)]
    pub watch_rewind: bool,
    /// Bytes of padding in every value the etcd traffic writes.
    #[serde(default)]
    pub value_padding: usize,
    /// A compactor client (`k0`) compacts 0-100 revisions below the newest it has seen every
    /// this many ms, as etcd's robustness traffic does (every 200 ms by default; `None`: never).
    #[serde(default)]
    pub compaction_period_ms: Option<u64>,
    /// Watchers ask for a progress notification every 100 ms (etcd robustness's
    /// `RequestProgress`); off, they only see the notifications the server sends on its own.
    #[serde(default = "asks_progress_by_default")]
    pub watch_progress_requests: bool,
    /// Request kinds the traffic clients (and the compactor) never send (`put`, `txn`, ...): a
    /// shrunk workload's op mix. A client that draws one draws again from its own stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_ops: Vec<String>,
    /// The etcd traffic's multi-op txn reads its key at a past revision (up to 150 below the
    /// newest seen, or just above it), so some txns hit a compacted or future revision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub txn_reads_at_revision: bool,
    /// The traffic clients and the compactor send nothing for this many ms after the traffic
    /// starts (a shrunk workload's: what comes before the failure's window may not matter).
    /// Faults keep their times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_after_ms: u64,
    /// Client hosts the run does not start (a shrunk workload's: `c1`, `w0`, `k0`, ...). The
    /// others keep their names, streams and pace: the traffic clients' period still counts
    /// the dropped ones, so the rate falls by their share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_hosts: Vec<String>,
    /// Another draw of every client host's requests (0: the seed's own): a shrunk workload's,
    /// when other requests fail the same way with fewer. The servers, the network and the
    /// faults keep their streams.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub traffic_draw: u64,
    /// Requests the traffic clients and the compactor draw but do not send (a shrunk
    /// workload's), by client host: the numbers of the host's requests as it draws them, from
    /// 0, the dropped ones counted. The client idles that tick; what it draws next is what it
    /// drew before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drop_requests: BTreeMap<String, Vec<u64>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn asks_progress_by_default() -> bool {
    true
}

/// A run's traffic as data (`workload.json`, `etcd-sim run --workload FILE`): the workload and
/// how long it runs, replacing the scenario's (and any `--traffic` or `--rate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFile {
    /// How long the traffic runs (and the fault schedule with it), ms.
    pub duration_ms: u64,
    /// The traffic.
    pub workload: WorkloadConfig,
    /// Members the cluster starts with instead of the scenario's (a shrunk run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
}

impl WorkloadFile {
    /// Reads and checks a workload file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<WorkloadFile> {
        #[allow(clippy::disallowed_methods)] // a user's file, read before any run
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read workload {}", path.display()))?;
        let w: WorkloadFile = serde_json::from_str(&text)
            .with_context(|| format!("parse workload {}", path.display()))?;
        if w.duration_ms == 0 || w.workload.rate == 0 {
            anyhow::bail!(
                "workload {}: duration_ms and rate must be at least 1",
                path.display()
            );
        }
        if w.workload.start_after_ms >= w.duration_ms {
            anyhow::bail!(
                "workload {}: start_after_ms ({}) must be below duration_ms ({})",
                path.display(),
                w.workload.start_after_ms,
                w.duration_ms
            );
        }
        if w.members == Some(0) {
            anyhow::bail!("workload {}: members must be at least 1", path.display());
        }
        if let Some(bad) = w.workload.drop_hosts.iter().find(|h| !is_client_host(h)) {
            anyhow::bail!(
                "workload {}: drop_hosts names {bad:?}, not a client host (c0.., k0, w0.., l0..)",
                path.display()
            );
        }
        if let Some(bad) = w
            .workload
            .drop_requests
            .keys()
            .find(|h| !is_drawing_host(h))
        {
            anyhow::bail!(
                "workload {}: drop_requests names {bad:?}, not a traffic client or the \
                 compactor (c0.., k0)",
                path.display()
            );
        }
        Ok(w)
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            profile: Profile::Mixed,
            rate: 60,
            clients_per_member: 1,
            cluster_clients: 2,
            watchers: 3,
            leases: lease::LeasePlan::default(),
            watch_rewind: false,
            value_padding: 0,
            compaction_period_ms: Some(ROBUSTNESS_COMPACTION_MS),
            watch_progress_requests: true,
            skip_ops: Vec::new(),
            txn_reads_at_revision: false,
            start_after_ms: 0,
            drop_hosts: Vec::new(),
            traffic_draw: 0,
            drop_requests: BTreeMap::new(),
        }
    }
}

/// etcd robustness's traffic profiles a run can take instead of its scenario's traffic
/// (`etcd-sim run --traffic NAME`): (name, what it is). All have 8 traffic clients (2 bound to
/// each of 3 members, 2 cluster-wide, as etcd's 8 round-robin clients) and compact every 200 ms
/// (etcd's DefaultCompactionPeriod); watchers, lease clients and padding stay the scenario's,
/// except where a profile names its own lease clients.
pub const TRAFFIC_PROFILES: &[(&str, &str)] = &[
    (
        "etcd-low",
        "etcd traffic (puts, ranges, txns, deletes, leases) at 150 req/s (robustness LowTraffic: 100-200)",
    ),
    (
        "etcd-high",
        "etcd traffic at 500 req/s (robustness HighTraffic: 100-1000)",
    ),
    (
        "etcd-delete-leases",
        "etcd traffic at 150 req/s plus 6 lease clients granting 2-10 s leases that mostly expire (robustness EtcdTrafficDeleteLeases: lease-heavy)",
    ),
    (
        "kubernetes-high",
        "kubernetes traffic (lists, conditional updates, creates, deletes) at 500 req/s",
    ),
];

/// etcd robustness's compaction period.
const ROBUSTNESS_COMPACTION_MS: u64 = 200;

impl WorkloadConfig {
    /// Whether the run does not start client host `host` (see [`WorkloadConfig::drop_hosts`]).
    fn drops_host(&self, host: &str) -> bool {
        self.drop_hosts.iter().any(|h| h == host)
    }

    /// This traffic with one of [`TRAFFIC_PROFILES`]' shapes instead.
    pub fn with_traffic(mut self, name: &str) -> Result<Self, String> {
        let (profile, rate) = match name {
            "etcd-low" => (Profile::Etcd, 150),
            "etcd-high" => (Profile::Etcd, 500),
            "etcd-delete-leases" => {
                self.leases = lease::LeasePlan {
                    clients: 6,
                    ttl_s: (2, 10),
                    keepalives: 2,
                    hold: false,
                };
                (Profile::Etcd, 150)
            }
            "kubernetes-high" => (Profile::Kubernetes, 500),
            other => {
                let known: Vec<&str> = TRAFFIC_PROFILES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown traffic {other:?} (known: {})",
                    known.join(", ")
                ));
            }
        };
        self.profile = profile;
        self.rate = rate;
        self.clients_per_member = 2;
        self.cluster_clients = 2;
        self.compaction_period_ms = Some(ROBUSTNESS_COMPACTION_MS);
        Ok(self)
    }
}

/// A traffic profile: what the next request is, and what the client learns from answers.
pub trait Traffic {
    /// The next request: (kind label, request, serializable read?).
    fn next(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, EtcdRequest, bool);
    /// What came back (`None`: unknown outcome).
    fn observe(&mut self, req: &EtcdRequest, resp: Option<&EtcdResponse>);
}

/// A client's traffic without the kinds of request and the requests a shrunk workload skips.
struct Draws {
    traffic: Box<dyn Traffic>,
    skip: Vec<String>,
    /// The numbers of the requests drawn but not sent (see [`WorkloadConfig::drop_requests`]).
    dropped: Vec<u64>,
    /// Requests drawn so far, the dropped ones counted.
    drawn: u64,
}

impl Draws {
    /// Draws before a client gives up on a tick whose every draw is a skipped kind (a
    /// kubernetes client once a shrunk workload skips every kubernetes kind).
    const DRAWS: usize = 64;

    /// `host`'s traffic under `cfg`: its skipped kinds and dropped requests.
    fn of(traffic: Box<dyn Traffic>, cfg: &WorkloadConfig, host: &str) -> Draws {
        Draws {
            traffic,
            skip: cfg.skip_ops.clone(),
            dropped: cfg.drop_requests.get(host).cloned().unwrap_or_default(),
            drawn: 0,
        }
    }

    /// The next request the traffic draws whose kind is not skipped, drawing again (from the
    /// same stream) when it is; `None` when [`Draws::DRAWS`] draws were all skipped, or when
    /// the request drawn is a dropped one: the client sends nothing this tick.
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<(&'static str, EtcdRequest, bool)> {
        let drawn = (0..Self::DRAWS)
            .map(|_| self.traffic.next(rng))
            .find(|drawn| !self.skip.iter().any(|k| k == drawn.0))?;
        let number = self.drawn;
        self.drawn += 1;
        (!self.dropped.contains(&number)).then_some(drawn)
    }
}

/// Stops the clients and watchers of a run.
#[derive(Debug, Clone, Default)]
pub struct Stop(pub Rc<Cell<bool>>);

impl Stop {
    /// Asks every client to finish its current request and stop.
    pub fn stop(&self) {
        self.0.set(true);
    }
    /// Whether stop was asked.
    pub fn stopped(&self) -> bool {
        self.0.get()
    }
}

/// Traffic client hosts are named `c0`, `c1`, ...
const TRAFFIC_HOST_PREFIX: &str = "c";

/// Whether `host` is one of the traffic clients (not a watcher, lease client, the compactor
/// or an operator).
pub fn is_traffic_host(host: &str) -> bool {
    is_numbered(host, TRAFFIC_HOST_PREFIX)
}

/// Whether `host` is `prefix` and a number.
fn is_numbered(host: &str, prefix: &str) -> bool {
    host.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `host` is named like a client host whose requests are drawn one by one from its
/// traffic (a traffic client or the compactor: what [`WorkloadConfig::drop_requests`] names).
pub fn is_drawing_host(host: &str) -> bool {
    host == COMPACTOR_HOST || is_traffic_host(host)
}

/// Whether `host` is named like a client host a workload starts (see [`client_hosts`]).
fn is_client_host(host: &str) -> bool {
    host == COMPACTOR_HOST
        || [TRAFFIC_HOST_PREFIX, WATCHER_HOST_PREFIX, LEASE_HOST_PREFIX]
            .into_iter()
            .any(|prefix| is_numbered(host, prefix))
}

/// The client hosts `cfg` starts on a cluster of `members`, in the order it starts them:
/// traffic clients `c0..`, the compactor `k0`, watchers `w0..`, lease clients `l0..`; none of
/// the dropped ones.
pub fn client_hosts(cfg: &WorkloadConfig, members: usize) -> Vec<String> {
    let traffic = (0..cfg.clients_per_member * members + cfg.cluster_clients)
        .map(|i| format!("{TRAFFIC_HOST_PREFIX}{i}"));
    let compactor = cfg.compaction_period_ms.map(|_| COMPACTOR_HOST.to_string());
    let watchers = (0..cfg.watchers).map(|w| format!("{WATCHER_HOST_PREFIX}{w}"));
    let leases = (0..cfg.leases.clients).map(|l| format!("{LEASE_HOST_PREFIX}{l}"));
    traffic
        .chain(compactor)
        .chain(watchers)
        .chain(leases)
        .filter(|h| !cfg.drops_host(h))
        .collect()
}

/// The name of `host`'s random stream under `cfg` (see [`WorkloadConfig::traffic_draw`]).
fn stream_of(cfg: &WorkloadConfig, host: &str) -> String {
    match cfg.traffic_draw {
        0 => format!("workload/{host}"),
        draw => format!("workload/{host}/draw-{draw}"),
    }
}

/// The compactor's host.
const COMPACTOR_HOST: &str = "k0";
/// Watcher hosts are named `w0`, `w1`, ...
const WATCHER_HOST_PREFIX: &str = "w";
/// Lease client hosts are named `l0`, `l1`, ...
const LEASE_HOST_PREFIX: &str = "l";

/// Starts every client host of `cfg` (see [`client_hosts`]).
pub fn start(
    s: &mut dyn Cluster,
    cfg: &WorkloadConfig,
    rec: &Recorder,
    stop: &Stop,
) -> anyhow::Result<Vec<String>> {
    let members = s.member_names();
    let mut plans: Vec<(Vec<String>, bool)> = Vec::new(); // (members, kube?)
    for m in &members {
        for _ in 0..cfg.clients_per_member {
            plans.push((vec![m.clone()], false));
        }
    }
    for _ in 0..cfg.cluster_clients {
        plans.push((members.clone(), false));
    }
    // Kubernetes-style clients alternate with etcd ones in `Mixed`.
    for (i, p) in plans.iter_mut().enumerate() {
        p.1 = match cfg.profile {
            Profile::Etcd => false,
            Profile::Kubernetes => true,
            Profile::Mixed => i % 2 == 1,
        };
    }
    let n = plans.len().max(1) as u32;
    let period = Duration::from_secs(1) * n / cfg.rate.max(1);
    let quiet = Duration::from_millis(cfg.start_after_ms);
    let mut hosts = Vec::new();
    for (i, (ms, kube)) in plans.into_iter().enumerate() {
        let host = format!("{TRAFFIC_HOST_PREFIX}{i}");
        if cfg.drops_host(&host) {
            continue;
        }
        let rng = s.rng(&stream_of(cfg, &host));
        let traffic: Box<dyn Traffic> = if kube {
            Box::new(kube::KubeTraffic::new(i as u64))
        } else {
            Box::new(
                etcd::EtcdTraffic::new(i as u64)
                    .with_padding(cfg.value_padding)
                    .reading_at_revisions(cfg.txn_reads_at_revision),
            )
        };
        let (rec, stop) = (rec.clone(), stop.clone());
        let draws = Draws::of(traffic, cfg, &host);
        s.spawn_host(
            &host,
            host_fn(move |cx| {
                let pace = Pace { quiet, period };
                drive(cx, i as u64, ms, pace, rng, draws, rec, stop)
            }),
        )
        .with_context(|| format!("start client {host}"))?;
        hosts.push(host);
    }
    if let Some(ms) = cfg
        .compaction_period_ms
        .filter(|_| !cfg.drops_host(COMPACTOR_HOST))
    {
        let host = COMPACTOR_HOST.to_string();
        let rng = s.rng(&stream_of(cfg, &host));
        let (rec, stop) = (rec.clone(), stop.clone());
        let all = members.clone();
        let pace = Pace {
            quiet,
            period: Duration::from_millis(ms.max(1)),
        };
        let draws = Draws::of(Box::new(compact::Compactor::default()), cfg, &host);
        s.spawn_host(
            &host,
            host_fn(move |cx| drive(cx, COMPACTOR_CLIENT, all, pace, rng, draws, rec, stop)),
        )
        .with_context(|| format!("start compactor {host}"))?;
        hosts.push(host);
    }
    for w in 0..cfg.watchers {
        let host = format!("{WATCHER_HOST_PREFIX}{w}");
        if cfg.drops_host(&host) {
            continue;
        }
        let mut rng = s.rng(&stream_of(cfg, &host));
        let prefix = match cfg.profile {
            Profile::Kubernetes => kube::PREFIX,
            Profile::Etcd => etcd::PREFIX,
            Profile::Mixed if w % 2 == 1 => kube::PREFIX,
            Profile::Mixed => "/",
        };
        let first = members[rng.gen_range(0..members.len())].clone();
        let (rec, stop, all) = (rec.clone(), stop.clone(), members.clone());
        let (rewind, asks_progress) = (cfg.watch_rewind, cfg.watch_progress_requests);
        s.spawn_host(
            &host,
            host_fn(move |cx| {
                // Even watchers ask for previous key-values; every third filters (NOPUT, then
                // NODELETE, alternating).
                let w = watch::Watcher {
                    id: w as u64,
                    prefix,
                    members: all,
                    rewind,
                    prev_kv: w % 2 == 0,
                    filter: match (w % 3, (w / 3) % 2) {
                        (2, 0) => Some("noput"),
                        (2, _) => Some("nodelete"),
                        _ => None,
                    },
                    asks_progress,
                };
                watch::run(cx, w, first, rng, rec, stop)
            }),
        )
        .with_context(|| format!("start watcher {host}"))?;
        hosts.push(host);
    }
    for l in 0..cfg.leases.clients {
        let host = format!("{LEASE_HOST_PREFIX}{l}");
        if cfg.drops_host(&host) {
            continue;
        }
        let rng = s.rng(&stream_of(cfg, &host));
        let (rec, stop, all, plan) = (
            rec.clone(),
            stop.clone(),
            members.clone(),
            cfg.leases.clone(),
        );
        s.spawn_host(
            &host,
            host_fn(move |cx| lease::run(cx, l as u64, all, plan, rng, rec, stop)),
        )
        .with_context(|| format!("start lease client {host}"))?;
        hosts.push(host);
    }
    Ok(hosts)
}

/// When a client sends: nothing for `quiet`, then one request every `period`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    quiet: Duration,
    period: Duration,
}

/// One closed-loop traffic client.
#[allow(clippy::too_many_arguments)]
async fn drive(
    cx: ClientCtx,
    index: u64,
    members: Vec<String>,
    pace: Pace,
    mut rng: ChaCha8Rng,
    mut draws: Draws,
    rec: Recorder,
    stop: Stop,
) {
    let period = pace.period;
    let mut clients = BTreeMap::new();
    let mut at = rng.gen_range(0..members.len());
    let mut client_id = index;
    let mut incarnation = 0u64;
    // Spread the clients' first requests over one period.
    let offset = period.mul_f64(rng.gen_range(0.0..1.0));
    tokio::time::sleep(pace.quiet + offset).await;
    let mut next = tokio::time::Instant::now();
    while !stop.stopped() {
        let member = members[at % members.len()].clone();
        let client = match clients.get(&member) {
            Some(c) => Some(c),
            None => match cx.client(&member) {
                Ok(c) => {
                    clients.insert(member.clone(), c);
                    clients.get(&member)
                }
                Err(e) => {
                    tracing::warn!(target: "sim::client", member = %member, error = %e, "no client");
                    None
                }
            },
        };
        let Some(client) = client else {
            at += 1;
            tokio::time::sleep(period).await;
            continue;
        };
        let mut client = client.clone();
        let Some((kind, req, serializable)) = draws.next(&mut rng) else {
            next += period;
            tokio::time::sleep_until(next.max(tokio::time::Instant::now())).await;
            continue;
        };
        let by = Issuer {
            client: client_id,
            host: cx.name(),
            member: &member,
            kind,
        };
        let record = execute_recorded(&mut client, req, serializable, OP_TIMEOUT, by).await;
        draws
            .traffic
            .observe(&record.request, record.response.as_ref());
        let unknown = record.response.is_none();
        rec.records.borrow_mut().push(record);
        if unknown {
            // A new process identity after an indeterminate request, and another member.
            incarnation += 1;
            client_id = index + 1000 * incarnation;
            at += 1;
        }
        next += period;
        let now = tokio::time::Instant::now();
        if next < now {
            next = now;
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn traffic_hosts_are_the_numbered_clients_only() {
        for host in ["c0", "c7", "c12"] {
            assert!(is_traffic_host(host), "{host}");
        }
        for host in ["c", "cx", "c1x", "k0", "w0", "l3", "operator", "m0"] {
            assert!(!is_traffic_host(host), "{host}");
        }
    }

    #[test]
    fn skipped_kinds_are_never_sent_and_the_rest_still_are() {
        let skip = vec!["put".to_string(), "txn".to_string(), "get".to_string()];
        let cfg = WorkloadConfig {
            skip_ops: skip.clone(),
            ..WorkloadConfig::default()
        };
        let mut t = Draws::of(Box::new(etcd::EtcdTraffic::new(1)), &cfg, "c1");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let kinds: std::collections::BTreeSet<&str> = (0..2000)
            .filter_map(|_| t.next(&mut rng))
            .map(|d| d.0)
            .collect();
        assert!(
            kinds.iter().all(|k| !skip.iter().any(|s| s == k)),
            "{kinds:?}"
        );
        assert!(kinds.contains("cas") && kinds.contains("list"), "{kinds:?}");
    }

    #[test]
    fn a_client_whose_every_kind_is_skipped_sends_nothing() {
        let cfg = WorkloadConfig {
            skip_ops: ["k8s-list", "k8s-create", "k8s-update", "k8s-delete"]
                .map(String::from)
                .to_vec(),
            ..WorkloadConfig::default()
        };
        let mut t = Draws::of(Box::new(kube::KubeTraffic::new(1)), &cfg, "c1");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let sent: Vec<&str> = (0..200)
            .filter_map(|_| t.next(&mut rng))
            .map(|d| d.0)
            .collect();
        assert!(sent.is_empty(), "{sent:?}");
    }

    /// A dropped request is drawn but not sent: the ticks before and after it send what they
    /// sent without the drop, and only the host named drops it.
    #[test]
    fn a_dropped_request_leaves_the_others_as_they_were() {
        let requests = |cfg: &WorkloadConfig, host: &str| {
            let mut t = Draws::of(Box::new(etcd::EtcdTraffic::new(1)), cfg, host);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            (0..6)
                .map(|_| t.next(&mut rng).map(|d| format!("{:?}", d.1)))
                .collect::<Vec<_>>()
        };
        let all = requests(&WorkloadConfig::default(), "c1");
        assert!(all.iter().all(Option::is_some), "{all:?}");
        let cfg = WorkloadConfig {
            drop_requests: BTreeMap::from([("c1".to_string(), vec![1, 4])]),
            ..WorkloadConfig::default()
        };
        let mut expected = all.clone();
        expected[1] = None;
        expected[4] = None;
        assert_eq!(requests(&cfg, "c1"), expected);
        assert_eq!(
            requests(&cfg, "c2"),
            requests(&WorkloadConfig::default(), "c2")
        );
    }
}
