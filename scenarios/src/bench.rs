//! `etcd-sim bench`: a closed-loop load generator for any etcd v3 endpoints.
//!
//! Owns: N clients spread over the endpoints (client i uses endpoint i mod len, like etcd's
//! benchmark tool), M operations in total, per-operation latency, and the printed report.
//!
//! Must never: count a failed operation as a success (failures are reported separately).

use crate::stats::{summarize, LatencySummary};
use anyhow::{bail, Context};
use etcd_api::client::{put_request, range_request, Client};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The operation to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum BenchOp {
    /// Put a value under a key from the key space.
    Put,
    /// Range (get) one key.
    Range,
}

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Comma-separated client endpoints (host:port or http://host:port).
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Total operations.
    #[arg(long, default_value_t = 10000)]
    pub total: usize,
    /// put or range.
    #[arg(long, value_enum, default_value_t = BenchOp::Put)]
    pub op: BenchOp,
    /// Key size in bytes.
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long = "val-size", default_value_t = 256)]
    pub val_size: usize,
    /// Distinct keys written by put.
    #[arg(long = "key-space-size", default_value_t = 1000)]
    pub key_space_size: usize,
    /// Range consistency: l (linearizable) or s (serializable).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Print the result as one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Outcome of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// Operation.
    pub op: BenchOp,
    /// Clients.
    pub clients: usize,
    /// Successful operations.
    pub ok: usize,
    /// Failed operations.
    pub failed: usize,
    /// Wall time of the whole run in seconds.
    pub seconds: f64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Latency of successful operations.
    pub latency: LatencySummary,
}

fn key(i: usize, size: usize) -> Vec<u8> {
    let s = format!("{i:0>width$}", width = size.max(1));
    s.into_bytes()
}

/// Runs the benchmark.
pub async fn run(args: &BenchArgs) -> anyhow::Result<BenchResult> {
    if args.clients == 0 || args.total == 0 || args.endpoints.is_empty() {
        bail!("--clients, --total and --endpoints must be non-empty/positive");
    }
    let serializable = match args.consistency.as_str() {
        "l" => false,
        "s" => true,
        other => bail!("--consistency must be l or s, got {other:?}"),
    };
    let value = vec![b'v'; args.val_size];
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let ep = &args.endpoints[i % args.endpoints.len()];
        let c = Client::connect(ep)
            .await
            .with_context(|| format!("connect to {ep}"))?;
        clients.push(c);
    }
    if args.op == BenchOp::Range {
        clients[0]
            .kv
            .put(put_request(key(0, args.key_size), value.clone()))
            .await
            .context("seed the key to range over")?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(args.total)));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let next = next.clone();
        let samples = samples.clone();
        let failed = failed.clone();
        let value = value.clone();
        let (op, total, key_size, space) = (
            args.op,
            args.total,
            args.key_size,
            args.key_space_size.max(1),
        );
        tasks.push(tokio::spawn(async move {
            let mut local: Vec<Duration> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                let r = match op {
                    BenchOp::Put => {
                        c.kv.put(put_request(key(i % space, key_size), value.clone()))
                            .await
                            .map(|_| ())
                    }
                    BenchOp::Range => {
                        let get = etcd_api::etcdserverpb::RangeRequest {
                            serializable,
                            ..range_request(key(0, key_size))
                        };
                        c.kv.range(get).await.map(|_| ())
                    }
                };
                match r {
                    Ok(()) => local.push(t.elapsed()),
                    Err(_) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            samples.lock().await.extend(local);
        }));
    }
    for t in tasks {
        t.await.context("bench client task")?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut s = std::mem::take(&mut *samples.lock().await);
    let latency = summarize(&mut s);
    Ok(BenchResult {
        op: args.op,
        clients: args.clients,
        ok: latency.count,
        failed: failed.load(std::sync::atomic::Ordering::Relaxed),
        seconds,
        ops_per_sec: latency.count as f64 / seconds.max(1e-9),
        latency,
    })
}

/// Prints a result the way `etcd-sim bench` does.
pub fn print(r: &BenchResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "op={:?} clients={} ok={} failed={} time={:.2}s",
        r.op, r.clients, r.ok, r.failed, r.seconds
    );
    println!(
        "ops/s={:.0} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        r.ops_per_sec, r.latency.p50_ms, r.latency.p90_ms, r.latency.p99_ms, r.latency.max_ms
    );
}
