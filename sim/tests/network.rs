//! The simulated network's fault semantics, on a plain byte protocol between two client hosts:
//! partitions hold bytes back until the heal (TCP retransmission), one-way partitions block one
//! direction only, lossy links delay writes by an RTO, pauses freeze a node's links.

use sim::{Fault, SimConfig, Simulation};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Starts an echo server on host `srv` port 7000 and a client on `cli` that sends one byte
/// every 100 ms and records (send time, echo time) in milliseconds of its own clock.
fn echo_pair(s: &mut Simulation) -> Rc<RefCell<Vec<(u64, u64)>>> {
    s.client("srv", |cx| async move {
        let mut l = cx.net().bind("srv:7000").await.unwrap();
        let mut conn = l.accept().await.unwrap();
        let mut b = [0u8; 1];
        while conn.read_exact(&mut b).await.is_ok() {
            if conn.write_all(&b).await.is_err() {
                break;
            }
        }
    })
    .unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    s.client("cli", move |cx| async move {
        tokio::time::sleep(ms(10)).await;
        let mut c = cx.net().connect("srv:7000").await.unwrap();
        let t0 = tokio::time::Instant::now();
        for i in 0..30u8 {
            let sent = t0.elapsed().as_millis() as u64;
            c.write_all(&[i]).await.unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], i, "bytes reordered or lost");
            l.borrow_mut().push((sent, t0.elapsed().as_millis() as u64));
            tokio::time::sleep(ms(100)).await;
        }
    })
    .unwrap();
    log
}

fn sim(seed: u64) -> Simulation {
    Simulation::new(SimConfig::new(seed, 1)).unwrap()
}

fn max_rtt(log: &[(u64, u64)]) -> u64 {
    log.iter().map(|(a, b)| b - a).max().unwrap_or(0)
}

#[test]
fn healthy_link_has_small_latency() {
    let mut s = sim(1);
    let log = echo_pair(&mut s);
    s.run_clients(Duration::from_secs(10)).unwrap();
    assert_eq!(log.borrow().len(), 30);
    assert!(max_rtt(&log.borrow()) <= 10, "{:?}", log.borrow());
}

#[test]
fn partition_holds_bytes_until_heal() {
    let mut s = sim(2);
    let log = echo_pair(&mut s);
    s.schedule(
        ms(500),
        Fault::Partition {
            a: vec!["cli".into()],
            b: vec!["srv".into()],
        },
    );
    s.schedule(ms(2500), Fault::Heal);
    s.run_clients(Duration::from_secs(10)).unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), 30, "the connection survived the partition");
    let rtt = max_rtt(&log);
    assert!(
        (1500..2100).contains(&rtt),
        "longest round trip {rtt} ms: {log:?}"
    );
}

#[test]
fn one_way_partition_blocks_one_direction() {
    let mut s = sim(3);
    let log = echo_pair(&mut s);
    // Replies blocked; requests flow.
    s.schedule(
        ms(500),
        Fault::PartitionOneway {
            from: vec!["srv".into()],
            to: vec!["cli".into()],
        },
    );
    s.schedule(ms(1500), Fault::Heal);
    s.run_clients(Duration::from_secs(10)).unwrap();
    let rtt = max_rtt(&log.borrow());
    assert!((600..1100).contains(&rtt), "{rtt}");
    assert!(!s.links().is_blocked("srv", "cli"));
}

#[test]
fn lossy_link_delays_by_retransmission_timeouts() {
    let mut s = sim(4);
    let log = echo_pair(&mut s);
    s.apply(Fault::LinkLoss {
        from: "cli".into(),
        to: "srv".into(),
        probability: 0.5,
    })
    .unwrap();
    s.run_clients(Duration::from_secs(30)).unwrap();
    let log = log.borrow();
    let slow = log.iter().filter(|(a, b)| b - a >= 200).count();
    assert!(
        (5..=25).contains(&slow),
        "{slow} of 30 round trips hit an RTO: {log:?}"
    );
}

#[test]
fn pause_freezes_the_node_and_link_latency_applies() {
    let mut s = sim(5);
    let log = echo_pair(&mut s);
    s.apply(Fault::LinkLatency {
        a: "cli".into(),
        b: "srv".into(),
        latency: ms(50),
    })
    .unwrap();
    s.schedule(ms(1000), Fault::Pause("srv".into()));
    s.schedule(ms(1700), Fault::Resume("srv".into()));
    s.run_clients(Duration::from_secs(10)).unwrap();
    let log = log.borrow();
    let min = log.iter().map(|(a, b)| b - a).min().unwrap();
    assert!((100..=104).contains(&min), "two 50 ms hops: {min}");
    let rtt = max_rtt(&log);
    assert!((600..900).contains(&rtt), "{rtt}");
}

#[test]
fn connect_waits_for_a_partition_to_heal() {
    let mut s = sim(6);
    s.apply(Fault::Isolate("srv".into())).unwrap();
    let log = echo_pair(&mut s);
    s.schedule(ms(800), Fault::Heal);
    s.run_clients(Duration::from_secs(10)).unwrap();
    assert_eq!(log.borrow().len(), 30);
    // 30 round trips 100 ms apart start only after the heal at 800 ms.
    assert!(s.elapsed() >= ms(3700), "{:?}", s.elapsed());
}
