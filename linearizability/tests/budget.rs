//! The search's limits: a step budget decides when the checker gives up, the same on every
//! machine; the wall-clock cap only ever produces its own loud "checker budget exceeded"
//! result, never a verdict.

use linearizability::models::register::{Register, RegisterInput, RegisterOutput};
use linearizability::{check_with, CheckOptions, CheckResult, Operation, StopReason};
use std::time::Duration;

/// Twelve concurrent writes, then a read of a value none of them wrote: not linearizable, but
/// the plain search tries every order of the writes (about 2^12 configurations) to prove it.
fn hard() -> Vec<Operation<RegisterInput, RegisterOutput>> {
    let mut h: Vec<_> = (0..12)
        .map(|i| {
            Operation::new(
                i,
                0,
                100,
                RegisterInput::Write(i as i64 + 1),
                RegisterOutput::Write,
            )
        })
        .collect();
    h.push(Operation::new(
        20,
        200,
        201,
        RegisterInput::Read,
        RegisterOutput::Read(Some(99)),
    ));
    h
}

fn options(step_budget: Option<u64>, timeout: Option<Duration>) -> CheckOptions {
    CheckOptions {
        parallel: false,
        step_budget,
        timeout,
        ..CheckOptions::default()
    }
}

#[test]
fn the_step_budget_decides_not_the_clock() {
    let h = hard();
    let small = check_with(&Register, &h, &options(Some(500), None));
    let CheckResult::Unknown(u) = &small.result else {
        panic!("expected unknown, got {:?}", small.result);
    };
    assert_eq!(u.reason, StopReason::StepBudget { steps: 500 });
    assert_eq!(u.partition_ops, h.len());
    assert!(u.prefix > 0 && u.prefix < h.len(), "{u}");
    // The same budget under a huge wall-clock cap: the same result, prefix included.
    let capped = check_with(
        &Register,
        &h,
        &options(Some(500), Some(Duration::from_secs(3600))),
    );
    assert_eq!(small.result, capped.result);
    assert!(u.to_string().contains("step budget of 500"), "{u}");
    // Enough budget: decided.
    let full = check_with(&Register, &h, &options(None, None));
    assert!(
        matches!(full.result, CheckResult::NotLinearizable(_)),
        "{:?}",
        full.result
    );
}

#[test]
fn the_wall_clock_cap_fails_loudly_and_is_never_a_verdict() {
    let h = hard();
    let r = check_with(&Register, &h, &options(None, Some(Duration::ZERO)));
    let CheckResult::Unknown(u) = &r.result else {
        panic!("a zero cap must stop the search, got {:?}", r.result);
    };
    assert!(matches!(u.reason, StopReason::WallClockCap { .. }), "{u}");
    assert!(u.to_string().contains("checker budget exceeded"), "{u}");
}
