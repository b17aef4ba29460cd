//! Crash safety of the real binary: kill -9 a member (every other round the leader) under a
//! stream of writes, restart it on its data dir, and check that no acknowledged write is lost
//! and that all members agree on every key's revisions.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{channel, unary, Cluster, Kind};
use etcd_client::proto::{PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUNDS: usize = 20;

async fn range_all(ep: &str, serializable: bool) -> Result<PbRangeResponse, tonic::Status> {
    let ch = common::channel(ep)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    unary(
        ch,
        "/etcdserverpb.KV/Range",
        PbRangeRequest {
            key: b"w/".to_vec(),
            range_end: b"w0".to_vec(),
            serializable,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_write() {
    // Short timeouts keep 20 rounds of elections quick; small snapshot count exercises
    // snapshots and log compaction across restarts too.
    let mut c = Cluster::start(
        Kind::Ours,
        3,
        &[
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--snapshot-count=200",
            "--experimental-snapshot-catchup-entries=50",
            "--log-level=info",
        ],
    );
    c.wait_ready(Duration::from_secs(20)).await;
    let eps: Vec<String> = (0..3).map(|i| c.endpoint(i)).collect();
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, eps) = (acked.clone(), stop.clone(), eps.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut channels: Vec<Option<tonic::transport::Channel>> = vec![None; eps.len()];
            while !stop.load(Ordering::Relaxed) {
                let i = (n % 3) as usize;
                let key = format!("w/{n:06}");
                n += 1;
                if channels[i].is_none() {
                    channels[i] = channel(&eps[i]).await.ok();
                }
                let Some(ch) = channels[i].clone() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let req = PbPutRequest {
                    key: key.clone().into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                match tokio::time::timeout(
                    Duration::from_secs(3),
                    unary::<_, PbPutResponse>(ch, "/etcdserverpb.KV/Put", req),
                )
                .await
                {
                    Ok(Ok(r)) => {
                        let rev = r.header.map(|h| h.revision).unwrap_or(0);
                        acked.lock().expect("lock").insert(key, rev);
                    }
                    _ => channels[i] = None,
                }
            }
        })
    };
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let victim = if round % 2 == 0 {
            c.leader_index().await.unwrap_or(round % 3)
        } else {
            (round * 7 + 1) % 3
        };
        c.kill(victim);
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.restart(victim);
        c.wait_ready(Duration::from_secs(30)).await;
        // Each round must see writes acknowledged after the restart, so every kill happens
        // under a live stream of writes however slow the machine is.
        let target = acked.lock().expect("lock").len() + 6;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().expect("lock").len() < target {
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> = (0..3)
                    .map(|i| {
                        let l = c.log(i);
                        let tail: Vec<&str> = l.lines().rev().take(15).collect();
                        format!(
                            "--- m{i}:\n{}",
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                panic!(
                    "round {round}: no writes acknowledged after restarting member {victim}\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 100,
        "too few acknowledged writes to mean anything: {}",
        acked.len()
    );

    // Linearizable read through member 0 sets the target revision; wait for everyone to reach it.
    let target = range_all(&eps[0], false)
        .await
        .expect("range")
        .header
        .map(|h| h.revision)
        .unwrap_or(0);
    let mut views = Vec::new();
    for ep in &eps {
        let mut resp = None;
        for _ in 0..200 {
            let r = range_all(ep, true).await.expect("serializable range");
            if r.header.as_ref().map(|h| h.revision).unwrap_or(0) >= target {
                resp = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = resp.unwrap_or_else(|| panic!("{ep} never caught up to revision {target}"));
        let kvs: BTreeMap<String, (i64, i64)> = r
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    (kv.create_revision, kv.mod_revision),
                )
            })
            .collect();
        for (k, rev) in &acked {
            match kvs.get(k) {
                Some((_, m)) => assert_eq!(
                    m, rev,
                    "{ep}: {k} has mod_revision {m}, the put was acknowledged at {rev}"
                ),
                None => panic!("{ep}: acknowledged write {k} (revision {rev}) is lost"),
            }
        }
        views.push(kvs);
    }
    assert_eq!(views[0], views[1], "members 0 and 1 disagree");
    assert_eq!(views[0], views[2], "members 0 and 2 disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_is_caught_up_by_snapshot() {
    let mut c = Cluster::start(
        Kind::Ours,
        3,
        &[
            "--snapshot-count=100",
            "--experimental-snapshot-catchup-entries=10",
            "--log-level=info",
        ],
    );
    c.wait_ready(Duration::from_secs(20)).await;
    let leader = c.leader_index().await.expect("a leader");
    let lagger = (leader + 1) % 3;
    c.kill(lagger);
    let ch = channel(&c.endpoint(leader)).await.expect("connect");
    for n in 0..400 {
        let req = PbPutRequest {
            key: format!("w/{n:06}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        unary::<_, PbPutResponse>(ch.clone(), "/etcdserverpb.KV/Put", req)
            .await
            .expect("put");
    }
    c.restart(lagger);
    c.wait_ready(Duration::from_secs(20)).await;
    let target = range_all(&c.endpoint(leader), false)
        .await
        .expect("range")
        .header
        .map(|h| h.revision)
        .unwrap_or(0);
    let mut caught_up = false;
    for _ in 0..200 {
        let r = range_all(&c.endpoint(lagger), true)
            .await
            .expect("serializable range");
        if r.header.as_ref().map(|h| h.revision) == Some(target) {
            assert_eq!(r.kvs.len(), 400, "the restarted member has the wrong keys");
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "member {lagger} never reached revision {target}");
    let log = c.log(lagger);
    assert!(
        log.contains("applying snapshot from leader"),
        "caught up without a snapshot:\n{log}"
    );
}
