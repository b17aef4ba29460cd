//! The real server in simulation: elections, writes through a real tonic client, partitions,
//! power loss, and slow fsync losing leadership.

use sim::workload::{assert_no_acked_write_lost, read_all, start_writer};
use sim::{LatencyModel, SimConfig, Simulation};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn names(s: &Simulation) -> Vec<String> {
    s.member_names()
}

fn cluster(seed: u64, members: usize) -> Simulation {
    Simulation::new(SimConfig::new(seed, members)).unwrap()
}

#[test]
fn single_member_elects_itself_and_serves_writes() {
    let mut s = cluster(1, 1);
    assert_eq!(s.await_leader(secs(5.0)).unwrap(), "m0");
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    let w = start_writer(&mut s, "c0", all.clone(), secs(0.05), stop.clone()).unwrap();
    s.run_for(secs(1.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(10.0)).unwrap();
    assert!(w.borrow().acked.len() >= 15, "{:?}", w.borrow());
    assert_eq!(w.borrow().failed, 0);
    assert_no_acked_write_lost(&mut s, &w.borrow()).unwrap();
}

#[test]
fn leader_elected_and_writes_commit_on_every_member() {
    let mut s = cluster(2, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let follower = s.member_names().into_iter().find(|n| *n != leader).unwrap();
    let stop = Rc::new(Cell::new(false));
    // Writes through a follower (forwarded to the leader) and through the leader.
    let w = start_writer(
        &mut s,
        "c0",
        vec![follower, leader.clone()],
        secs(0.02),
        stop.clone(),
    )
    .unwrap();
    s.run_for(secs(2.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(10.0)).unwrap();
    assert!(w.borrow().acked.len() >= 80, "{:?}", w.borrow().acked.len());
    assert_eq!(w.borrow().failed, 0);
    assert_no_acked_write_lost(&mut s, &w.borrow()).unwrap();
    // Every member applied the same index.
    s.run_for(secs(0.5)).unwrap();
    let applied: Vec<u64> = s
        .member_names()
        .iter()
        .map(|m| s.status(m).unwrap().applied)
        .collect();
    assert!(applied.iter().all(|a| *a == applied[0]), "{applied:?}");
    assert_eq!(s.leader_changes(&leader), 1);
}

#[test]
fn isolated_leader_is_replaced_steps_down_and_heals() {
    let mut s = cluster(3, 3);
    let old = s.await_leader(secs(10.0)).unwrap();
    let old_term = s.status(&old).unwrap().term;
    s.isolate(&old).unwrap();
    s.run_until("a new leader", secs(10.0), |s| {
        s.member_names().iter().any(|m| {
            *m != old
                && s.status(m)
                    .is_some_and(|st| st.is_leader && st.term > old_term)
        })
    })
    .unwrap();
    // check_quorum: the isolated leader steps down after an election timeout without quorum.
    s.run_until("the old leader to step down", secs(5.0), |s| {
        s.status(&old).is_some_and(|st| !st.is_leader)
    })
    .unwrap();
    s.heal().unwrap();
    let new = s.await_leader(secs(10.0)).unwrap();
    assert_ne!(
        new, old,
        "pre-vote should keep the rejoining member from disrupting"
    );
    // Converges: a write after healing reaches every member, including the old leader.
    let stop = Rc::new(Cell::new(false));
    let w = start_writer(&mut s, "c0", vec![new.clone()], secs(0.05), stop.clone()).unwrap();
    s.run_for(secs(1.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(10.0)).unwrap();
    assert_no_acked_write_lost(&mut s, &w.borrow()).unwrap();
    let terms: Vec<u64> = s
        .member_names()
        .iter()
        .map(|m| s.status(m).unwrap().term)
        .collect();
    assert!(terms.iter().all(|t| *t == terms[0]), "{terms:?}");
}

#[test]
fn power_loss_of_one_member_loses_no_acknowledged_write() {
    let mut s = cluster(4, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    let w = start_writer(&mut s, "c0", all.clone(), secs(0.01), stop.clone()).unwrap();
    s.run_for(secs(1.5)).unwrap();
    s.power_loss(&leader).unwrap();
    s.run_for(secs(3.0)).unwrap();
    s.restart(&leader).unwrap();
    s.run_for(secs(2.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(20.0)).unwrap();
    assert_eq!(s.incarnations(&leader), 2);
    assert!(
        s.exit_reason(&leader).is_none(),
        "{:?}",
        s.exit_reason(&leader)
    );
    s.await_leader(secs(10.0)).unwrap();
    assert_no_acked_write_lost(&mut s, &w.borrow()).unwrap();
}

#[test]
fn power_loss_of_all_members_at_once_loses_no_acknowledged_write() {
    let mut s = cluster(5, 3);
    s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    let w = start_writer(&mut s, "c0", all.clone(), secs(0.01), stop.clone()).unwrap();
    s.run_for(secs(1.5)).unwrap();
    s.power_loss_all().unwrap();
    stop.set(true);
    s.run_for(secs(0.5)).unwrap();
    for m in s.member_names() {
        s.restart(&m).unwrap();
    }
    s.run_clients(secs(20.0)).unwrap();
    s.await_leader(secs(10.0)).unwrap();
    let acked = w.borrow().acked.len();
    assert!(acked >= 100, "only {acked} writes acknowledged");
    assert_no_acked_write_lost(&mut s, &w.borrow()).unwrap();
}

/// Runs a 3-member cluster under writes for 6 s with the first leader's fsync latency set to
/// `model` after the election; returns (leader, its leader-change count, all members' counts).
fn fsync_run(seed: u64, model: LatencyModel) -> (String, Simulation) {
    let mut s = cluster(seed, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    start_writer(&mut s, "c0", all.clone(), secs(0.02), stop.clone()).unwrap();
    s.run_for(secs(0.5)).unwrap();
    s.set_disk_latency(&leader, model).unwrap();
    s.run_for(secs(6.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(30.0)).unwrap();
    (leader, s)
}

#[test]
fn fsync_slower_than_the_election_timeout_loses_leadership() {
    let (old, s) = fsync_run(6, LatencyModel::Fixed(secs(2.5)));
    let changes: u64 = s.member_names().iter().map(|m| s.leader_changes(m)).sum();
    assert!(
        changes > 3,
        "no leader change with a 2.5 s fsync: {changes}"
    );
    let now = s.leader();
    assert_ne!(
        now.as_deref(),
        Some(old.as_str()),
        "slow member kept leadership"
    );
    assert!(!s.trace().lines_with_msg("slow fdatasync").is_empty());
    assert!(s.disk(&old).unwrap().stats().max_sync >= secs(2.5));
    let summary: serde_json::Value = serde_json::from_str(&s.summary_json()).unwrap();
    assert_eq!(summary["faults"].as_array().unwrap().len(), 1, "{summary}");
}

#[test]
fn healthy_disk_keeps_its_leader() {
    let (old, s) = fsync_run(6, LatencyModel::healthy());
    for m in s.member_names() {
        assert_eq!(s.leader_changes(&m), 1, "{m} saw extra leader changes");
    }
    assert_eq!(s.leader().as_deref(), Some(old.as_str()));
    assert!(s.trace().lines_with_msg("slow fdatasync").is_empty());
}

#[test]
fn wal_fsync_eio_stops_the_member_and_the_cluster_carries_on() {
    let mut s = cluster(7, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    let w = start_writer(&mut s, "c0", all.clone(), secs(0.02), stop.clone()).unwrap();
    s.run_for(secs(0.5)).unwrap();
    s.disk(&leader).unwrap().inject(sim::FaultRule::always(
        sim::DiskFault::FsyncEio,
        "/var/lib/etcd/member/wal",
    ));
    s.run_until("the member to stop", secs(5.0), |s| {
        s.exit_reason(&leader).is_some()
    })
    .unwrap();
    let reason = s.exit_reason(&leader).unwrap();
    assert!(
        reason.contains("error") || reason.contains("wal"),
        "{reason}"
    );
    s.run_for(secs(3.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(20.0)).unwrap();
    let new = s.leader().unwrap();
    assert_ne!(new, leader);
    // Reads from the survivors only.
    let acked = w.borrow().acked.clone();
    for m in s.member_names().into_iter().filter(|m| *m != leader) {
        let data = read_all(&mut s, &m).unwrap();
        for (k, v) in &acked {
            assert_eq!(data.get(k), Some(v), "{k} lost on {m}");
        }
    }
}

#[test]
fn followers_restart_after_power_loss_and_catch_up() {
    // Several seeds: where the power loss lands relative to WAL and backend syncs varies.
    for seed in [2, 8, 35] {
        let mut s = cluster(seed, 3);
        let leader = s.await_leader(secs(10.0)).unwrap();
        let victim = names(&s).into_iter().find(|n| *n != leader).unwrap();
        let stop = Rc::new(Cell::new(false));
        let all = names(&s);
        let w = start_writer(&mut s, "c0", all, secs(0.01), stop.clone()).unwrap();
        s.run_for(secs(1.3)).unwrap();
        s.power_loss(&victim).unwrap();
        s.run_for(secs(0.5)).unwrap();
        s.restart(&victim).unwrap();
        s.run_for(secs(1.0)).unwrap();
        stop.set(true);
        s.run_clients(secs(20.0)).unwrap();
        assert!(
            s.exit_reason(&victim).is_none(),
            "seed {seed}: {victim} did not come back after power loss: {:?}",
            s.exit_reason(&victim)
        );
        assert_no_acked_write_lost(&mut s, &w.borrow()).unwrap();
    }
}

/// The acknowledged-write check is not vacuous: with disks whose syncs lie, power loss of every
/// member does lose acknowledged writes, and the check says so.
#[test]
fn lying_disks_lose_acknowledged_writes_and_the_check_notices() {
    let mut s = cluster(9, 3);
    for m in names(&s) {
        s.disk(&m)
            .unwrap()
            .inject(sim::FaultRule::always(sim::DiskFault::SyncLies, ""));
    }
    s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    let w = start_writer(&mut s, "c0", all, secs(0.02), stop.clone()).unwrap();
    s.run_for(secs(1.0)).unwrap();
    stop.set(true);
    s.run_for(secs(0.2)).unwrap();
    for m in names(&s) {
        s.apply(sim::Fault::Crash {
            node: m.clone(),
            model: sim::CrashModel::LoseAll,
        })
        .unwrap();
        s.disk(&m).unwrap().clear_faults();
        s.restart(&m).unwrap();
    }
    s.run_clients(secs(20.0)).unwrap();
    s.await_leader(secs(10.0)).unwrap();
    assert!(!w.borrow().acked.is_empty());
    let verdict = assert_no_acked_write_lost(&mut s, &w.borrow());
    let err = verdict.expect_err("lying fsync lost nothing?");
    assert!(err.contains("acknowledged write"), "{err}");
}

#[test]
fn paused_leader_is_replaced_and_steps_down_on_resume() {
    let mut s = cluster(10, 3);
    let old = s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    start_writer(&mut s, "c0", all, secs(0.05), stop.clone()).unwrap();
    s.run_for(secs(0.5)).unwrap();
    s.pause(&old).unwrap();
    s.run_until("a new leader", secs(10.0), |s| {
        s.leader().is_some_and(|l| l != old)
    })
    .unwrap();
    s.resume(&old).unwrap();
    let new = s.await_leader(secs(10.0)).unwrap();
    assert_ne!(new, old);
    assert!(!s.status(&old).unwrap().is_leader);
    stop.set(true);
    s.run_clients(secs(20.0)).unwrap();
}

#[test]
fn leader_that_cannot_send_loses_leadership() {
    let mut s = cluster(11, 3);
    let old = s.await_leader(secs(10.0)).unwrap();
    let followers: Vec<String> = names(&s).into_iter().filter(|n| *n != old).collect();
    let f: Vec<&str> = followers.iter().map(String::as_str).collect();
    s.partition_oneway(&[old.as_str()], &f).unwrap();
    s.run_until("a new leader", secs(10.0), |s| {
        s.leader().is_some_and(|l| l != old)
    })
    .unwrap();
    // The old leader still hears the others, sees the higher term and steps down.
    s.run_until("the old leader to step down", secs(5.0), |s| {
        s.status(&old).is_some_and(|st| !st.is_leader)
    })
    .unwrap();
    s.heal().unwrap();
    s.await_leader(secs(10.0)).unwrap();
}

#[test]
fn full_disk_surfaces_enospc_to_the_member() {
    let mut s = cluster(12, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let victim = names(&s).into_iter().find(|n| *n != leader).unwrap();
    let stop = Rc::new(Cell::new(false));
    start_writer(&mut s, "c0", vec![leader.clone()], secs(0.01), stop.clone()).unwrap();
    s.run_for(secs(1.0)).unwrap();
    let used = s.disk(&victim).unwrap().used();
    s.apply(sim::Fault::DiskCapacity {
        node: victim.clone(),
        bytes: Some(used + 16 * 1024),
    })
    .unwrap();
    s.run_until("the full member to stop", secs(20.0), |s| {
        s.exit_reason(&victim).is_some()
    })
    .unwrap();
    let reason = s.exit_reason(&victim).unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(s.disk(&victim).unwrap().stats().faults_fired >= 1);
    stop.set(true);
    s.run_clients(secs(20.0)).unwrap();
}

#[test]
fn a_backend_that_reads_back_flipped_bits_is_refused_and_the_cluster_carries_on() {
    let mut s = cluster(9, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let victim = names(&s).into_iter().find(|n| *n != leader).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    let w = start_writer(&mut s, "c0", all, secs(0.02), stop.clone()).unwrap();
    s.run_for(secs(1.0)).unwrap();
    // Every read of the victim's database file now returns one flipped bit: the restart must
    // refuse the file with an error naming it, not serve it or panic.
    let db = "/var/lib/etcd/member/snap/db";
    s.disk(&victim)
        .unwrap()
        .inject(sim::FaultRule::always(sim::DiskFault::ReadBitFlip, db));
    s.restart(&victim).unwrap();
    s.run_until(
        "the damaged member to refuse its backend",
        secs(10.0),
        |s| s.exit_reason(&victim).is_some(),
    )
    .unwrap();
    // e.g. "start failed: mvcc: backend /var/lib/etcd/member/snap/db: open: Not a redb
    // database: magic number mismatch" (the header read was hit first).
    let reason = s.exit_reason(&victim).unwrap();
    assert!(
        reason.starts_with("start failed") && reason.contains(db),
        "{reason}"
    );
    s.run_for(secs(2.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(20.0)).unwrap();
    let acked = w.borrow().acked.clone();
    assert!(acked.len() >= 40, "{}", acked.len());
    assert!(s.stable_leader().is_some_and(|l| l != victim));
    for m in names(&s).into_iter().filter(|m| *m != victim) {
        let data = read_all(&mut s, &m).unwrap();
        for (k, v) in &acked {
            assert_eq!(data.get(k), Some(v), "{k} lost on {m}");
        }
    }
}

#[test]
fn slow_backend_commits_are_charged_to_the_backend_not_the_wal() {
    let mut s = cluster(12, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let all = names(&s);
    start_writer(&mut s, "c0", all, secs(0.02), stop.clone()).unwrap();
    s.run_for(secs(0.5)).unwrap();
    // Only the backend file's syncs (redb's commit) become slow.
    s.apply(sim::Fault::PathLatency {
        node: leader.clone(),
        prefix: std::path::Path::new(sim::DATA_DIR).join("member/snap/db"),
        model: Some(LatencyModel::Fixed(secs(0.15))),
    })
    .unwrap();
    s.run_for(secs(5.0)).unwrap();
    stop.set(true);
    s.run_clients(secs(30.0)).unwrap();
    let server = s.server(&leader).expect("leader up");
    let m = server.metrics();
    let (commits, commit_sum) = m.backend_commit();
    let n: u64 = commits.iter().sum();
    assert!(n > 5, "backend commits {commits:?}");
    // redb syncs twice per commit: each slow commit takes 2 × 150 ms, in the (0.256, 0.512] s
    // bucket (etcd's buckets double from 1 ms).
    let slow: u64 = commits[9..].iter().sum();
    assert!(
        slow >= 10,
        "only {slow} of {n} commits took > 256 ms: {commits:?} (sum {commit_sum:?})"
    );
    let (fsyncs, fsync_sum) = m.wal_fsync();
    let f: u64 = fsyncs.iter().sum();
    assert!(
        fsync_sum.as_secs_f64() / (f as f64) < 0.02,
        "the WAL's fsyncs stayed fast"
    );
    assert!(s.disk(&leader).unwrap().stats().settled_time >= secs(1.0));
    assert!(!s
        .trace()
        .lines_with_msg("apply request took too long")
        .is_empty());
    for member in s.member_names() {
        assert_eq!(
            s.leader_changes(&member),
            1,
            "{member}: a slow backend moved leadership"
        );
    }
}

/// Leader changes after the first election of a 3-member cluster whose leader's clock runs at
/// `drift_ppm` from 0.5 s on, over 8 s.
fn leader_changes_with_leader_drift(drift_ppm: i64) -> u64 {
    let mut s = cluster(21, 3);
    let leader = s.await_leader(secs(10.0)).unwrap();
    s.run_for(secs(0.5)).unwrap();
    s.apply(sim::Fault::Clock {
        node: leader,
        clock: sim::NodeClock {
            skew_ms: 0,
            drift_ppm,
        },
    })
    .unwrap();
    s.run_for(secs(8.0)).unwrap();
    s.member_names()
        .iter()
        .map(|m| s.leader_changes(m).saturating_sub(1))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_leader_whose_clock_runs_slow_ticks_slow_and_loses_leadership() {
    // 92% slow: its 100 ms heartbeat interval lasts 1.25 s of true time, longer than the
    // followers' election timeout (1-2 s, randomised) often enough to lose the lead.
    assert!(leader_changes_with_leader_drift(-920_000) >= 1);
    // A few percent of drift, as real oscillators have, changes nothing.
    assert_eq!(leader_changes_with_leader_drift(-50_000), 0);
    assert_eq!(leader_changes_with_leader_drift(50_000), 0);
}
