//! The certain-violation fast paths (`models::etcd::certain`) and the search's evidence (pins,
//! deadlines, read-only fits placed without a choice point) change no verdict: on small
//! synthetic etcd histories, with and without planted anomalies, with leases and unknown-outcome
//! writes, the full pipeline agrees with the plain search and with the verdict the history was
//! built with; and each planted anomaly is named by the fast path that models it.

use linearizability::models::etcd::Etcd;
use linearizability::run::check_etcd_run;
use linearizability::synth::{etcd_history, Anomaly, SynthSpec};
use linearizability::{check_with, CheckOptions, CheckResult, Verdict};

fn plain() -> CheckOptions {
    CheckOptions {
        parallel: false,
        fast_paths: false,
        step_budget: Some(2_000_000),
        ..CheckOptions::default()
    }
}

fn specs() -> Vec<(SynthSpec, Verdict)> {
    let mut out = Vec::new();
    for seed in 0..24 {
        let small = SynthSpec {
            unknown_writes_per_mille: 100,
            ..SynthSpec::etcd(120, 4, 6, seed)
        };
        let leases = SynthSpec {
            keys: 6,
            ..SynthSpec::lease_heavy(120, seed)
        };
        for base in [small, leases] {
            let clean = etcd_history(&base);
            out.push((base.clone(), Verdict::Linearizable));
            for a in [
                Anomaly::StaleRead,
                Anomaly::RevisionBackwards,
                Anomaly::LostWrite,
            ] {
                let spec = base.clone().with_anomaly(a);
                // A short history may offer no operation that can carry the anomaly.
                let planted = etcd_history(&spec) != clean;
                out.push((
                    spec,
                    if planted {
                        Verdict::NotLinearizable
                    } else {
                        Verdict::Linearizable
                    },
                ));
            }
        }
    }
    out
}

#[test]
fn fast_paths_and_evidence_agree_with_the_plain_search() {
    let mut decided_by_plain = 0;
    let mut caught = 0;
    let mut planted = 0;
    for (spec, built) in specs() {
        let h = etcd_history(&spec);
        let full = check_etcd_run(&h, &[], &CheckOptions::default()).verdict();
        assert_ne!(full, Verdict::Unknown, "{spec:?}");
        if built == Verdict::Linearizable {
            // Linearizable by construction.
            assert_eq!(full, built, "{spec:?}");
        } else {
            planted += 1;
            caught += usize::from(full == Verdict::NotLinearizable);
        }
        // The plain search: the model without any gathered evidence, no fast path.
        let bare = Etcd {
            keep_history: true,
            ..Etcd::default()
        };
        let p = check_with(&bare, &h, &plain()).result.verdict();
        if p != Verdict::Unknown {
            decided_by_plain += 1;
            assert_eq!(full, p, "the plain search disagrees on {spec:?}");
        }
    }
    // Most histories are small enough for the plain search, so the comparison means something.
    assert!(
        decided_by_plain >= 100,
        "plain search decided only {decided_by_plain}"
    );
    // A planted anomaly is not always a violation (a lost write whose revision an
    // unknown-outcome write creates next is explained by that write never happening), but
    // most are.
    assert!(caught * 4 >= planted * 3, "caught {caught} of {planted}");
}

#[test]
fn each_planted_anomaly_is_named_by_its_fast_path() {
    // A lost write is re-created by the next write: named as created twice, or as going back
    // when the second creator was called after the first returned.
    for (anomaly, reasons) in [
        (Anomaly::StaleRead, &["missed write"][..]),
        (Anomaly::RevisionBackwards, &["revision went back"][..]),
        (
            Anomaly::LostWrite,
            &["revision created twice", "revision went back"][..],
        ),
    ] {
        let h = etcd_history(&SynthSpec::etcd(2_000, 8, 50, 3).with_anomaly(anomaly));
        let run = check_etcd_run(&h, &[], &CheckOptions::default());
        let CheckResult::NotLinearizable(cx) = &run.linearizability.result else {
            panic!("{anomaly:?}: {:?}", run.linearizability.result);
        };
        let why = cx.reason.as_deref().unwrap_or_default();
        assert!(
            reasons.iter().any(|r| why.starts_with(r)),
            "{anomaly:?}: {why}"
        );
        // Without fast paths, the search finds it too (these histories are small).
        let searched = check_etcd_run(
            &h,
            &[],
            &CheckOptions {
                fast_paths: false,
                ..CheckOptions::default()
            },
        );
        assert_ne!(searched.verdict(), Verdict::Linearizable, "{anomaly:?}");
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    fn anomaly(i: u8) -> Option<Anomaly> {
        match i {
            0 => Some(Anomaly::StaleRead),
            1 => Some(Anomaly::RevisionBackwards),
            2 => Some(Anomaly::LostWrite),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Random small specs: the full pipeline never contradicts the plain search, and a
        /// history without a planted anomaly is linearizable.
        #[test]
        fn full_pipeline_agrees_with_the_plain_search(
            seed in any::<u64>(),
            ops in 20usize..140,
            clients in 1usize..6,
            keys in 1usize..8,
            unknown in 0u32..250,
            leases in prop::bool::ANY,
            planted in 0u8..5,
        ) {
            let base = SynthSpec {
                clients,
                keys,
                unknown_writes_per_mille: unknown,
                lease_per_mille: if leases { 330 } else { 0 },
                ..SynthSpec::etcd(ops, clients, keys, seed)
            };
            let spec = match anomaly(planted) {
                Some(a) => base.with_anomaly(a),
                None => base,
            };
            let h = etcd_history(&spec);
            let full = check_etcd_run(&h, &[], &CheckOptions::default()).verdict();
            prop_assert_ne!(full, Verdict::Unknown);
            if spec.anomaly.is_none() {
                prop_assert_eq!(full, Verdict::Linearizable);
            }
            let bare = Etcd { keep_history: true, ..Etcd::default() };
            let p = check_with(&bare, &h, &plain()).result.verdict();
            if p != Verdict::Unknown {
                prop_assert_eq!(full, p);
            }
        }
    }
}
