//! Benchmark: simulated seconds per wall second for a 3-member cluster under 100 writes/s.
//!
//! `cargo run --release -p sim --example speed [-- <sim-seconds> <seed> <writes-per-second> <tick-µs>]`
//! (defaults: 60 simulated seconds, seed 1, 100 writes/s, 1 ms tick).
#![allow(clippy::disallowed_methods)] // the benchmark measures wall time; it is not simulated code

use sim::workload::start_writer;
use sim::{SimConfig, Simulation};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let sim_secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let tick_us: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let wall = Instant::now();
    let mut s = Simulation::new(SimConfig::new(seed, 3).tick(Duration::from_micros(tick_us)))
        .expect("build");
    s.await_leader(Duration::from_secs(10)).expect("leader");
    let stop = Rc::new(Cell::new(false));
    let names = s.member_names();
    let period = Duration::from_secs(1) / rate.max(1) as u32;
    let w = start_writer(&mut s, "c0", names, period, stop.clone()).expect("writer");
    let start = s.elapsed();
    s.run_for(Duration::from_secs(sim_secs)).expect("run");
    stop.set(true);
    s.run_clients(Duration::from_secs(30)).expect("drain");
    let simulated = s.elapsed().as_secs_f64();
    let load = (s.elapsed() - start).as_secs_f64();
    let secs = wall.elapsed().as_secs_f64();
    let w = w.borrow();
    println!("seed                 {seed}");
    println!("simulated            {simulated:.1} s ({load:.1} s under load)");
    println!("wall                 {secs:.2} s");
    println!(
        "writes acknowledged  {} ({:.0}/s), failed {}",
        w.acked.len(),
        w.acked.len() as f64 / load,
        w.failed
    );
    println!(
        "trace                {} lines, trace_hash {}",
        s.trace().len(),
        s.trace_hash()
    );
    println!("tick                 {tick_us} µs");
    println!("speed                {:.0}x real time", simulated / secs);
}
