//! Every file of the porcupine reference data gets the verdict its folder's `EXPECTED` lists
//! (kv files with and without per-key partitioning).

use std::path::{Path, PathBuf};

use linearizability::models::kv::Kv;
use linearizability::models::register::Register;
use linearizability::parse::{parse_jepsen_etcd, parse_porcupine_kv};
use linearizability::{check_with, CheckOptions, Verdict};

fn data_dir(sub: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/porcupine")
        .join(sub);
    assert!(
        dir.is_dir(),
        "reference data missing: expected {} (the repository is cloned at X/main with the shared data at X/shared)",
        dir.display()
    );
    dir
}

fn expected(dir: &Path) -> Vec<(String, Verdict)> {
    let text = std::fs::read_to_string(dir.join("EXPECTED")).expect("EXPECTED readable");
    let list: Vec<(String, Verdict)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let file = it.next().expect("file name").to_string();
            let verdict = match it.next() {
                Some("linearizable") => Verdict::Linearizable,
                Some("not-linearizable") => Verdict::NotLinearizable,
                other => panic!("bad EXPECTED line {l:?}: {other:?}"),
            };
            (file, verdict)
        })
        .collect();
    assert!(!list.is_empty(), "EXPECTED in {} is empty", dir.display());
    list
}

#[test]
fn jepsen_etcd_logs_match_expected() {
    let dir = data_dir("etcd");
    let list = expected(&dir);
    let logs = std::fs::read_dir(&dir)
        .expect("etcd dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    assert_eq!(logs, list.len(), "every log must be listed in EXPECTED");
    let mut wrong = Vec::new();
    for (file, want) in &list {
        let text = std::fs::read_to_string(dir.join(file)).expect("log readable");
        let ops = parse_jepsen_etcd(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = check_with(&Register, &ops, &CheckOptions::default())
            .result
            .verdict();
        if got != *want {
            wrong.push(format!("{file}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn porcupine_kv_logs_match_expected_with_and_without_partitioning() {
    let dir = data_dir("kv");
    let list = expected(&dir);
    let mut wrong = Vec::new();
    for (file, want) in &list {
        let text = std::fs::read_to_string(dir.join(file)).expect("log readable");
        let ops = parse_porcupine_kv(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for partition in [true, false] {
            let opts = CheckOptions {
                partition,
                ..CheckOptions::default()
            };
            let got = check_with(&Kv, &ops, &opts).result.verdict();
            if got != *want {
                wrong.push(format!(
                    "{file} (partition={partition}): expected {want:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}
