//! Disk model tests: durability, crashes, torn writes, directory entries, injected faults.

use super::*;
use crate::rng::Seeds;
use std::path::Path;

fn disk(seed: u64) -> SimDisk {
    let d = SimDisk::new("m0", Seeds::new(seed).stream("disk/m0"));
    d.create_dir_all(Path::new("/data/wal")).unwrap();
    d
}

/// Runs `f` on a paused current-thread runtime (simulated time, like inside turmoil).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f)
}

/// A durable file: created, written, fdatasynced, directory synced.
async fn durable_file(d: &SimDisk, p: &str, data: &[u8]) -> Arc<dyn DiskFile> {
    let f = d.open(Path::new(p), OpenMode::CreateNew).unwrap();
    f.write_at(0, data).unwrap();
    f.sync_data().await.unwrap();
    d.sync_dir(Path::new(p).parent().unwrap()).await.unwrap();
    f
}

fn content(d: &SimDisk, p: &str) -> Option<Vec<u8>> {
    let f = d.open(Path::new(p), OpenMode::Existing).ok()?;
    Some(f.read_all().unwrap())
}

#[test]
fn power_loss_drops_unsynced_and_keeps_synced() {
    block_on(async {
        let d = disk(1);
        let f = durable_file(&d, "/data/wal/a", b"synced").await;
        f.write_at(6, b"+unsynced").unwrap();
        assert_eq!(f.read_all().unwrap(), b"synced+unsynced");
        d.crash(CrashModel::LoseAll);
        assert_eq!(content(&d, "/data/wal/a").unwrap(), b"synced");
        // The old handle belongs to a dead process.
        assert_eq!(f.read_all().unwrap_err().raw_os_error(), Some(faults::EIO));
    });
}

#[test]
fn process_kill_keeps_the_page_cache() {
    block_on(async {
        let d = disk(1);
        let f = durable_file(&d, "/data/wal/a", b"synced").await;
        f.write_at(6, b"+cached").unwrap();
        d.open(Path::new("/data/wal/new"), OpenMode::CreateNew)
            .unwrap()
            .write_at(0, b"x")
            .unwrap();
        d.crash(CrashModel::KeepAll);
        assert_eq!(content(&d, "/data/wal/a").unwrap(), b"synced+cached");
        assert_eq!(content(&d, "/data/wal/new").unwrap(), b"x");
    });
}

#[test]
fn sync_makes_only_earlier_writes_durable() {
    block_on(async {
        let d = disk(1);
        let f = durable_file(&d, "/data/wal/a", b"one").await;
        f.write_at(3, b"two").unwrap();
        f.sync_data_now().unwrap();
        f.write_at(6, b"three").unwrap();
        d.crash(CrashModel::LoseAll);
        assert_eq!(content(&d, "/data/wal/a").unwrap(), b"onetwo");
    });
}

#[test]
fn torn_writes_keep_a_sector_aligned_prefix() {
    let sector = 512u64;
    let mut torn_seen = false;
    let mut kept = std::collections::BTreeSet::new();
    for seed in 0..64 {
        block_on(async {
            let d = disk(seed);
            let f = durable_file(&d, "/data/wal/a", &[0u8; 100]).await;
            // One unsynced write of 4 sectors starting mid-sector (offset 100).
            let new = vec![0xabu8; 4 * sector as usize];
            f.write_at(100, &new).unwrap();
            d.crash(CrashModel::TornPrefix { sector });
            let c = content(&d, "/data/wal/a").unwrap();
            let survived = c.len() as u64 - 100;
            assert!(c[..100].iter().all(|b| *b == 0), "synced prefix damaged");
            assert!(c[100..].iter().all(|b| *b == 0xab));
            // What survived of the write ends at a sector boundary or at the write's end.
            let end = 100 + survived;
            assert!(
                survived == 0 || end.is_multiple_of(sector) || survived == new.len() as u64,
                "survived {survived} bytes: not torn at a sector boundary"
            );
            torn_seen |= survived > 0 && survived < new.len() as u64;
            kept.insert(survived);
        });
    }
    assert!(torn_seen, "no seed tore the write: {kept:?}");
    assert!(kept.contains(&0), "no seed lost the whole write: {kept:?}");
    assert!(kept.len() >= 3, "too little variety: {kept:?}");
}

#[test]
fn new_file_without_directory_sync_vanishes() {
    block_on(async {
        let d = disk(1);
        durable_file(&d, "/data/wal/withdirsync", b"data").await;
        // Data fdatasynced, but the directory entry never synced.
        let f = d
            .open(Path::new("/data/wal/nodirsync"), OpenMode::CreateNew)
            .unwrap();
        f.write_at(0, b"data").unwrap();
        f.sync_data().await.unwrap();
        d.crash(CrashModel::LoseAll);
        assert!(!d.exists(Path::new("/data/wal/nodirsync")));
        assert_eq!(content(&d, "/data/wal/withdirsync").unwrap(), b"data");
        assert_eq!(d.list(Path::new("/data/wal")).unwrap(), vec!["withdirsync"]);
    });
}

#[test]
fn rename_without_directory_sync_is_undone() {
    block_on(async {
        let d = disk(1);
        durable_file(&d, "/data/wal/a.tmp", b"new").await;
        d.rename(Path::new("/data/wal/a.tmp"), Path::new("/data/wal/a"))
            .unwrap();
        d.crash(CrashModel::LoseAll);
        assert!(d.exists(Path::new("/data/wal/a.tmp")));
        assert!(!d.exists(Path::new("/data/wal/a")));
        d.rename(Path::new("/data/wal/a.tmp"), Path::new("/data/wal/a"))
            .unwrap();
        d.sync_dir(Path::new("/data/wal")).await.unwrap();
        d.crash(CrashModel::LoseAll);
        assert_eq!(content(&d, "/data/wal/a").unwrap(), b"new");
    });
}

#[test]
fn enospc_past_capacity() {
    block_on(async {
        let d = disk(1);
        d.set_capacity(Some(1000));
        let f = d
            .open(Path::new("/data/wal/a"), OpenMode::CreateNew)
            .unwrap();
        f.write_at(0, &[1u8; 600]).unwrap();
        let e = f.write_at(600, &[1u8; 600]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(faults::ENOSPC));
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(f.len().unwrap(), 600, "a failed write changes nothing");
        assert!(f.set_len(2000).is_err());
        assert!(
            f.write_at(u64::MAX - 1, b"xx").is_err(),
            "offset overflow is an error"
        );
        assert!(f.set_len(1 << 40).is_err(), "absurd sizes are an error");
        // Overwrites within the file do not need space; removing frees it.
        f.write_at(0, &[2u8; 600]).unwrap();
        d.remove_file(Path::new("/data/wal/a")).unwrap();
        drop(f);
        assert_eq!(d.used(), 0);
        d.set_capacity(None);
    });
}

#[test]
fn eio_on_write_and_fsync_surfaces_and_loses_the_write() {
    block_on(async {
        let d = disk(1);
        let f = durable_file(&d, "/data/wal/a", b"base").await;
        let id = d.inject(FaultRule::always(DiskFault::WriteEio, "/data/wal"));
        let e = f.write_at(4, b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(faults::EIO));
        assert!(d.remove_fault(id));
        f.write_at(4, b"lost").unwrap();
        let id = d.inject(FaultRule::always(DiskFault::FsyncEio, "/data/wal/a"));
        assert_eq!(
            f.sync_data().await.unwrap_err().raw_os_error(),
            Some(faults::EIO)
        );
        assert!(f.sync_data_now().is_err());
        d.remove_fault(id);
        // fsyncgate: the page cache still shows the write, a later sync does not save it.
        assert_eq!(f.read_all().unwrap(), b"baselost");
        f.sync_data().await.unwrap();
        d.crash(CrashModel::LoseAll);
        assert_eq!(content(&d, "/data/wal/a").unwrap(), b"base");
        assert!(d.stats().faults_fired >= 3);
    });
}

#[test]
fn faults_are_per_path_prefix() {
    block_on(async {
        let d = disk(1);
        d.create_dir_all(Path::new("/data/snap")).unwrap();
        d.inject(FaultRule::always(DiskFault::WriteEio, "/data/snap"));
        let ok = d
            .open(Path::new("/data/wal/a"), OpenMode::CreateNew)
            .unwrap();
        ok.write_at(0, b"fine").unwrap();
        assert!(d
            .open(Path::new("/data/snap/s"), OpenMode::CreateNew)
            .is_err());
        d.clear_faults();
        assert!(d
            .open(Path::new("/data/snap/s"), OpenMode::CreateNew)
            .is_ok());
    });
}

#[test]
fn bit_flips_on_read_change_one_bit() {
    block_on(async {
        let d = disk(1);
        let f = durable_file(&d, "/data/wal/a", &[0u8; 64]).await;
        d.inject(FaultRule::always(DiskFault::ReadBitFlip, ""));
        let mut buf = [0u8; 64];
        f.read_at(0, &mut buf).unwrap();
        let ones: u32 = buf.iter().map(|b| b.count_ones()).sum();
        assert_eq!(ones, 1);
        d.inject(FaultRule::always(DiskFault::ReadEio, "/data"));
        assert!(f.read_at(0, &mut buf).is_err());
    });
}

#[test]
fn sync_latency_comes_from_the_model_in_simulated_time() {
    block_on(async {
        let d = disk(1);
        let f = durable_file(&d, "/data/wal/a", b"x").await;
        d.set_latency(LatencyModel::Fixed(Duration::from_millis(1500)));
        let t = tokio::time::Instant::now();
        f.sync_data().await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_millis(1500));
        assert_eq!(d.stats().max_sync, Duration::from_millis(1500));
        // A crash during a slow sync: the sync fails, the write is not durable.
        f.write_at(1, b"y").unwrap();
        let d2 = d.clone();
        let h = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            d2.crash(CrashModel::LoseAll);
        });
        assert!(f.sync_data().await.is_err());
        h.await.unwrap();
        assert_eq!(content(&d, "/data/wal/a").unwrap(), b"x");
    });
}

#[test]
fn same_seed_same_crash_outcome() {
    let run = |seed| {
        block_on(async {
            let d = disk(seed);
            let f = durable_file(&d, "/data/wal/a", b"").await;
            for i in 0..20u64 {
                f.write_at(i * 1000, &[i as u8; 1000]).unwrap();
            }
            d.crash(CrashModel::TornPrefix { sector: 512 });
            content(&d, "/data/wal/a").unwrap()
        })
    };
    assert_eq!(run(5), run(5));
    assert!((0..8).any(|s| run(s) != run(5)));
}

#[test]
fn lying_syncs_make_nothing_durable() {
    block_on(async {
        let d = disk(1);
        d.inject(FaultRule::always(DiskFault::SyncLies, ""));
        let f = d
            .open(Path::new("/data/wal/a"), OpenMode::CreateNew)
            .unwrap();
        f.write_at(0, b"x").unwrap();
        f.sync_data().await.unwrap();
        d.sync_dir(Path::new("/data/wal")).await.unwrap();
        d.crash(CrashModel::LoseAll);
        assert!(!d.exists(Path::new("/data/wal/a")));
    });
}
