//! The `etcd-sim` command line.
//!
//! Owns: parsing subcommands and turning results into output and exit codes.
//!
//! Must never: hide a failure behind exit code 0.

use clap::{Parser, Subcommand};
use scenarios::{bench, smoke};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "etcd-sim",
    version,
    about = "etcd-compatible server harness: run, bench, check"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The main job: a local 3-member cluster under a checked workload; prints a summary.
    Run(smoke::RunArgs),
    /// Load generator against etcd v3 endpoints (ours or real etcd).
    Bench(bench::BenchArgs),
    /// Check a history file for linearizability:
    /// FILE [--format jepsen-etcd|porcupine-kv|json] [--no-partition] [--timeout SECS] [--html OUT]
    Check {
        /// Arguments, passed to the checker.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Time the checker on every history file in DIR (best of 5 after a warm-up).
    BenchCheck {
        /// Arguments, passed to the checker.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Check { args } => return exit(linearizability::cli::check_main(args)),
        Cmd::BenchCheck { args } => return exit(linearizability::cli::bench_check_main(args)),
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd-sim: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.cmd {
        Cmd::Run(args) => match rt.block_on(smoke::run(&args)) {
            Ok((s, dir)) => {
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
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("etcd-sim run: FAIL: {e:#}");
                eprintln!("replay: etcd-sim run --seed {}", args.seed);
                ExitCode::from(1)
            }
        },
        Cmd::Check { .. } | Cmd::BenchCheck { .. } => ExitCode::from(2),
        Cmd::Bench(args) => match rt.block_on(bench::run(&args)) {
            Ok(r) => {
                bench::print(&r, args.json);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("etcd-sim bench: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
