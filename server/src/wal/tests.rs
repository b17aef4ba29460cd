//! WAL tests over the real disk in a temp dir.

use super::*;
use crate::seam::real::RealDisk;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) fn disk() -> Arc<dyn Disk> {
    Arc::new(RealDisk)
}

pub(super) fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("value-{index}-{term}-{}", "x".repeat((index % 7) as usize)).into(),
        ..Default::default()
    }
}

pub(super) fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| ent(i, term)).collect()
}

pub(super) fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn small() -> WalOptions {
    WalOptions { segment_size: 1024 }
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    disk()
        .list(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .map(|n| dir.join(n))
        .collect()
}

fn read(p: &Path) -> Vec<u8> {
    disk()
        .open(p, OpenMode::Existing)
        .unwrap()
        .read_all()
        .unwrap()
}

fn write(p: &Path, data: &[u8]) {
    let f = disk().open(p, OpenMode::Existing).unwrap();
    f.set_len(0).unwrap();
    f.write_at(0, data).unwrap();
}

/// Header offsets of the records in a segment, parsed independently of the scanner.
fn record_offsets(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 9 <= buf.len() {
        let len = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        out.push((off, len));
        off += 9 + len;
    }
    assert_eq!(off, buf.len(), "test expects a clean segment");
    out
}

#[tokio::test]
async fn write_reopen_exact_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member/wal");
    assert!(!Wal::exists(&*disk(), &dir));
    let mut w = Wal::create(disk(), &dir, b"node=1,cluster=7", WalOptions::default())
        .await
        .unwrap();
    assert!(Wal::exists(&*disk(), &dir));
    assert_eq!(
        wal_files(&dir),
        vec![dir.join("0000000000000000-0000000000000000.wal")]
    );
    w.save(Some(&hs(1, 1, 0)), &ents(1..=5, 1), true)
        .await
        .unwrap();
    w.save(None, &ents(6..=10, 1), false).await.unwrap();
    w.save(Some(&hs(2, 3, 8)), &[], true).await.unwrap();
    w.save(Some(&HardState::default()), &[], true)
        .await
        .unwrap(); // empty: ignored
    assert!(w.fsync_stats().count >= 3);
    drop(w);
    assert!(matches!(
        Wal::create(disk(), &dir, b"x", WalOptions::default()).await,
        Err(WalError::AlreadyExists { .. })
    ));

    let (mut w, c) = Wal::open(disk(), &dir, WalOptions::default())
        .await
        .unwrap();
    assert_eq!(c.metadata, b"node=1,cluster=7");
    assert_eq!(c.hard_state, hs(2, 3, 8));
    assert_eq!(c.entries, ents(1..=10, 1));
    assert_eq!(c.snapshot, None);
    assert_eq!(w.last_index(), 10);

    // Appending after reopen continues the same log.
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    w.set_fsync_observer(move |_| {
        s2.fetch_add(1, Ordering::SeqCst);
    });
    w.save(Some(&hs(2, 3, 10)), &ents(11..=12, 2), true)
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    drop(w);
    let (_, c) = Wal::open(disk(), &dir, WalOptions::default())
        .await
        .unwrap();
    let mut want = ents(1..=10, 1);
    want.extend(ents(11..=12, 2));
    assert_eq!(c.entries, want);
    assert_eq!(c.hard_state, hs(2, 3, 10));
}

#[tokio::test]
async fn open_missing_dir_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Wal::open(disk(), &tmp.path().join("nope"), small())
        .await
        .unwrap_err();
    assert!(matches!(err, WalError::NotFound { .. }), "{err}");
}

/// Writes entries 1..=20 in single-entry saves and returns the segment path.
async fn twenty(dir: &Path) -> PathBuf {
    let mut w = Wal::create(disk(), dir, b"m", WalOptions::default())
        .await
        .unwrap();
    for i in 1..=20 {
        w.save(Some(&hs(1, 1, i - 1)), &[ent(i, 1)], true)
            .await
            .unwrap();
    }
    w.save(None, &[ent(21, 1)], true).await.unwrap();
    wal_files(dir).pop().unwrap()
}

async fn check_torn_then_append(dir: &Path, seg: &Path, good_len: usize) {
    let (mut w, c) = Wal::open(disk(), dir, WalOptions::default()).await.unwrap();
    assert_eq!(c.entries, ents(1..=20, 1), "the torn entry 21 is dropped");
    assert_eq!(c.hard_state, hs(1, 1, 19));
    assert_eq!(
        read(seg).len(),
        good_len,
        "file truncated to the last good record"
    );
    w.save(None, &ents(21..=22, 2), true).await.unwrap();
    drop(w);
    let (_, c) = Wal::open(disk(), dir, WalOptions::default()).await.unwrap();
    let mut want = ents(1..=20, 1);
    want.extend(ents(21..=22, 2));
    assert_eq!(c.entries, want);
}

#[tokio::test]
async fn torn_tail_mid_record_is_truncated_and_appending_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let seg = twenty(&dir).await;
    let buf = read(&seg);
    let (last_off, last_len) = *record_offsets(&buf).last().unwrap();
    // Cut in the middle of the last record's payload.
    write(&seg, &buf[..last_off + 9 + last_len / 2]);
    check_torn_then_append(&dir, &seg, last_off).await;
}

#[tokio::test]
async fn torn_tail_mid_header_plus_zeros_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let seg = twenty(&dir).await;
    let buf = read(&seg);
    let (last_off, _) = *record_offsets(&buf).last().unwrap();
    let mut torn = buf[..last_off + 5].to_vec();
    torn.extend_from_slice(&[0u8; 4096]); // an extended, zero-filled file end
    write(&seg, &torn);
    check_torn_then_append(&dir, &seg, last_off).await;
}

#[tokio::test]
async fn garbled_last_record_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let seg = twenty(&dir).await;
    let mut buf = read(&seg);
    let (last_off, last_len) = *record_offsets(&buf).last().unwrap();
    buf[last_off + 9 + last_len - 3] ^= 0xff;
    write(&seg, &buf);
    check_torn_then_append(&dir, &seg, last_off).await;
}

#[tokio::test]
async fn zero_filled_end_is_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let seg = twenty(&dir).await;
    let len = read(&seg).len();
    disk()
        .open(&seg, OpenMode::Existing)
        .unwrap()
        .set_len(len as u64 + 10_000)
        .unwrap();
    let (mut w, c) = Wal::open(disk(), &dir, WalOptions::default())
        .await
        .unwrap();
    assert_eq!(c.entries, ents(1..=21, 1));
    assert_eq!(read(&seg).len(), len);
    w.save(None, &[ent(22, 1)], true).await.unwrap();
    drop(w);
    let (_, c) = Wal::open(disk(), &dir, WalOptions::default())
        .await
        .unwrap();
    assert_eq!(c.entries, ents(1..=22, 1));
}

#[tokio::test]
async fn flipped_byte_in_middle_names_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let seg = twenty(&dir).await;
    let clean = read(&seg);
    let recs = record_offsets(&clean);
    let (off, len) = recs[recs.len() / 2];
    assert!(off > 0);
    // A payload byte, a crc byte, and a length byte (which makes the record look longer).
    for pos in [off + 9 + len / 2, off + 5, off + 1] {
        let mut buf = clean.clone();
        buf[pos] ^= 0x10;
        write(&seg, &buf);
        let err = Wal::open(disk(), &dir, WalOptions::default())
            .await
            .unwrap_err();
        match &err {
            WalError::Corrupt { file, offset, .. } => {
                assert_eq!(file, &seg, "flip at {pos}");
                assert_eq!(*offset, off as u64, "flip at {pos}: {err}");
            }
            other => panic!("flip at {pos}: expected Corrupt, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&seg.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("offset {off}:")), "{msg}");
        // Nothing was truncated: the damage is still there for an operator to inspect.
        assert_eq!(read(&seg), buf);
    }
}

#[tokio::test]
async fn damage_in_a_non_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"m", small()).await.unwrap();
    for i in 1..=60 {
        w.save(Some(&hs(1, 1, i)), &[ent(i, 1)], false)
            .await
            .unwrap();
    }
    drop(w);
    let files = wal_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    let first = &files[0];
    let clean = read(first);
    let (last_off, last_len) = *record_offsets(&clean).last().unwrap();

    // Its last record torn: in a non-last segment that is corruption, not a torn tail.
    write(first, &clean[..last_off + 9 + last_len / 2]);
    let err = Wal::open(disk(), &dir, small()).await.unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { file, offset, .. } if file == first && *offset == last_off as u64),
        "{err}"
    );

    // Its last record garbled.
    let mut buf = clean.clone();
    buf[last_off + 9 + last_len / 2] ^= 1;
    write(first, &buf);
    let err = Wal::open(disk(), &dir, small()).await.unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { file, offset, .. } if file == first && *offset == last_off as u64),
        "{err}"
    );

    write(first, &clean);
    let (_, c) = Wal::open(disk(), &dir, small()).await.unwrap();
    assert_eq!(c.entries, ents(1..=60, 1));
}

#[tokio::test]
async fn replay_across_many_segments_with_conflict_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"meta", small()).await.unwrap();
    let mut i: u64 = 1;
    while i <= 300 {
        let n = 1 + (i % 5);
        let end = (i + n - 1).min(300);
        w.save(
            Some(&hs(1, 2, i.saturating_sub(3))),
            &ents(i..=end, 1),
            i.is_multiple_of(3),
        )
        .await
        .unwrap();
        i = end + 1;
    }
    // A new leader overwrites 250.. with term 2 (a raft log conflict), then the log grows.
    w.save(Some(&hs(2, 3, 240)), &ents(250..=255, 2), true)
        .await
        .unwrap();
    w.save(None, &ents(256..=400, 2), true).await.unwrap();
    w.save(Some(&hs(2, 3, 390)), &[], true).await.unwrap();
    let count = w.segment_count();
    assert!(count >= 10, "only {count} segments");
    assert_eq!(count, wal_files(&dir).len());
    let size = w.size_bytes();
    drop(w);

    // Segment names: consecutive sequence numbers, first indexes non-decreasing.
    let names: Vec<(u64, u64)> = wal_files(&dir)
        .iter()
        .map(|p| parse_segment_name(p.file_name().unwrap().to_str().unwrap()).unwrap())
        .collect();
    for (k, (seq, _)) in names.iter().enumerate() {
        assert_eq!(*seq, k as u64);
    }
    assert!(names.windows(2).all(|w| w[0].1 <= w[1].1));

    let mut want = ents(1..=249, 1);
    want.extend(ents(250..=400, 2));
    let (mut w, c) = Wal::open(disk(), &dir, small()).await.unwrap();
    assert_eq!(c.entries.len(), want.len());
    assert_eq!(c.entries, want);
    assert_eq!(c.hard_state, hs(2, 3, 390));
    assert_eq!(c.metadata, b"meta");
    assert_eq!(w.segment_count(), count);
    assert_eq!(w.size_bytes(), size);

    // A conflict that rewrites entries living in an earlier segment.
    w.save(None, &ents(100..=110, 3), true).await.unwrap();
    drop(w);
    let (_, c) = Wal::open(disk(), &dir, small()).await.unwrap();
    let mut want = ents(1..=99, 1);
    want.extend(ents(100..=110, 3));
    assert_eq!(c.entries, want);
}

#[tokio::test]
async fn release_to_removes_old_segments_and_replay_follows_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"meta", small()).await.unwrap();
    for i in (1..=150).step_by(3) {
        w.save(Some(&hs(4, 1, i)), &ents(i..=i + 2, 4), true)
            .await
            .unwrap();
    }
    // Without a snapshot marker nothing may be released.
    let before = w.segment_count();
    w.release_to(120).await.unwrap();
    assert_eq!(w.segment_count(), before);

    w.save_snapshot(WalSnapshot {
        index: 100,
        term: 4,
    })
    .await
    .unwrap();
    for i in (151..=300).step_by(3) {
        w.save(Some(&hs(4, 1, i)), &ents(i..=i + 2, 4), true)
            .await
            .unwrap();
    }
    let before = w.segment_count();
    assert!(before >= 10, "only {before} segments");
    w.save_snapshot(WalSnapshot {
        index: 250,
        term: 4,
    })
    .await
    .unwrap();
    // Clamped to the newest marker (250): the segment holding 250 stays.
    w.release_to(10_000).await.unwrap();
    let after = w.segment_count();
    assert!(after < before, "{after} >= {before}");
    assert_eq!(after, wal_files(&dir).len());
    let (_, first) =
        parse_segment_name(wal_files(&dir)[0].file_name().unwrap().to_str().unwrap()).unwrap();
    assert!(first < 250, "first remaining segment starts at {first}");
    w.save(Some(&hs(5, 2, 301)), &ents(301..=310, 5), true)
        .await
        .unwrap();
    drop(w);

    let (w, c) = Wal::open(disk(), &dir, small()).await.unwrap();
    assert_eq!(
        c.snapshot,
        Some(WalSnapshot {
            index: 250,
            term: 4
        })
    );
    let mut want = ents(251..=300, 4);
    want.extend(ents(301..=310, 5));
    assert_eq!(c.entries, want);
    assert_eq!(c.hard_state, hs(5, 2, 301));
    assert_eq!(w.segment_count(), after);
    assert_eq!(
        c.snapshots.last(),
        Some(&WalSnapshot {
            index: 250,
            term: 4
        })
    );
    drop(w);

    // The entries after the older marker were released with their segments.
    let err = Wal::open_at(
        disk(),
        &dir,
        small(),
        WalSnapshot {
            index: 100,
            term: 4,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, WalError::EntriesReleased { index: 100, first, .. } if first > 101),
        "{err}"
    );
    let err = Wal::open_at(disk(), &dir, small(), WalSnapshot { index: 99, term: 4 })
        .await
        .unwrap_err();
    assert!(
        matches!(err, WalError::SnapshotNotFound { index: 99, .. }),
        "{err}"
    );
    let err = Wal::open_at(
        disk(),
        &dir,
        small(),
        WalSnapshot {
            index: 250,
            term: 3,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, WalError::SnapshotMismatch { found: 4, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn open_at_an_older_marker_returns_entries_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"meta", small()).await.unwrap();
    w.save(Some(&hs(1, 1, 50)), &ents(1..=50, 1), true)
        .await
        .unwrap();
    w.save_snapshot(WalSnapshot { index: 20, term: 1 })
        .await
        .unwrap();
    w.save_snapshot(WalSnapshot { index: 40, term: 1 })
        .await
        .unwrap();
    drop(w);
    let (_, c) = Wal::open(disk(), &dir, small()).await.unwrap();
    assert_eq!(c.entries, ents(41..=50, 1));
    assert_eq!(
        c.snapshots,
        vec![
            WalSnapshot { index: 20, term: 1 },
            WalSnapshot { index: 40, term: 1 }
        ]
    );
    let (_, c) = Wal::open_at(disk(), &dir, small(), WalSnapshot { index: 20, term: 1 })
        .await
        .unwrap();
    assert_eq!(c.entries, ents(21..=50, 1));
    assert_eq!(c.snapshot, Some(WalSnapshot { index: 20, term: 1 }));
    let (_, c) = Wal::open_at(disk(), &dir, small(), WalSnapshot::default())
        .await
        .unwrap();
    assert_eq!(c.entries, ents(1..=50, 1));
}

#[tokio::test]
async fn snapshot_marker_beyond_log_then_entries_after_it() {
    // A follower installs a snapshot at 1000 and continues from 1001.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"meta", small()).await.unwrap();
    w.save(Some(&hs(1, 1, 5)), &ents(1..=5, 1), true)
        .await
        .unwrap();
    w.save_snapshot(WalSnapshot {
        index: 1000,
        term: 3,
    })
    .await
    .unwrap();
    w.save(Some(&hs(3, 2, 1000)), &ents(1001..=1040, 3), true)
        .await
        .unwrap();
    assert!(w.segment_count() > 1);
    drop(w);
    let (w, c) = Wal::open(disk(), &dir, small()).await.unwrap();
    assert_eq!(c.entries, ents(1001..=1040, 3));
    assert_eq!(w.last_index(), 1040);
    // Every segment after the marker repeats it, so the tail stays self-describing.
    let names = wal_files(&dir);
    let last = read(names.last().unwrap());
    let scan = record::scan(&last).unwrap();
    assert_eq!(scan.records[0].rtype, RecordType::Metadata);
    assert_eq!(scan.records[1].rtype, RecordType::Snapshot);
    assert_eq!(scan.records[2].rtype, RecordType::State);
}

#[tokio::test]
async fn entry_gap_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"meta", WalOptions::default())
        .await
        .unwrap();
    w.save(None, &ents(1..=5, 1), true).await.unwrap();
    w.save(None, &ents(8..=9, 1), true).await.unwrap();
    drop(w);
    let err = Wal::open(disk(), &dir, WalOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { reason, .. } if reason.contains("gap")),
        "{err}"
    );
}

#[tokio::test]
async fn leftover_tmp_segment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(disk(), &dir, b"meta", WalOptions::default())
        .await
        .unwrap();
    w.save(None, &ents(1..=3, 1), true).await.unwrap();
    drop(w);
    // A crash during a cut, before the rename.
    let stray = dir.join(format!("{}.tmp", segment_name(1, 4)));
    disk().open(&stray, OpenMode::CreateNew).unwrap();
    let (_, c) = Wal::open(disk(), &dir, WalOptions::default())
        .await
        .unwrap();
    assert_eq!(c.entries, ents(1..=3, 1));
    assert!(!disk().exists(&stray));
}

#[test]
fn segment_names_round_trip() {
    assert_eq!(
        segment_name(1, 0x2a),
        "0000000000000001-000000000000002a.wal"
    );
    assert_eq!(
        parse_segment_name("0000000000000001-000000000000002a.wal"),
        Some((1, 42))
    );
    assert_eq!(parse_segment_name("1-2.wal"), None);
    assert_eq!(
        parse_segment_name("0000000000000001-000000000000002a.wal.tmp"),
        None
    );
}

/// The raft loop runs the WAL inside spawned tasks: the WAL and its futures must be `Send`.
#[test]
fn wal_and_its_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    #[allow(dead_code)]
    fn check(w: &mut Wal, e: &[Entry]) {
        is_send(w);
        is_send(&w.save(None, e, true));
        is_send(&w.save_snapshot(WalSnapshot::default()));
        is_send(&w.release_to(1));
    }
    let _ = check;
}
