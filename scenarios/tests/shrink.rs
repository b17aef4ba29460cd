//! `etcd-sim shrink`: a failing run of a planted defect shrinks to a smaller run that fails with
//! the same signature, replays from its files with the same trace hash, and shrinks the same
//! way twice; a passing run is refused.

use scenarios::catalogue::{self, Scenario};
use scenarios::nemesis::FaultSchedule;
use scenarios::report::{self, Summary};
use scenarios::runner::{run, RunOptions};
use scenarios::shrink::{shrink, ShrinkArgs, ShrinkReport};
use scenarios::workload::{WorkloadConfig, WorkloadFile};
use std::path::{Path, PathBuf};

fn scenario(name: &str) -> Scenario {
    catalogue::find(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

/// The report of the first failing seed of `sc` in `seeds`, written under `root`.
fn failing_report(sc: &Scenario, seeds: std::ops::Range<u64>, root: &Path) -> PathBuf {
    for seed in seeds.clone() {
        let o = run(sc, seed, &RunOptions::default()).expect("run");
        if o.summary.verdict != "pass" {
            return report::write_dir(root, &o).expect("write the report");
        }
    }
    panic!("{} passed every seed of {seeds:?}", sc.name);
}

/// Shrinks `report` into `out` (a budget the tests that check determinism never reach).
fn shrink_into(report: &Path, out: &Path) -> ShrinkReport {
    shrink_within(report, out, "10m", 1)
}

fn shrink_within(report: &Path, out: &Path, budget: &str, jobs: usize) -> ShrinkReport {
    let args = ShrinkArgs {
        report: report.to_path_buf(),
        out: Some(out.to_path_buf()),
        budget: budget.into(),
        jobs: Some(jobs),
        fresh: false,
    };
    shrink(&args).unwrap_or_else(|e| panic!("shrink {}: {e:#}", report.display()));
    let text = std::fs::read_to_string(out.join("shrink.json")).expect("shrink.json");
    serde_json::from_str(&text).expect("parse shrink.json")
}

/// Runs the shrunk files again, as `etcd-sim run --faults --workload` does.
fn replay(sc: &Scenario, seed: u64, out: &Path, defects: &[String]) -> Summary {
    let workload = WorkloadFile::load(&out.join("workload.json")).expect("workload");
    let members = workload.members.unwrap_or(sc.members);
    let schedule = FaultSchedule::load(&out.join("schedule.json"), members).expect("schedule");
    let opts = RunOptions {
        schedule: Some(schedule),
        schedule_source: Some(format!("file {}", out.join("schedule.json").display())),
        workload: Some((workload, out.join("workload.json").display().to_string())),
        defects: defects.to_vec(),
        skip_twin: true,
        ..RunOptions::default()
    };
    run(sc, seed, &opts).expect("replay").summary
}

fn shrunk_summary(out: &Path, sc: &Scenario, seed: u64) -> Summary {
    let dir = out.join(format!("{}-seed{seed}", sc.name));
    report::read_summary(&dir)
        .expect("the shrunk run's report")
        .0
}

#[test]
fn a_planted_defect_shrinks_to_a_smaller_run_failing_alike_and_replayable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sc = scenario(catalogue::DEFECT_SKIP_READ_INDEX);
    let report = failing_report(&sc, 0..5, tmp.path());
    let original = report::read_summary(&report).expect("summary").0;
    let out = tmp.path().join("shrunk");
    let r = shrink_into(&report, &out);
    assert_eq!(Some(&r.signature), original.signatures.first());
    assert!(
        r.shrunk.operations < r.original.operations,
        "operations not cut: {r:?}"
    );
    assert!(r.shrunk.faults <= r.original.faults, "{r:?}");
    assert!(
        r.shrunk.clients < r.original.clients || r.shrunk.sim_seconds < r.original.sim_seconds,
        "{r:?}"
    );
    let small = shrunk_summary(&out, &sc, original.seed);
    assert!(small.signatures.contains(&r.signature), "{small:?}");
    assert!(small.replay.contains("--faults") && small.replay.contains("--workload"));
    let again = replay(&sc, original.seed, &out, &original.defects);
    assert_eq!(
        again.trace_hash, small.trace_hash,
        "the files replay the run"
    );
    assert!(again.signatures.contains(&r.signature));
    // The one-screen view links the original run's history and shows the shrunk one.
    let page = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    let original_link = format!(
        "../{}/history.html",
        report.file_name().unwrap().to_string_lossy()
    );
    assert!(
        page.contains(&original_link),
        "no {original_link} in index.html"
    );
    assert!(
        page.contains("<iframe src=\""),
        "the shrunk history is shown"
    );

    // The same failing run shrinks the same way, whatever the number of tries run at once.
    let out2 = tmp.path().join("shrunk-again");
    let r2 = shrink_within(&report, &out2, "10m", 2);
    assert_eq!((&r2.shrunk, r2.accepted), (&r.shrunk, r.accepted));
    for file in ["schedule.json", "workload.json"] {
        let a = std::fs::read(out.join(file)).expect("first");
        let b = std::fs::read(out2.join(file)).expect("second");
        assert_eq!(a, b, "{file} differs between two shrinks");
    }
    // Started again on the same out directory, the search resumes from its saved progress.
    let r3 = shrink_into(&report, &out);
    assert!(
        r3.tries > r.tries,
        "the count goes on: {} then {}",
        r.tries,
        r3.tries
    );
    assert!(r3.shrunk.operations <= r.shrunk.operations, "{r3:?}");
}

#[test]
fn a_lease_defect_shrinks_to_fewer_faults_or_operations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sc = scenario(catalogue::DEFECT_REVOKE_WITHOUT_LEADERSHIP_CHECK);
    let report = failing_report(&sc, 0..5, tmp.path());
    let r = shrink_into(&report, &tmp.path().join("shrunk"));
    assert!(
        r.shrunk.operations < r.original.operations || r.shrunk.faults < r.original.faults,
        "nothing cut: {r:?}"
    );
    assert!(r.signature.starts_with("lease"), "{}", r.signature);
}

#[test]
fn a_passing_run_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = run(&scenario("baseline"), 1, &RunOptions::default()).expect("run");
    assert_eq!(o.summary.verdict, "pass");
    let dir = report::write_dir(tmp.path(), &o).expect("write");
    let args = ShrinkArgs {
        report: dir,
        out: None,
        budget: "1m".into(),
        jobs: None,
        fresh: false,
    };
    let err = shrink(&args).expect_err("a passing run has nothing to shrink");
    assert!(format!("{err:#}").contains("passed"), "{err:#}");
}

#[test]
fn known_bug_defects_shrink_and_keep_their_signature() {
    for name in [
        catalogue::DEFECT_APPLY_BEFORE_WAL_SYNC,
        catalogue::DEFECT_CONSISTENT_INDEX_BEFORE_APPLY,
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sc = scenario(name);
        let report = failing_report(&sc, 0..5, tmp.path());
        let out = tmp.path().join("shrunk");
        // The best found within the budget (CI time): smaller, and failing alike.
        let r = shrink_within(&report, &out, "20s", 1);
        assert!(r.shrunk.faults <= r.original.faults, "{name}: {r:?}");
        assert!(
            r.shrunk.faults < r.original.faults || r.shrunk.operations < r.original.operations,
            "{name}: nothing cut: {r:?}"
        );
        let seed = report::read_summary(&report).expect("summary").0.seed;
        let small = shrunk_summary(&out, &sc, seed);
        assert!(small.signatures.contains(&r.signature), "{name}: {small:?}");
    }
}

/// A run of `baseline`'s seed 1 for `duration_ms` with its workload changed by `edit`, as
/// `etcd-sim run --workload` runs one.
fn run_baseline_with(
    duration_ms: u64,
    edit: impl FnOnce(&mut WorkloadConfig),
) -> scenarios::report::Outcome {
    let sc = scenario("baseline");
    let mut workload = WorkloadFile {
        duration_ms,
        workload: sc.workload.clone(),
        members: None,
    };
    edit(&mut workload.workload);
    let opts = RunOptions {
        workload: Some((workload, "workload.json".into())),
        skip_twin: true,
        ..RunOptions::default()
    };
    run(&sc, 1, &opts).expect("run")
}

/// `start_after_ms` (a shrunk workload's late start): the traffic clients and the compactor
/// send nothing before it, and the run still passes; the same run without it starts at once.
#[test]
fn a_late_start_keeps_the_traffic_quiet_until_then() {
    let first_traffic_call = |start_after_ms: u64| {
        let o = run_baseline_with(4_000, |w| w.start_after_ms = start_after_ms);
        assert_eq!(o.summary.verdict, "pass", "{:#?}", o.summary.failures);
        let traffic: Vec<_> = o
            .records
            .iter()
            .filter(|r| scenarios::workload::is_traffic_host(&r.host) || r.host == "k0")
            .collect();
        let first = traffic.iter().map(|r| r.call_us).min().expect("traffic");
        (first, traffic.len())
    };
    let (at_once, all) = first_traffic_call(0);
    let (late, fewer) = first_traffic_call(3_000);
    assert!(late >= at_once + 2_900_000, "{at_once} µs, then {late} µs");
    assert!(fewer * 2 < all, "{fewer} requests of {all}");
}

/// `drop_hosts` (a shrunk workload's dropped clients): a dropped traffic client, compactor or
/// watcher sends nothing and the run still passes; the others still send.
#[test]
fn dropped_client_hosts_send_nothing() {
    let hosts_heard = |drop_hosts: &[&str]| {
        let o = run_baseline_with(3_000, |w| {
            w.drop_hosts = drop_hosts.iter().map(|h| h.to_string()).collect()
        });
        assert_eq!(o.summary.verdict, "pass", "{:#?}", o.summary.failures);
        let hosts: std::collections::BTreeSet<String> =
            o.records.iter().map(|r| r.host.clone()).collect();
        (hosts, o.summary.watch.watchers)
    };
    let (all, watchers) = hosts_heard(&[]);
    assert!(all.contains("c1") && all.contains("k0"), "{all:?}");
    let (some, fewer_watchers) = hosts_heard(&["c1", "k0", "w0"]);
    assert!(!some.contains("c1") && !some.contains("k0"), "{some:?}");
    assert!(some.contains("c0") && some.contains("c2"), "{some:?}");
    assert_eq!(fewer_watchers + 1, watchers);
}

/// `drop_requests` (a shrunk workload's dropped requests): a traffic client does not send the
/// requests named, and sends the ones it drew after them as it did without the drop.
#[test]
fn dropped_requests_are_not_sent() {
    let kinds_of_c0 = |dropped: Vec<u64>| {
        let o = run_baseline_with(3_000, |w| {
            w.drop_requests = [("c0".to_string(), dropped.clone())].into();
        });
        assert_eq!(o.summary.verdict, "pass", "{:#?}", o.summary.failures);
        let mut c0: Vec<_> = o.records.iter().filter(|r| r.host == "c0").collect();
        c0.sort_by_key(|r| r.call_us);
        c0.into_iter().map(|r| r.kind.clone()).collect::<Vec<_>>()
    };
    let all = kinds_of_c0(vec![]);
    let fewer = kinds_of_c0(vec![0, 1, 2, 5]);
    let mut expected = all.clone();
    expected.drain(..3);
    expected.remove(2);
    let compared = fewer.len().min(expected.len());
    assert!(compared >= 10, "c0 sent {all:?}, then {fewer:?}");
    assert_eq!(fewer[..compared], expected[..compared], "c0 sent {all:?}");
}

/// `traffic_draw`: another draw of the clients' requests is another run, replayable from the
/// same file; the draw is what differs.
#[test]
fn another_traffic_draw_is_another_replayable_run() {
    let run_draw = |draw: u64| {
        run_baseline_with(2_000, |w| w.traffic_draw = draw)
            .summary
            .trace_hash
    };
    assert_eq!(run_draw(3), run_draw(3));
    assert_ne!(run_draw(0), run_draw(3));
}

#[test]
fn a_workload_dropping_what_it_cannot_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("workload.json");
    let mut workload = WorkloadFile {
        duration_ms: 2_000,
        workload: scenario("baseline").workload,
        members: None,
    };
    workload.workload.drop_hosts = vec!["m0".into()];
    std::fs::write(&path, serde_json::to_vec(&workload).expect("json")).expect("write");
    let err = WorkloadFile::load(&path).expect_err("m0 is a member, not a client host");
    assert!(format!("{err:#}").contains("\"m0\""), "{err:#}");
    workload.workload.drop_hosts.clear();
    workload.workload.drop_requests = [("w0".to_string(), vec![1])].into();
    std::fs::write(&path, serde_json::to_vec(&workload).expect("json")).expect("write");
    let err = WorkloadFile::load(&path).expect_err("a watcher's requests are not drawn");
    assert!(
        format!("{err:#}").contains("drop_requests names \"w0\""),
        "{err:#}"
    );
}
