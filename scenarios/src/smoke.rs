//! `etcd-sim smoke`: real mode — a local 3-member cluster of our server (real mode:
//! loopback TCP, files with fdatasync in a temp dir) under a small mixed workload.
//!
//! Owns: starting the members in-process, the workload (unique value per write), recording the
//! history, the end-of-run check that every member holds every acknowledged write, the printed
//! summary and the report directory.
//!
//! Must never: report success for a run whose check failed.

use crate::stats::{summarize, LatencySummary};
use anyhow::{bail, Context};
use clap::Parser;
use etcd_api::client::{prefix_range_request, put_request, range_request, Client};
use etcd_server::seam::World;
use etcd_server::{Config, ServerHandle};
use linearizability::models::kv::{Kv, KvInput, KvOutput};
use linearizability::{CheckResult, Operation, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One recorded client operation.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// Client index.
    pub client: usize,
    /// "put" or "get".
    pub op: &'static str,
    /// Key.
    pub key: String,
    /// Value written, or value read (None: key absent).
    pub value: Option<String>,
    /// Call time, µs since the workload started.
    pub call_us: u64,
    /// Return time, µs since the workload started.
    pub return_us: u64,
    /// Whether the operation succeeded (a failed write has an unknown outcome).
    pub ok: bool,
}

/// The run's summary (also written as summary.json).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What ran.
    pub scenario: String,
    /// Workload seed.
    pub seed: u64,
    /// Members.
    pub members: usize,
    /// Operations attempted.
    pub ops: usize,
    /// Operations that failed.
    pub failed: usize,
    /// Latency of successful puts.
    pub put_latency: LatencySummary,
    /// Latency of successful gets.
    pub get_latency: LatencySummary,
    /// Acknowledged writes found on every member at the end.
    pub acknowledged_writes_verified: usize,
    /// Revision on each member at the end.
    pub final_revisions: Vec<i64>,
    /// Linearizability of the client history (KV model, per-key partitions).
    pub linearizability: String,
    /// Checker time in ms.
    pub checker_ms: f64,
    /// Wall seconds.
    pub wall_seconds: f64,
    /// "pass" or "fail".
    pub verdict: String,
}

/// Arguments of `etcd-sim smoke`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Operations per client.
    #[arg(long, default_value_t = 200)]
    pub ops: usize,
    /// Where reports go.
    #[arg(long, default_value = "target/etcd-sim/reports")]
    pub report_dir: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    #[allow(clippy::disallowed_methods)]
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Starts a 3-member cluster in this process with data under `dir`.
pub async fn start_cluster(
    dir: &Path,
    n: usize,
) -> anyhow::Result<(Vec<ServerHandle>, Vec<String>)> {
    let mut peers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..n {
        peers.push(free_port()?);
        clients.push(free_port()?);
    }
    let initial: Vec<String> = (0..n)
        .map(|i| format!("m{i}=http://127.0.0.1:{}", peers[i]))
        .collect();
    let mut handles = Vec::new();
    for i in 0..n {
        let cfg = Config::parse_from([
            "etcd-server".to_string(),
            format!("--name=m{i}"),
            format!("--data-dir={}", dir.join(format!("m{i}")).display()),
            format!("--listen-client-urls=http://127.0.0.1:{}", clients[i]),
            format!("--advertise-client-urls=http://127.0.0.1:{}", clients[i]),
            format!("--listen-peer-urls=http://127.0.0.1:{}", peers[i]),
            format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                peers[i]
            ),
            format!("--initial-cluster={}", initial.join(",")),
        ]);
        let h = etcd_server::start(cfg, World::real(i as u64 + 1))
            .await
            .with_context(|| format!("start member m{i}"))?;
        handles.push(h);
    }
    let eps = clients.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    Ok((handles, eps))
}

/// Runs the smoke job and writes its report; returns the summary and the report directory.
pub async fn run(args: &RunArgs) -> anyhow::Result<(Summary, PathBuf)> {
    let wall = Instant::now();
    let tmp = tempfile::tempdir().context("create a temp dir for member data")?;
    let (handles, eps) = start_cluster(tmp.path(), 3).await?;
    wait_for_leader(&handles).await?;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (ci, ep) in eps.iter().enumerate() {
        let ep = ep.clone();
        let ops = args.ops;
        let seed = args.seed;
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(ci as u64));
            let mut c = Client::connect(&ep).await?;
            let mut hist = Vec::new();
            for n in 0..ops {
                let key = format!("k{}", rng.gen_range(0..8));
                let call = t0.elapsed();
                if rng.gen_bool(0.5) {
                    let value = format!("c{ci}-{n}");
                    let r = tokio::time::timeout(
                        Duration::from_secs(10),
                        c.kv.put(put_request(key.clone(), value.clone())),
                    )
                    .await;
                    let ok = matches!(r, Ok(Ok(_)));
                    hist.push(Recorded {
                        client: ci,
                        op: "put",
                        key,
                        value: Some(value),
                        call_us: call.as_micros() as u64,
                        return_us: t0.elapsed().as_micros() as u64,
                        ok,
                    });
                } else {
                    let get = c.kv.range(range_request(key.clone()));
                    let r = tokio::time::timeout(Duration::from_secs(10), get).await;
                    let (ok, value) = match r {
                        Ok(Ok(resp)) => (
                            true,
                            resp.into_inner()
                                .kvs
                                .first()
                                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                        ),
                        _ => (false, None),
                    };
                    hist.push(Recorded {
                        client: ci,
                        op: "get",
                        key,
                        value,
                        call_us: call.as_micros() as u64,
                        return_us: t0.elapsed().as_micros() as u64,
                        ok,
                    });
                }
            }
            anyhow::Ok(hist)
        }));
    }
    let mut history = Vec::new();
    for t in tasks {
        history.extend(t.await.context("workload task")??);
    }
    // Every member must hold the last acknowledged value of every key (no later write exists).
    let mut last_ack: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for h in history.iter().filter(|h| h.ok && h.op == "put") {
        if let Some(v) = &h.value {
            let e = last_ack.entry(h.key.clone()).or_insert((0, String::new()));
            if h.return_us >= e.0 {
                *e = (h.return_us, v.clone());
            }
        }
    }
    let mut final_revisions = Vec::new();
    let mut problems = Vec::new();
    let mut sync = Client::connect(&eps[0]).await?;
    let target = sync
        .kv
        .range(range_request("k0"))
        .await?
        .into_inner()
        .header
        .map(|h| h.revision)
        .unwrap_or(0);
    let local_read = || etcd_api::etcdserverpb::RangeRequest {
        serializable: true,
        ..prefix_range_request("k")
    };
    for ep in &eps {
        let mut c = Client::connect(ep).await?;
        let mut rev = 0;
        for _ in 0..100 {
            let r = c.kv.range(local_read()).await?.into_inner();
            rev = r.header.map(|h| h.revision).unwrap_or(0);
            if rev >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        final_revisions.push(rev);
        let r = c.kv.range(local_read()).await?.into_inner();
        let held: BTreeMap<String, String> = r
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                )
            })
            .collect();
        for (k, (_, v)) in &last_ack {
            // Overlapping writes may legitimately leave another acknowledged value in place.
            let candidates: Vec<&String> = history
                .iter()
                .filter(|h| h.op == "put" && &h.key == k)
                .filter_map(|h| h.value.as_ref())
                .collect();
            match held.get(k) {
                Some(got) if got == v || candidates.contains(&got) => {}
                other => problems.push(format!("{ep}: key {k} holds {other:?}, expected {v:?}")),
            }
        }
    }
    if final_revisions.windows(2).any(|w| w[0] != w[1]) {
        problems.push(format!(
            "members disagree on the revision: {final_revisions:?}"
        ));
    }
    for h in handles {
        h.stop().await.context("stop member")?;
    }
    let ops = to_kv_history(&history);
    let report = linearizability::check(&Kv, &ops);
    let lin = match &report.result {
        CheckResult::Linearizable => "linearizable".to_string(),
        CheckResult::NotLinearizable(cx) => {
            problems.push(format!(
                "history is not linearizable: operation {} cannot be placed",
                cx.failed_op
            ));
            "not linearizable".to_string()
        }
        CheckResult::Unknown(u) => format!("unknown: {u}"),
    };
    if report.result.verdict() == Verdict::Unknown {
        problems.push("linearizability check gave up (unknown)".into());
    }
    let mut put_lat: Vec<Duration> = history
        .iter()
        .filter(|h| h.ok && h.op == "put")
        .map(|h| Duration::from_micros(h.return_us - h.call_us))
        .collect();
    let mut get_lat: Vec<Duration> = history
        .iter()
        .filter(|h| h.ok && h.op == "get")
        .map(|h| Duration::from_micros(h.return_us - h.call_us))
        .collect();
    let summary = Summary {
        scenario: "smoke-3-members-real".into(),
        seed: args.seed,
        members: 3,
        ops: history.len(),
        failed: history.iter().filter(|h| !h.ok).count(),
        put_latency: summarize(&mut put_lat),
        get_latency: summarize(&mut get_lat),
        acknowledged_writes_verified: last_ack.len(),
        final_revisions,
        linearizability: lin,
        checker_ms: report.elapsed.as_secs_f64() * 1000.0,
        wall_seconds: wall.elapsed().as_secs_f64(),
        verdict: if problems.is_empty() {
            "pass".into()
        } else {
            "fail".into()
        },
    };
    let dir = args.report_dir.join(format!("smoke-seed{}", args.seed));
    let html = linearizability::html::render_html(&Kv, &ops, &report, &[], &summary.scenario);
    write_report(&dir, &summary, &history, &problems, &html)?;
    if !problems.is_empty() {
        bail!(
            "smoke run failed ({} problems, report in {}):\n{}",
            problems.len(),
            dir.display(),
            problems.join("\n")
        );
    }
    Ok((summary, dir))
}

/// Prints the smoke summary.
pub fn print(s: &Summary, dir: &Path) {
    println!("scenario   {}", s.scenario);
    println!("seed       {}", s.seed);
    println!("members    {}", s.members);
    println!("ops        {} ({} failed)", s.ops, s.failed);
    println!(
        "put p50/p99  {:.2} / {:.2} ms",
        s.put_latency.p50_ms, s.put_latency.p99_ms
    );
    println!(
        "get p50/p99  {:.2} / {:.2} ms",
        s.get_latency.p50_ms, s.get_latency.p99_ms
    );
    println!(
        "keys verified on every member: {}",
        s.acknowledged_writes_verified
    );
    println!("final revisions {:?}", s.final_revisions);
    println!(
        "history    {} ({:.1} ms to check)",
        s.linearizability, s.checker_ms
    );
    println!(
        "verdict    {}   ({:.1} s wall)",
        s.verdict.to_uppercase(),
        s.wall_seconds
    );
    println!("report     {}", dir.display());
}

#[allow(clippy::disallowed_methods)]
fn write_report(
    dir: &Path,
    s: &Summary,
    history: &[Recorded],
    problems: &[String],
    html: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(s)?)?;
    std::fs::write(
        dir.join("history.json"),
        serde_json::to_vec_pretty(history)?,
    )?;
    std::fs::write(dir.join("problems.txt"), problems.join("\n"))?;
    std::fs::write(dir.join("history.html"), html)?;
    Ok(())
}

/// Waits until every member knows the same leader (at most 20 s).
async fn wait_for_leader(handles: &[ServerHandle]) -> anyhow::Result<()> {
    for _ in 0..400 {
        let leaders: Vec<u64> = handles.iter().map(|h| h.server.status().leader).collect();
        if leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no leader elected within 20 s")
}

/// The recorded history as the checker's KV history: a failed put has an unknown outcome, a
/// failed get had no effect and is left out.
fn to_kv_history(history: &[Recorded]) -> Vec<Operation<KvInput, KvOutput>> {
    let mut ops = Vec::new();
    for h in history {
        let (call, ret) = (h.call_us, h.return_us);
        match (h.op, h.ok) {
            ("put", true) => ops.push(Operation::new(
                h.client as u64,
                call,
                ret,
                KvInput::Put {
                    key: h.key.clone(),
                    value: h.value.clone().unwrap_or_default(),
                },
                KvOutput::Put,
            )),
            ("put", false) => ops.push(Operation::unknown(
                h.client as u64,
                call,
                ret,
                KvInput::Put {
                    key: h.key.clone(),
                    value: h.value.clone().unwrap_or_default(),
                },
            )),
            ("get", true) => ops.push(Operation::new(
                h.client as u64,
                call,
                ret,
                KvInput::Get { key: h.key.clone() },
                KvOutput::Get {
                    value: h.value.clone().unwrap_or_default(),
                },
            )),
            _ => {}
        }
    }
    ops
}
