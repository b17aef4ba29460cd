//! The `etcd-sim` command line: listing, usage errors with exit code 2, a run with a fault
//! schedule from a file, and replay confirming the trace hash.

use std::process::Command;

fn etcd_sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-sim"))
        .args(args)
        .output()
        .expect("run etcd-sim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_names_every_scenario() {
    let (code, out, _) = etcd_sim(&["list"]);
    assert_eq!(code, 0);
    for name in scenarios::catalogue::names() {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
}

#[test]
fn usage_errors_exit_2_with_one_clear_message() {
    let (code, _, err) = etcd_sim(&["run", "no-such-scenario", "--seed", "1"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown scenario") && err.contains("baseline"),
        "{err}"
    );
    let (code, _, err) = etcd_sim(&["sweep", "baseline", "--seeds", "5..2"]);
    assert_eq!(code, 2);
    assert!(err.contains("malformed seed range"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("faults.json");
    std::fs::write(
        &bad,
        r#"{"faults":[{"at_ms":1,"duration_ms":5,"fault":{"kind":"isolate","node":"m7"}}]}"#,
    )
    .unwrap();
    let (code, _, err) = etcd_sim(&[
        "run",
        "baseline",
        "--seed",
        "1",
        "--faults",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown node \"m7\""), "{err}");
    let (code, _, err) = etcd_sim(&["replay", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
}

/// `hunt --scenario` runs another scenario with the bug's defect switched on; the failure it
/// finds names its signature and replays from its command alone, defect included.
#[test]
fn a_hunt_in_another_scenario_replays_with_its_defect() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (code, out, err) = etcd_sim(&[
        "hunt",
        "15220",
        "--scenario",
        "compaction-under-watch",
        "--seeds",
        "1..7",
        "--report-dir",
        root,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("caught progress-bypasses-watch-queue"),
        "{out}"
    );
    assert!(out.contains("[watch/bookmarkable: "), "{out}");
    let replay = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .expect("a replay command");
    assert!(
        replay.ends_with("--defect progress-bypasses-watch-queue"),
        "{replay}"
    );
    let report = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("report: "))
        .expect("a report");
    let (code, out, err) = etcd_sim(&["replay", report, "--report-dir", root]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("identical") && out.contains("verdict FAIL (recorded FAIL)"),
        "{out}"
    );
    let (code, _, err) = etcd_sim(&["run", "baseline", "--seed", "1", "--defect", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown defect \"nope\""), "{err}");
}

#[test]
fn robustness_traffic_replaces_the_scenarios_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (code, out, err) = etcd_sim(&[
        "run",
        "baseline",
        "--seed",
        "4",
        "--traffic",
        "etcd-high",
        "--rate",
        "300",
        "--report-dir",
        root,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report = dir.path().join("baseline-seed4");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["traffic"], "etcd-high");
    assert_eq!(summary["rate"], 300);
    let replay = summary["replay"].as_str().unwrap();
    assert!(
        replay.ends_with("--traffic etcd-high --rate 300"),
        "{replay}"
    );
    // 15 s at 300 req/s, and the compactor's compactions in the history.
    assert!(
        summary["ops"]["total"].as_u64().unwrap() > 3_000,
        "{}",
        summary["ops"]
    );
    let history = std::fs::read_to_string(report.join("history.json")).unwrap();
    assert!(history.contains("\"compact\"") || history.contains("Compact"));
    let (code, out, err) = etcd_sim(&["replay", report.to_str().unwrap(), "--report-dir", root]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("identical"), "{out}");
    let (code, _, err) = etcd_sim(&["run", "baseline", "--seed", "1", "--traffic", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown traffic \"nope\"") && err.contains("etcd-high"),
        "{err}"
    );
}

#[test]
fn sweep_takes_the_traffic_flags_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (code, out, err) = etcd_sim(&[
        "sweep",
        "baseline",
        "--seeds",
        "2..3",
        "--traffic",
        "etcd-delete-leases",
        "--rate",
        "120",
        "--report-dir",
        root,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("baseline-seed2").join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["traffic"], "etcd-delete-leases");
    assert_eq!(summary["rate"], 120);
    // The profile's lease clients granted leases that expired or were revoked.
    let history = std::fs::read_to_string(dir.path().join("baseline-seed2/history.json")).unwrap();
    assert!(
        history.contains("\"lease_expire\""),
        "no lease expiry events"
    );
    for (flags, msg) in [
        (["--traffic", "nope"], "unknown traffic \"nope\""),
        (["--rate", "0"], "--rate must be at least 1"),
    ] {
        let mut args = vec!["sweep", "baseline", "--seeds", "0..1"];
        args.extend(flags);
        let (code, _, err) = etcd_sim(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn run_with_a_schedule_file_then_replay_it() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    std::fs::write(
        &faults,
        r#"{"faults":[
            {"at_ms":2000,"duration_ms":3000,"fault":{"kind":"pause","node":"follower"}},
            {"at_ms":7000,"duration_ms":2000,"fault":{"kind":"crash","node":"leader"}}
        ]}"#,
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let (code, out, err) = etcd_sim(&[
        "run",
        "baseline",
        "--seed",
        "4",
        "--faults",
        faults.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    // The baseline expects no leader change; crashing the leader makes one, so this run
    // fails on that expectation alone and prints its replay command.
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("expected at most 0 leader changes"), "{out}");
    assert!(
        out.contains(
            "replay: cargo run --release -p scenarios --bin etcd-sim -- run baseline --seed 4"
        ),
        "{out}"
    );
    let report = reports.join("baseline-seed4");
    for f in [
        "summary.json",
        "history.json",
        "records.json",
        "watches.json",
        "trace.jsonl",
        "history.html",
        "faults.json",
    ] {
        assert!(report.join(f).exists(), "{f} missing");
    }
    let summary = std::fs::read_to_string(report.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"fault_schedule_source\": \"file"),
        "{summary}"
    );
    assert!(summary.contains("pause m"), "{summary}");
    let (code, out, err) = etcd_sim(&[
        "replay",
        report.to_str().unwrap(),
        "--report-dir",
        dir.path().join("replays").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("identical"), "{out}");
    // The history file is the checker's format.
    let (code, out, _) = etcd_sim(&["check", report.join("history.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}
