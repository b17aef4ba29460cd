//! Stand-alone front end for the checker's CLI functions until `etcd-sim` wires them up:
//! `cargo run --release -p linearizability --example check -- check FILE [...]` or
//! `... -- bench-check DIR [...]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("check") => linearizability::cli::check_main(&args[1..]),
        Some("bench-check") => linearizability::cli::bench_check_main(&args[1..]),
        _ => {
            eprintln!("usage: check (check FILE [...] | bench-check DIR [...])");
            2
        }
    };
    std::process::exit(code);
}
