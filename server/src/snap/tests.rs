//! Snapshot store tests over the real disk in a temp dir.

use super::*;
use crate::seam::real::RealDisk;
use raft::eraftpb::{ConfState, SnapshotMetadata};

fn disk() -> Arc<dyn Disk> {
    Arc::new(RealDisk)
}

fn snap(term: u64, index: u64) -> Snapshot {
    let mut s = Snapshot::default();
    s.set_data(format!("state at {index}").repeat(20).into_bytes().into());
    s.set_metadata(SnapshotMetadata {
        term,
        index,
        ..Default::default()
    });
    s.mut_metadata().set_conf_state(ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        ..Default::default()
    });
    s
}

fn names(dir: &Path) -> Vec<String> {
    disk().list(dir).unwrap()
}

fn read(p: &Path) -> Vec<u8> {
    disk()
        .open(p, OpenMode::Existing)
        .unwrap()
        .read_all()
        .unwrap()
}

fn overwrite(p: &Path, data: &[u8]) {
    let f = disk().open(p, OpenMode::CreateOrOpen).unwrap();
    f.set_len(0).unwrap();
    f.write_at(0, data).unwrap();
}

async fn three(dir: &Path) -> Snapshotter {
    disk().create_dir_all(dir).unwrap();
    let ss = Snapshotter::new(disk(), dir);
    for (t, i) in [(1, 10), (2, 20), (2, 30)] {
        ss.save(&snap(t, i)).await.unwrap();
    }
    ss
}

#[tokio::test]
async fn save_and_load_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member/snap");
    let ss = Snapshotter::new(disk(), &dir);
    assert_eq!(ss.load_newest().unwrap(), None, "missing dir: no snapshot");
    ss.save(&Snapshot::default()).await.unwrap(); // empty: not saved
    assert_eq!(ss.load_newest().unwrap(), None);
    let ss = three(&dir).await;
    assert_eq!(
        names(&dir),
        vec![snap_name(1, 10), snap_name(2, 20), snap_name(2, 30)]
    );
    assert_eq!(snap_name(2, 30), "0000000000000002-000000000000001e.snap");
    assert_eq!(ss.load_newest().unwrap(), Some(snap(2, 30)));
    assert_eq!(ss.load_file(&snap_name(1, 10)).unwrap(), snap(1, 10));
}

#[tokio::test]
async fn corrupt_newest_falls_back_to_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let ss = three(&dir).await;
    let newest = dir.join(snap_name(2, 30));
    let mut buf = read(&newest);
    let mid = buf.len() / 2;
    buf[mid] ^= 0x01;
    overwrite(&newest, &buf);

    let err = ss.load_file(&snap_name(2, 30)).unwrap_err();
    assert!(
        matches!(&err, SnapError::Corrupt { file, .. } if file == &newest),
        "{err}"
    );
    assert!(err.to_string().contains(&newest.display().to_string()));

    assert_eq!(ss.load_newest().unwrap(), Some(snap(2, 20)));
    assert!(!disk().exists(&newest));
    assert!(disk().exists(&dir.join(format!("{}.broken", snap_name(2, 30)))));
    // Stable on the next start.
    assert_eq!(ss.load_newest().unwrap(), Some(snap(2, 20)));
}

#[tokio::test]
async fn truncated_or_misnamed_files_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let ss = three(&dir).await;
    let newest = dir.join(snap_name(2, 30));
    let buf = read(&newest);
    overwrite(&newest, &buf[..buf.len() - 7]);
    // A valid file under a newer name that does not match its content.
    overwrite(
        &dir.join(snap_name(3, 40)),
        &read(&dir.join(snap_name(2, 20))),
    );
    overwrite(&dir.join(snap_name(3, 50)), &[1, 2]);
    assert_eq!(ss.load_newest().unwrap(), Some(snap(2, 20)));
    assert_eq!(
        names(&dir),
        vec![
            snap_name(1, 10),
            snap_name(2, 20),
            format!("{}.broken", snap_name(2, 30)),
            format!("{}.broken", snap_name(3, 40)),
            format!("{}.broken", snap_name(3, 50)),
        ]
    );
}

#[tokio::test]
async fn load_newest_available_follows_wal_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let ss = three(&dir).await;
    let markers = [
        WalSnapshot { index: 10, term: 1 },
        WalSnapshot { index: 20, term: 2 },
    ];
    assert_eq!(
        ss.load_newest_available(&markers).unwrap(),
        Some(snap(2, 20))
    );
    assert_eq!(ss.load_newest_available(&[]).unwrap(), None);
    let wrong_term = [WalSnapshot { index: 30, term: 1 }];
    assert_eq!(ss.load_newest_available(&wrong_term).unwrap(), None);
}

#[tokio::test]
async fn purge_keeps_newest_and_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let ss = three(&dir).await;
    overwrite(&dir.join("db"), b"backend");
    ss.save(&snap(3, 40)).await.unwrap();
    assert_eq!(ss.purge(2).unwrap(), 2);
    assert_eq!(
        names(&dir),
        vec![snap_name(2, 30), snap_name(3, 40), "db".to_string()]
    );
    assert_eq!(ss.purge(2).unwrap(), 0);
    assert_eq!(ss.load_newest().unwrap(), Some(snap(3, 40)));
}

#[tokio::test]
async fn leftover_temp_file_is_removed_and_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let _ = three(&dir).await;
    let stray = dir.join(format!("{:016x}-{:016x}.tmp", 3, 40));
    overwrite(&stray, b"half a snapshot");
    let ss = Snapshotter::new(disk(), &dir);
    assert!(!disk().exists(&stray));
    assert_eq!(ss.load_newest().unwrap(), Some(snap(2, 30)));
}

#[test]
fn names_round_trip() {
    assert_eq!(parse_snap_name(&snap_name(7, 99)), Some((7, 99)));
    assert_eq!(parse_snap_name("7-99.snap"), None);
    assert_eq!(parse_snap_name("db"), None);
    assert!(is_snap_tmp(&format!("{:016x}-{:016x}.tmp", 1, 2)));
    assert!(!is_snap_tmp("db.tmp"));
}
