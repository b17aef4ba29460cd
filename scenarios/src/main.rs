//! The `etcd-sim` command line.
//!
//! Owns: parsing subcommands and turning results into output and exit codes (0 pass, 1 fail,
//! 2 usage: unknown scenario, malformed seed range, bad fault-schedule file).
//!
//! Must never: hide a failure behind exit code 0.

use clap::{Parser, Subcommand};
use scenarios::cli::{self, Usage};
use scenarios::{bench, downgrade};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "etcd-sim",
    version,
    about = "etcd-compatible server harness: simulated scenarios, checks, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where reports go unless `--report-dir` says otherwise.
const REPORTS: &str = "target/etcd-sim/reports";

#[derive(Subcommand)]
enum Cmd {
    /// Scenario names with one-line descriptions.
    List,
    /// The fault kinds a schedule file can name, with their fields (a Markdown table).
    Faults,
    /// Run scenarios in simulation (no name: the whole catalogue on the default seeds).
    Run {
        /// Scenario name (see `etcd-sim list`).
        scenario: Option<String>,
        /// Every scenario of the catalogue.
        #[arg(long)]
        all: bool,
        /// One seed.
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A seed range: A..B (B exclusive) or A..=B.
        #[arg(long)]
        seeds: Option<String>,
        /// Where report directories go.
        #[arg(long, alias = "report", default_value = REPORTS)]
        report_dir: PathBuf,
        /// A fault schedule (JSON) instead of the one drawn from the seed.
        #[arg(long)]
        faults: Option<PathBuf>,
        #[command(flatten)]
        traffic: cli::Overrides,
    },
    /// Re-run a report (directory or summary.json) and confirm the identical trace_hash.
    Replay {
        /// The report directory or its summary.json.
        report: PathBuf,
        /// Where the new report goes.
        #[arg(long, default_value = "target/etcd-sim/replays")]
        report_dir: PathBuf,
    },
    /// Run scenarios over a seed range: progress, a table, replay commands for failures.
    Sweep {
        /// Scenario name.
        scenario: Option<String>,
        /// Every scenario of the catalogue.
        #[arg(long)]
        all: bool,
        /// A seed range: A..B (B exclusive) or A..=B.
        #[arg(long, default_value = "0..20")]
        seeds: String,
        /// Where report directories go.
        #[arg(long, default_value = "target/etcd-sim/sweeps")]
        report_dir: PathBuf,
        /// Worker threads (default: one per CPU).
        #[arg(long)]
        jobs: Option<usize>,
        #[command(flatten)]
        traffic: cli::Overrides,
    },
    /// The known etcd bug classes the server reproduces (defect switches, emulated releases):
    /// one line each, starting with the name `hunt` and `--unsafe-test-defects` take.
    Bugs {
        /// Print the README's Markdown table instead.
        #[arg(long)]
        markdown: bool,
        /// The detection benchmark: every defect over seeds 0..N with its own scenario and
        /// with `swarm`; prints the README's benchmark table.
        #[arg(long, conflicts_with = "markdown")]
        bench: bool,
        /// Seeds per defect and scenario for `--bench`.
        #[arg(long, default_value_t = 20, requires = "bench")]
        seeds: u64,
        /// With `--bench`: the shrink benchmark instead (every defect's first failing seed
        /// shrunk; the README's shrink table).
        #[arg(long, requires = "bench")]
        shrink: bool,
        /// The shrink budget per defect for `--bench --shrink`.
        #[arg(long, default_value = "5m", requires = "shrink")]
        budget: String,
        /// Where the benchmark's report directories go.
        #[arg(long, default_value = "target/etcd-sim/bugs-bench", requires = "bench")]
        report_dir: PathBuf,
    },
    /// Run a known bug's scenario seed by seed until the harness catches it: seeds to
    /// detection, wall time, the failing check and the replay command.
    Hunt(scenarios::bugs::HuntArgs),
    /// Shrink a failing run to the smallest run found that still fails the same way (same
    /// failure signature): REPORT [--out DIR] [--budget 5m]; writes schedule.json,
    /// workload.json, shrink.json and the small run's report.
    Shrink(scenarios::shrink::ShrinkArgs),
    /// Release qualification: the catalogue × seeds, every defect caught, determinism
    /// re-checked; `--shard I/N` runs one slice, `qualify merge DIR... --out DIR` joins them.
    Qualify(scenarios::qualify::QualifyArgs),
    /// etcdctl 3.6's `downgrade validate|enable <X.Y> | cancel` against etcd v3 endpoints.
    Downgrade(downgrade::DowngradeArgs),
    /// Load generator against etcd v3 endpoints (ours or real etcd).
    Bench(bench::BenchArgs),
    /// Check a history file for linearizability:
    /// FILE [--format jepsen-etcd|porcupine-kv|json] [--no-partition] [--steps N|unlimited]
    /// [--timeout SECS] [--html OUT]
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

fn outcome(r: anyhow::Result<bool>, what: &str) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("etcd-sim {what}: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("etcd-sim {what}: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn seeds(seed: Option<u64>, seeds: Option<&str>) -> Result<Option<Vec<u64>>, Usage> {
    match (seed, seeds) {
        (Some(s), _) => Ok(Some(vec![s])),
        (None, Some(r)) => cli::parse_seeds(r).map(Some),
        (None, None) => Ok(None),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::List => {
            cli::list();
            ExitCode::SUCCESS
        }
        Cmd::Faults => {
            print!("{}", scenarios::nemesis::fault_kinds_table());
            ExitCode::SUCCESS
        }
        Cmd::Run {
            scenario,
            all,
            seed,
            seeds: range,
            report_dir,
            faults,
            traffic,
        } => {
            let r = seeds(seed, range.as_deref())
                .map_err(anyhow::Error::from)
                .and_then(|s| {
                    cli::run(
                        scenario.as_deref(),
                        all,
                        s,
                        &report_dir,
                        faults.as_deref(),
                        traffic,
                    )
                });
            outcome(r, "run")
        }
        Cmd::Replay { report, report_dir } => outcome(cli::replay(&report, &report_dir), "replay"),
        Cmd::Bugs {
            bench: true,
            seeds,
            report_dir,
            shrink: true,
            budget,
            ..
        } => match scenarios::bugs::bench_shrink(seeds, cli::threads(), &report_dir, &budget) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => outcome(Err(e), "bugs --bench --shrink"),
        },
        Cmd::Bugs {
            bench: true,
            seeds,
            report_dir,
            ..
        } => match scenarios::bugs::bench(seeds, cli::threads(), &report_dir) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => outcome(Err(e), "bugs --bench"),
        },
        Cmd::Bugs { markdown, .. } => {
            if markdown {
                print!("{}", scenarios::bugs::markdown_table());
            } else {
                scenarios::bugs::list();
            }
            ExitCode::SUCCESS
        }
        Cmd::Hunt(args) => outcome(scenarios::bugs::hunt(&args, cli::threads()), "hunt"),
        Cmd::Shrink(args) => {
            let r = scenarios::shrink::shrink(&args).map(|s| scenarios::shrink::print(&s));
            outcome(r.map(|()| true), "shrink")
        }
        Cmd::Qualify(args) => outcome(scenarios::qualify::main(&args), "qualify"),
        Cmd::Sweep {
            scenario,
            all,
            seeds: range,
            report_dir,
            jobs,
            traffic,
        } => {
            let r = cli::parse_seeds(&range)
                .map_err(anyhow::Error::from)
                .and_then(|s| cli::sweep(scenario.as_deref(), all, s, &report_dir, jobs, traffic));
            outcome(r, "sweep")
        }
        Cmd::Check { args } => exit(linearizability::cli::check_main(&args)),
        Cmd::BenchCheck { args } => exit(linearizability::cli::bench_check_main(&args)),
        Cmd::Downgrade(args) => with_runtime(|rt| match rt.block_on(downgrade::run(&args)) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::from(1)
            }
        }),
        Cmd::Bench(args) => with_runtime(|rt| match rt.block_on(bench::run(&args)) {
            Ok(r) => {
                bench::print(&r, args.json);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("etcd-sim bench: {e:#}");
                ExitCode::from(2)
            }
        }),
    }
}

fn with_runtime(f: impl FnOnce(&tokio::runtime::Runtime) -> ExitCode) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => f(&rt),
        Err(e) => {
            eprintln!("etcd-sim: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
