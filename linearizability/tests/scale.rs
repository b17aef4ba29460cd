//! Long histories are decided within the default step budget: a lease-heavy one (hundreds of
//! leases, most expiring without keys) and a 10k-operation one with 5 % unknown-outcome writes.
//! (The 100k-operation ones are in `etcd-sim bench-check --synthetic`.)

use linearizability::models::etcd::EtcdRequest;
use linearizability::run::check_etcd_run;
use linearizability::synth::{etcd_history, SynthSpec};
use linearizability::{CheckOptions, Verdict};

#[test]
fn lease_heavy_history_is_decided() {
    let h = etcd_history(&SynthSpec::lease_heavy(5_000, 2));
    let leases = h
        .iter()
        .filter(|op| matches!(op.input, EtcdRequest::LeaseExpire { .. }))
        .count();
    assert!(leases >= 300, "only {leases} leases");
    let run = check_etcd_run(&h, &[], &CheckOptions::default());
    assert_eq!(
        run.verdict(),
        Verdict::Linearizable,
        "{:?}",
        run.linearizability.result
    );
}

#[test]
fn long_history_with_unknown_writes_is_decided() {
    let h = etcd_history(&SynthSpec::etcd(10_000, 10, 1_000, 2));
    let unknown = h.iter().filter(|op| op.output.is_none()).count();
    assert!(unknown >= 200, "only {unknown} unknown-outcome writes");
    let run = check_etcd_run(&h, &[], &CheckOptions::default());
    assert_eq!(
        run.verdict(),
        Verdict::Linearizable,
        "{:?}",
        run.linearizability.result
    );
}
