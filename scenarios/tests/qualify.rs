//! `etcd-sim qualify`: shards run as separate processes and merged conclude what one
//! unsharded run over the same plan concludes; merging refuses shards that do not belong
//! together; a missing shard leaves the merge incomplete.

use scenarios::qualify::record::{Qualification, Status};
use std::path::Path;
use std::process::{Command, Output};

/// A small plan with a failing scenario (the stale-reads negative control), so that failure
/// signatures are compared too.
const PLAN: &[&str] = &[
    "qualify",
    "--seeds",
    "2",
    "--scenario",
    "partition-leader",
    "--scenario",
    "negative-stale-reads",
    "--no-defects",
    "--jobs",
    "1",
];

fn etcd_sim(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcd-sim"));
    c.args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn load(dir: &Path) -> Qualification {
    Qualification::load(dir).expect("qualification.json").0
}

#[test]
fn shards_merged_conclude_what_one_unsharded_run_concludes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let whole = tmp.path().join("whole");
    let one = etcd_sim(PLAN)
        .args(["--report", whole.to_str().unwrap()])
        .output()
        .expect("run etcd-sim");
    assert_eq!(one.status.code(), Some(1), "{}", text(&one));
    // Three shards as three processes at once.
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let dir = tmp.path().join(format!("shard-{i}"));
            let child = etcd_sim(PLAN)
                .args([
                    "--shard",
                    &format!("{i}/3"),
                    "--report",
                    dir.to_str().unwrap(),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn etcd-sim");
            (dir, child)
        })
        .collect();
    let mut dirs = Vec::new();
    for (dir, child) in shards {
        let out = child.wait_with_output().expect("shard");
        // A shard with one of the failing runs fails; one without passes.
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        dirs.push(dir);
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["qualify", "merge"];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    args.extend(["--out", merged.to_str().unwrap()]);
    let m = etcd_sim(&args).output().expect("merge");
    assert_eq!(m.status.code(), Some(1), "{}", text(&m));

    let (a, b) = (load(&whole), load(&merged));
    assert_eq!(a.plan_fingerprint, b.plan_fingerprint);
    assert_eq!(a.verdict_set(), b.verdict_set());
    assert_eq!(a.verdict, "fail");
    assert_eq!(b.verdict, "fail");
    let sigs = |q: &Qualification| -> Vec<(String, usize)> {
        q.signatures
            .iter()
            .map(|g| (g.signature.clone(), g.runs))
            .collect()
    };
    assert_eq!(sigs(&a), sigs(&b));
    assert!(
        sigs(&a)
            .iter()
            .any(|(s, _)| s.starts_with("linearizability")),
        "{:?}",
        sigs(&a)
    );
    // Every determinism re-run was decided (by the merge if its original ran elsewhere).
    assert!(b
        .results
        .iter()
        .all(|r| r.status != Status::Pending && r.status != Status::NotRun));
    // The failing runs' reports travelled with the merge.
    for r in b.results.iter().filter(|r| r.status == Status::Fail) {
        let rep = r.report.as_ref().expect("failed run keeps its report");
        assert!(merged.join(rep).join("history.html").is_file(), "{rep}");
    }
    let index = std::fs::read_to_string(merged.join("index.html")).expect("index.html");
    assert!(index.contains("linearizability: revision went back"));
    assert!(index.contains("<svg"), "charts drawn");

    // Refusals: a shard of another plan, a shard given twice.
    let other = tmp.path().join("other");
    let o = etcd_sim(&["qualify", "--seeds", "1", "--scenario", "partition-leader"])
        .args([
            "--no-defects",
            "--shard",
            "0/3",
            "--report",
            other.to_str().unwrap(),
        ])
        .output()
        .expect("other plan");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let refuse = |dirs: &[&Path]| {
        let mut args = vec!["qualify".to_string(), "merge".to_string()];
        args.extend(dirs.iter().map(|d| d.display().to_string()));
        args.extend([
            "--out".to_string(),
            tmp.path().join("x").display().to_string(),
        ]);
        let out = etcd_sim(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .expect("merge");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        text(&out)
    };
    let e = refuse(&[&dirs[1], &other]);
    assert!(e.contains("different seed plans"), "{e}");
    assert!(e.contains("1 seeds") && e.contains("2 seeds"), "{e}");
    let e = refuse(&[&dirs[0], &dirs[0]]);
    assert!(e.contains("shard 0/3 twice"), "{e}");

    // A missing shard: its items are not run, the verdict incomplete (with no failure in the
    // shards given, which then would decide it).
    let partial = tmp.path().join("partial");
    let passing: Vec<&Path> = dirs
        .iter()
        .filter(|d| load(d).verdict == "pass")
        .map(|d| d.as_path())
        .collect();
    assert!(!passing.is_empty() && passing.len() < 3, "a passing shard");
    let mut args = vec!["qualify".to_string(), "merge".to_string()];
    args.extend(passing.iter().map(|d| d.display().to_string()));
    args.extend(["--out".to_string(), partial.display().to_string()]);
    let p = etcd_sim(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .expect("merge");
    assert_eq!(p.status.code(), Some(1), "{}", text(&p));
    let q = load(&partial);
    assert_eq!(q.verdict, "incomplete", "{}", text(&p));
    assert!(q.results.iter().any(|r| r
        .why
        .iter()
        .any(|w| w.contains("is missing from the merge"))));
}
