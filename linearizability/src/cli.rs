//! The library side of `etcd-sim check` and `etcd-sim bench-check`: argument handling, file
//! loading with format detection, printing verdicts and timings, exit codes.
//!
//! Owns: the command-line contract (exit codes 0 linearizable, 1 not linearizable, 2 usage or
//! parse error, 3 unknown). Must never contain checking logic or model semantics; it only wires
//! parsers, models, the checker and the HTML view together. This is the only module that
//! touches the file system.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checker::{check_with, CheckOptions, CheckReport, CheckResult, Verdict};
use crate::history::{FaultWindow, Operation};
use crate::html::{render_html, render_run_html};
use crate::model::Model;
use crate::models::etcd::{EtcdRequest, EtcdResponse};
use crate::models::kv::Kv;
use crate::models::register::Register;
use crate::parse::{
    parse_jepsen_etcd, parse_json, parse_porcupine_kv, Format, JsonHistory, ParseError,
};
use crate::run::check_etcd_run;
use crate::synth::{self, Anomaly, SynthSpec};
use crate::watch::WatcherHistory;

/// Exit code: linearizable.
pub const EXIT_LINEARIZABLE: i32 = 0;
/// Exit code: not linearizable (or, for an etcd history with watches, a watch guarantee
/// violated).
pub const EXIT_NOT_LINEARIZABLE: i32 = 1;
/// Exit code: usage or parse error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: unknown (deadline passed).
pub const EXIT_UNKNOWN: i32 = 3;

const CHECK_USAGE: &str =
    "usage: etcd-sim check FILE [--format jepsen-etcd|porcupine-kv|json] [--no-partition] [--steps N|unlimited] [--timeout SECS] [--html OUT.html]";
const BENCH_USAGE: &str =
    "usage: etcd-sim bench-check (DIR | --synthetic [--save DIR]) [--no-partition] [--steps N|unlimited] [--timeout SECS]";

/// Errors of the command-line layer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A history file is malformed.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: ParseError,
    },
    /// The format could not be detected.
    #[error("{0}: cannot detect the format; pass --format jepsen-etcd|porcupine-kv|json")]
    UnknownFormat(PathBuf),
}

/// A history loaded from a file, with its model.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Register operations.
    Register(
        Vec<Operation<<Register as Model>::Input, <Register as Model>::Output>>,
        Vec<FaultWindow>,
    ),
    /// Key-value operations.
    Kv(
        Vec<Operation<<Kv as Model>::Input, <Kv as Model>::Output>>,
        Vec<FaultWindow>,
    ),
    /// etcd operations, with any watch histories recorded alongside.
    Etcd(
        Vec<Operation<EtcdRequest, EtcdResponse>>,
        Vec<FaultWindow>,
        Vec<WatcherHistory>,
    ),
}

/// Reads and parses a history file, detecting the format when `format` is `None`.
pub fn load(path: &Path, format: Option<Format>) -> Result<Loaded, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = match format {
        Some(f) => f,
        None => Format::detect(&path.to_string_lossy(), &text)
            .ok_or_else(|| CliError::UnknownFormat(path.to_path_buf()))?,
    };
    let parse_err = |source| CliError::Parse {
        path: path.to_path_buf(),
        source,
    };
    Ok(match format {
        Format::JepsenEtcd => {
            Loaded::Register(parse_jepsen_etcd(&text).map_err(parse_err)?, Vec::new())
        }
        Format::PorcupineKv => {
            Loaded::Kv(parse_porcupine_kv(&text).map_err(parse_err)?, Vec::new())
        }
        Format::Json => match parse_json(&text).map_err(parse_err)? {
            JsonHistory::Register { operations, faults } => Loaded::Register(operations, faults),
            JsonHistory::Kv { operations, faults } => Loaded::Kv(operations, faults),
            JsonHistory::Etcd {
                operations,
                faults,
                watches,
            } => Loaded::Etcd(operations, faults, watches),
        },
    })
}

/// A verdict line, e.g. `not linearizable: cannot place #12 (client 3, [40, 44]) read -> 3`.
pub fn verdict_line<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    report: &CheckReport<M::State>,
) -> String {
    match &report.result {
        CheckResult::Linearizable => "linearizable".to_string(),
        CheckResult::Unknown(u) => format!("unknown: {u}"),
        CheckResult::NotLinearizable(cx) => match history.get(cx.failed_op) {
            Some(op) if cx.reason.is_some() => format!(
                "not linearizable: operation #{} (client {}, call {}, return {}) {}: {}",
                cx.failed_op,
                op.client,
                op.call,
                op.ret,
                model.describe_operation(&op.input, op.output.as_ref()),
                cx.reason.as_deref().unwrap_or_default()
            ),
            Some(op) => format!(
                "not linearizable: cannot place operation #{} (client {}, call {}, return {}) {}; state after the longest partial linearization ({} of {} operations): {}",
                cx.failed_op,
                op.client,
                op.call,
                op.ret,
                model.describe_operation(&op.input, op.output.as_ref()),
                cx.partial.len(),
                report.partitions.get(cx.partition).map_or(0, |p| p.ops.len()),
                model.describe_state(&cx.state)
            ),
            None => "not linearizable".to_string(),
        },
    }
}

fn exit_code<S>(result: &CheckResult<S>) -> i32 {
    match result {
        CheckResult::Linearizable => EXIT_LINEARIZABLE,
        CheckResult::NotLinearizable(_) => EXIT_NOT_LINEARIZABLE,
        CheckResult::Unknown(_) => EXIT_UNKNOWN,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct CheckArgs {
    file: Option<PathBuf>,
    /// bench-check only: the synthetic histories instead of a directory.
    synthetic: bool,
    /// bench-check --synthetic only: write each history there as NAME.json.
    save: Option<PathBuf>,
    format: Option<Format>,
    options: CheckOptions,
    html: Option<PathBuf>,
}

impl CheckArgs {
    /// The history file or directory (empty only with `--synthetic`).
    fn path(&self) -> &Path {
        self.file.as_deref().unwrap_or(Path::new(""))
    }
}

fn parse_args(args: &[String], allow_format_html: bool) -> Result<CheckArgs, CliError> {
    let mut file = None;
    let mut format = None;
    let mut options = CheckOptions::default();
    let mut html = None;
    let mut synthetic = false;
    let mut save = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| CliError::Usage(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--format" if allow_format_html => {
                let v = value("--format")?;
                format = Some(
                    Format::from_name(&v)
                        .ok_or_else(|| CliError::Usage(format!("unknown format {v:?}")))?,
                );
            }
            "--no-partition" => options.partition = false,
            "--steps" => {
                let v = value("--steps")?;
                options.step_budget = match v.as_str() {
                    "unlimited" => None,
                    n => Some(
                        n.parse()
                            .ok()
                            .filter(|n: &u64| *n >= 1)
                            .ok_or_else(|| CliError::Usage(format!("bad --steps {v:?}")))?,
                    ),
                };
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| CliError::Usage(format!("bad --timeout {v:?}")))?;
                options.timeout = Some(Duration::from_secs_f64(secs));
            }
            "--html" if allow_format_html => html = Some(PathBuf::from(value("--html")?)),
            "--synthetic" if !allow_format_html => synthetic = true,
            "--save" if !allow_format_html => save = Some(PathBuf::from(value("--save")?)),
            s if s.starts_with("--") => return Err(CliError::Usage(format!("unknown option {s}"))),
            s if file.is_none() => file = Some(PathBuf::from(s)),
            s => return Err(CliError::Usage(format!("unexpected argument {s:?}"))),
        }
    }
    match (&file, synthetic) {
        (None, false) => return Err(CliError::Usage("missing FILE".to_string())),
        (Some(f), true) => {
            return Err(CliError::Usage(format!(
                "--synthetic takes no directory (got {})",
                f.display()
            )))
        }
        _ => {}
    }
    if save.is_some() && !synthetic {
        return Err(CliError::Usage("--save needs --synthetic".to_string()));
    }
    Ok(CheckArgs {
        file,
        synthetic,
        save,
        format,
        options,
        html,
    })
}

fn run_check<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    faults: &[FaultWindow],
    args: &CheckArgs,
) -> Result<i32, CliError> {
    let report = check_with(model, ops, &args.options);
    println!("{}", verdict_line(model, ops, &report));
    println!(
        "checked {} operations in {:.3} ms",
        ops.len(),
        ms(report.elapsed)
    );
    if let Some(out) = &args.html {
        let page = render_html(model, ops, &report, faults, &args.path().to_string_lossy());
        write_file(out, &page)?;
        println!("wrote {}", out.display());
    }
    Ok(exit_code(&report.result))
}

/// An etcd history, checked as the scenario harness checks it (reductions, then the search,
/// then any watches): the verdict line, a watch line and one line per violation if there are
/// watchers; exit code 1 if either check fails.
fn run_etcd(
    ops: &[Operation<EtcdRequest, EtcdResponse>],
    faults: &[FaultWindow],
    watches: &[WatcherHistory],
    args: &CheckArgs,
) -> Result<i32, CliError> {
    let run = check_etcd_run(ops, watches, &args.options);
    println!("{}", run.explain(ops));
    println!(
        "checked {} operations and {} watch events in {:.3} ms (linearizability {:.3} ms, watch {:.3} ms)",
        ops.len(),
        run.watch.events,
        ms(run.elapsed),
        ms(run.linearizability.elapsed),
        ms(run.watch_elapsed)
    );
    if let Some(out) = &args.html {
        write_file(
            out,
            &render_run_html(ops, &run, faults, &args.path().to_string_lossy()),
        )?;
        println!("wrote {}", out.display());
    }
    Ok(match exit_code(&run.linearizability.result) {
        EXIT_LINEARIZABLE if !run.watch.ok() => EXIT_NOT_LINEARIZABLE,
        code => code,
    })
}

#[allow(clippy::disallowed_methods)] // This crate is not simulated: plain file output is right here.
fn create_dir(path: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[allow(clippy::disallowed_methods)] // This crate is not simulated: plain file output is right here.
fn write_file(path: &Path, content: &str) -> Result<(), CliError> {
    std::fs::write(path, content).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `etcd-sim check FILE [--format F] [--no-partition] [--timeout SECS] [--html OUT.html]`;
/// `args` excludes the program and subcommand names. Returns the exit code.
pub fn check_main(args: &[String]) -> i32 {
    let result = parse_args(args, true).and_then(|a| match load(a.path(), a.format)? {
        Loaded::Register(ops, faults) => run_check(&Register, &ops, &faults, &a),
        Loaded::Kv(ops, faults) => run_check(&Kv, &ops, &faults, &a),
        Loaded::Etcd(ops, faults, watches) => run_etcd(&ops, &faults, &watches, &a),
    });
    match result {
        Ok(code) => code,
        Err(e @ CliError::Usage(_)) => {
            eprintln!("error: {e}\n{CHECK_USAGE}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Linearizable => "linearizable",
        Verdict::NotLinearizable => "not-linearizable",
        Verdict::Unknown => "unknown",
    }
}

/// Best of five timed checks after one warm-up; returns (verdict, best time).
fn bench_one(check: impl Fn() -> (Verdict, Duration)) -> (&'static str, Duration) {
    let (verdict, mut best) = check();
    for _ in 0..5 {
        best = best.min(check().1);
    }
    (verdict_name(verdict), best)
}

/// Times the check of a generic-model history.
fn timed<'a, M: Model>(
    model: &'a M,
    ops: &'a [Operation<M::Input, M::Output>],
    options: &'a CheckOptions,
) -> impl Fn() -> (Verdict, Duration) + 'a {
    move || {
        let r = check_with(model, ops, options);
        (r.result.verdict(), r.elapsed)
    }
}

#[allow(clippy::disallowed_methods)] // This crate is not simulated: listing a directory is fine.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let io = |source| CliError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_history = [".log", ".txt", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if path.is_file() && is_history && !name.starts_with('.') {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The synthetic benchmark rows: (name, spec, expected verdict).
fn synthetic_rows() -> Vec<(&'static str, SynthSpec, Verdict)> {
    let etcd = |ops| SynthSpec::etcd(ops, 10, 1000, 1);
    let leases = |ops| SynthSpec::lease_heavy(ops, 2);
    let ok = Verdict::Linearizable;
    let bad = Verdict::NotLinearizable;
    vec![
        ("etcd-10k", etcd(10_000), ok),
        (
            "etcd-10k-stale-read",
            etcd(10_000).with_anomaly(Anomaly::StaleRead),
            bad,
        ),
        (
            "etcd-10k-rev-backwards",
            etcd(10_000).with_anomaly(Anomaly::RevisionBackwards),
            bad,
        ),
        (
            "etcd-10k-lost-write",
            etcd(10_000).with_anomaly(Anomaly::LostWrite),
            bad,
        ),
        ("etcd-100k", etcd(100_000), ok),
        (
            "etcd-100k-rev-backwards",
            etcd(100_000).with_anomaly(Anomaly::RevisionBackwards),
            bad,
        ),
        ("leases-5k", leases(5_000), ok),
        (
            "leases-5k-stale-read",
            leases(5_000).with_anomaly(Anomaly::StaleRead),
            bad,
        ),
        ("leases-20k", leases(20_000), ok),
    ]
}

/// The process's peak resident set since the last reset, in MiB, and a reset (Linux's
/// `/proc/self/status` VmHWM and `clear_refs`); `None` where that is not available.
#[allow(clippy::disallowed_methods)] // This crate is not simulated: /proc is read directly.
fn peak_rss_mib(reset: bool) -> Option<f64> {
    if reset {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `bench-check --synthetic`: generated etcd histories (see [`crate::synth`]) checked once each
/// as the scenario harness checks them, with the verdict expected by construction, search
/// counters and the peak memory of the check.
fn bench_synthetic(options: &CheckOptions, save: Option<&Path>) -> Result<(), CliError> {
    if let Some(dir) = save {
        create_dir(dir)?;
    }
    println!(
        "{:<26} {:>7} {:<17} {:<17} {:>10} {:>11} {:>9} {:>9}",
        "history", "ops", "expected", "verdict", "ms", "configs", "states", "peak MiB"
    );
    let mut wrong = 0;
    let all = synthetic_rows();
    let rows = all.len();
    for (name, spec, expected) in all {
        let history = synth::etcd_history(&spec);
        if let Some(dir) = save {
            let json = JsonHistory::Etcd {
                operations: history.clone(),
                faults: Vec::new(),
                watches: Vec::new(),
            };
            let text = serde_json::to_string(&json).map_err(|e| CliError::Usage(e.to_string()))?;
            write_file(&dir.join(format!("{name}.json")), &text)?;
        }
        peak_rss_mib(true);
        let run = check_etcd_run(&history, &[], options);
        let peak = peak_rss_mib(false).map_or_else(|| "-".to_string(), |m| format!("{m:.0}"));
        let stats = run
            .linearizability
            .partitions
            .iter()
            .fold((0, 0), |(v, s), p| {
                (v + p.stats.visited, s + p.stats.states)
            });
        if run.verdict() != expected {
            wrong += 1;
        }
        println!(
            "{name:<26} {:>7} {:<17} {:<17} {:>10.1} {:>11} {:>9} {peak:>9}",
            history.len(),
            verdict_name(expected),
            verdict_name(run.verdict()),
            ms(run.elapsed),
            stats.0,
            stats.1,
        );
        if run.verdict() != expected {
            println!(
                "  {}",
                verdict_line(&run.model, &history, &run.linearizability)
            );
        }
    }
    println!(
        "{} of {} histories got the verdict they were built with",
        rows - wrong,
        rows
    );
    Ok(())
}

/// `etcd-sim bench-check DIR [--no-partition] [--timeout SECS]`: per-file checking time (best of
/// five after a warm-up) and a last line `total: N files, X ms`. Returns the exit code.
pub fn bench_check_main(args: &[String]) -> i32 {
    let run = || -> Result<(), CliError> {
        let a = parse_args(args, false)?;
        if a.synthetic {
            return bench_synthetic(&a.options, a.save.as_deref());
        }
        let files = list_dir(a.path())?;
        let mut total = Duration::ZERO;
        for path in &files {
            let (verdict, best) = match load(path, None)? {
                Loaded::Register(ops, _) => bench_one(timed(&Register, &ops, &a.options)),
                Loaded::Kv(ops, _) => bench_one(timed(&Kv, &ops, &a.options)),
                Loaded::Etcd(ops, _, watches) => bench_one(|| {
                    let r = check_etcd_run(&ops, &watches, &a.options);
                    (r.verdict(), r.elapsed)
                }),
            };
            total += best;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            println!("{name:<20} {verdict:<17} {:>10.3} ms", ms(best));
        }
        println!("total: {} files, {:.1} ms", files.len(), ms(total));
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e @ CliError::Usage(_)) => {
            eprintln!("error: {e}\n{BENCH_USAGE}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
