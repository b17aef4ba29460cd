//! `etcd-server migrate` (etcdutl's migrate) on the data dir of a stopped member of the real
//! binary: its checks and messages, the WAL guard and `--force`, and what the migrated data
//! starts on.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{Cluster, Kind};
use std::process::Command;
use std::time::Duration;

fn migrate(data_dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-server"))
        .arg("migrate")
        .arg(format!("--data-dir={}", data_dir.display()))
        .args(args)
        .output()
        .expect("run etcd-server migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn wait_exit(c: &mut Cluster, i: usize) -> bool {
    for _ in 0..100 {
        if c.exited(i) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_down_needs_force_while_the_wal_holds_3_6_entries_and_up_works() {
    // A 3.6.0 member: cluster version 3.6 set through the WAL, storage version 3.6.0.
    let mut c = Cluster::start(Kind::Ours, 1, &["--emulate-release=3.6.0"]);
    c.wait_ready(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kill(0);
    let dir = c.members[0].data_dir.clone();

    let (code, _, err) = migrate(&dir, &["--target-version=3.5.0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("wrong target version format, expected \"X.Y\", got \"3.5.0\""),
        "{err}"
    );
    let (code, _, err) = migrate(&dir, &["--target-version=3.4"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("target version \"3.4\" not supported. Minimal \"3.5\""),
        "{err}"
    );
    let (code, out, _) = migrate(&dir, &["--target-version=3.6"]);
    assert_eq!(code, 0);
    assert!(out.contains("storage version up-to-date"), "{out}");
    let (code, _, err) = migrate(&dir, &["--target-version=3.5"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot downgrade storage, WAL contains newer entries, as the target version (3.5.0) is lower than the version (3.6.0) detected from WAL logs"),
        "{err}"
    );
    let (code, out, err) = migrate(&dir, &["--target-version=3.5", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("updated storage version"), "{out}");
    // The storage is 3.5's now, but the cluster version is still 3.6: 3.5 refuses to start.
    c.restart_with(0, &["--emulate-release=3.5.20"]);
    assert!(
        wait_exit(&mut c, 0).await,
        "3.5.20 started on a 3.6 cluster's data"
    );
    assert!(
        c.log(0)
            .contains("invalid downgrade; server version is lower than determined cluster version"),
        "{}",
        c.log(0)
    );

    // 3.5 data migrated up starts on 3.6.0.
    let mut c = Cluster::start(Kind::Ours, 1, &["--emulate-release=3.5.20"]);
    c.wait_ready(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kill(0);
    let dir = c.members[0].data_dir.clone();
    let (code, out, err) = migrate(&dir, &["--target-version=3.6"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("new-storage-version 3.6.0"), "{out}");
    c.restart_with(0, &["--emulate-release=3.6.0"]);
    c.wait_ready(Duration::from_secs(20)).await;
    let missing = tempfile::tempdir().expect("temp dir");
    let (code, _, err) = migrate(missing.path(), &["--target-version=3.6"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such database"), "{err}");
}
