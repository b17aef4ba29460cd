//! Runs the reference scenario (`sim::demo`) for one seed and prints its trace (JSON lines)
//! and summary; running it again with the same seed replays it exactly (same `trace_hash`).
//!
//! `cargo run -p sim --example replay -- <seed> [members] [--trace]`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let members: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let out = match sim::demo::run(seed, members) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("seed {seed}: {e}");
            std::process::exit(1);
        }
    };
    if args.iter().any(|a| a == "--trace") {
        for l in &out.trace {
            println!("{l}");
        }
    }
    for (m, why) in &out.member_exits {
        eprintln!("member {m} stopped: {why}");
    }
    if let Some(e) = &out.error {
        eprintln!("scenario stopped early: {e}");
    }
    println!(
        "{{\"seed\":{},\"members\":{members},\"sim_secs\":{:.3},\"acked\":{},\"failed\":{},\"leader_changes\":{},\"trace_lines\":{},\"trace_hash\":\"{}\"}}",
        out.seed,
        out.sim_secs,
        out.acked,
        out.failed,
        out.leader_changes,
        out.trace.len(),
        out.trace_hash
    );
}
