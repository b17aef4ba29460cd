//! Writes a synthetic etcd-model history (JSON) to stdout, shaped like a simulated run:
//! `cargo run --release -p linearizability --example etcd_synth -- OPS CLIENTS KEYS SEED > h.json`.
//! Clients issue puts, ranges, deletes and compare-and-set txns back to back; each operation
//! takes effect at a random point of its interval; about 2% time out (unknown outcome), half of
//! those without taking effect.

use linearizability::models::etcd::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, Etcd, EtcdRequest, KeyRange, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use linearizability::parse::JsonHistory;
use linearizability::{Model, Operation};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (n, clients, keys, seed, unknown_permille) = (
        arg(1, 100_000),
        arg(2, 10),
        arg(3, 100),
        arg(4, 1),
        arg(5, 20),
    );
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut free_at = vec![0u64; clients as usize];
    // (call, ret, point, client, request, unknown, applied)
    let mut planned = Vec::with_capacity(n as usize);
    for i in 0..n {
        let c = (i % clients) as usize;
        let call = free_at[c] + rng.below(5);
        let dur = 1 + rng.below(40);
        let point = call + rng.below(dur + 1);
        free_at[c] = call + dur + 1;
        let key = format!("k{}", rng.below(keys));
        let value = format!("v{i}");
        let req = match rng.below(10) {
            0..=3 => EtcdRequest::Put(PutRequest {
                key,
                value,
                lease: 0,
                prev_kv: rng.below(4) == 0,
            }),
            4..=6 => EtcdRequest::Range(RangeRequest {
                range: KeyRange::key(key),
                ..RangeRequest::default()
            }),
            7 => EtcdRequest::DeleteRange(DeleteRangeRequest {
                range: KeyRange::key(key),
                prev_kv: false,
            }),
            _ => EtcdRequest::Txn(TxnRequest {
                compare: vec![Compare {
                    range: KeyRange::key(key.clone()),
                    op: CompareOp::Equal,
                    target: CompareTarget::Version(rng.below(3) as i64),
                }],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.clone(),
                    value,
                    ..PutRequest::default()
                })],
                failure: vec![RequestOp::Range(RangeRequest {
                    range: KeyRange::key(key),
                    ..RangeRequest::default()
                })],
            }),
        };
        let unknown = rng.below(1000) < unknown_permille;
        let applied = !unknown || rng.below(100) < arg(6, 50);
        planned.push((call, call + dur, point, c as u64, req, unknown, applied));
    }
    let model = Etcd {
        keep_history: false,
        ..Etcd::default()
    };
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].2, i));
    let mut state = model.init();
    let mut outputs = vec![None; planned.len()];
    for i in order {
        if planned[i].6 {
            let (next, resp) = model.apply(&state, &planned[i].4);
            state = next;
            outputs[i] = Some(resp);
        }
    }
    let operations = planned
        .into_iter()
        .zip(outputs)
        .map(
            |((call, ret, _, client, input, unknown, _), out)| match out {
                Some(o) if !unknown => Operation::new(client, call, ret, input, o),
                _ => Operation::unknown(client, call, ret, input),
            },
        )
        .collect();
    let h = JsonHistory::Etcd {
        operations,
        faults: Vec::new(),
        watches: Vec::new(),
    };
    match serde_json::to_string(&h) {
        Ok(s) => println!("{s}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
