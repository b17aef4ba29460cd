//! Failure signatures: how a run failed, as a short name that stays the same from seed to seed
//! (the check and the kind of anomaly, without the run's revisions, keys, ids or counts), so a
//! sweep can group its failures and keep, per signature, the seed that failed fastest.
//!
//! Owns: turning a failure into its signature, and grouping failed runs by signature. Must
//! never: decide whether a run failed (`report::judge` does), or read anything but the summary.

use linearizability::models::etcd::EtcdRequest;
use std::collections::BTreeMap;

/// The signature of a linearizability failure: the certain violation's kind (`revision went
/// back`, `missed write`, ...), or, when the search found no linearization, the kind of
/// request that could not be placed.
pub fn linearizability(reason: Option<&str>, failed_request: &str) -> String {
    match reason.and_then(|r| r.split_once(':')) {
        Some((kind, _)) => format!("linearizability: {kind}"),
        None => format!("linearizability: no linearization places a {failed_request}"),
    }
}

/// What kind of request `r` is, for a signature.
pub fn request_kind(r: &EtcdRequest) -> &'static str {
    match r {
        EtcdRequest::Range(_) => "range",
        EtcdRequest::Put(_) => "put",
        EtcdRequest::DeleteRange(_) => "delete",
        EtcdRequest::Txn(_) => "txn",
        EtcdRequest::LeaseGrant { .. } => "lease grant",
        EtcdRequest::LeaseRevoke { .. } => "lease revoke",
        EtcdRequest::LeaseExpire { .. } => "lease expiry",
        EtcdRequest::Compact { .. } => "compaction",
    }
}

/// The signature of a watch violation: its guarantee and what the guarantee required.
pub fn watch(guarantee: &str, expected: &str) -> String {
    format!("watch/{guarantee}: {}", template(expected))
}

/// The signature of any other failure line: its text up to the first colon, as a template
/// that keeps quoted text (there, a log message the trace lacked, or an expected answer).
pub fn of_line(line: &str) -> String {
    let head = line.split(':').next().unwrap_or(line);
    let head = head.split(", first").next().unwrap_or(head);
    if head.contains('"') {
        return head.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    template(head)
}

/// `text` without what changes from run to run: quoted strings become `K`, numbers (decimal
/// or hex ids) `N`, and parenthesised remarks go.
pub fn template(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '"' => {
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                }
                out.push('K');
            }
            c if c.is_ascii_digit() => {
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                    chars.next();
                }
                out.push('N');
            }
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One signature across the runs of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The signature.
    pub signature: String,
    /// Failed runs with it.
    pub runs: usize,
    /// The run that failed fastest (least wall time, then lowest seed): (scenario, seed,
    /// wall seconds, replay command).
    pub fastest: (String, u64, f64, String),
}

/// A failed run as grouping sees it: scenario, seed, wall seconds, replay command, signatures.
pub type FailedRun<'a> = (&'a str, u64, f64, &'a str, &'a [String]);

/// Groups failed runs by signature (a run with several signatures counts in each), most
/// frequent first.
pub fn group<'a>(failed: impl IntoIterator<Item = FailedRun<'a>>) -> Vec<Group> {
    let mut by: BTreeMap<&str, Group> = BTreeMap::new();
    for (scenario, seed, wall, replay, signatures) in failed {
        for s in signatures {
            let g = by.entry(s.as_str()).or_insert_with(|| Group {
                signature: s.clone(),
                runs: 0,
                fastest: (scenario.to_string(), seed, wall, replay.to_string()),
            });
            g.runs += 1;
            let (_, best_seed, best_wall, _) = &g.fastest;
            if (wall, seed) < (*best_wall, *best_seed) {
                g.fastest = (scenario.to_string(), seed, wall, replay.to_string());
            }
        }
    }
    let mut groups: Vec<Group> = by.into_values().collect();
    groups.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.signature.cmp(&b.signature)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_drop_what_changes_between_seeds() {
        assert_eq!(
            template("only events after revision 163 (progress notification, response #58)"),
            "only events after revision N"
        );
        assert_eq!(
            of_line("members' key spaces differ at revision 308 (compacted at 79): m1 hash 1"),
            "members' key spaces differ at revision N"
        );
        assert_eq!(
            of_line("12 serializable reads inconsistent, first: serializable read by client 7"),
            "N serializable reads inconsistent"
        );
        assert_eq!(
            of_line(r#"the trace never says "slow fdatasync""#),
            r#"the trace never says "slow fdatasync""#
        );
        assert_eq!(
            template(r#"prev_kv "/etcd/k3"="c4-20" of lease 12c00000001"#),
            "prev_kv K=K of lease N"
        );
        // Two seeds of the same anomaly share a signature.
        assert_eq!(
            watch(
                "bookmarkable",
                "only events after revision 163 (response #58)"
            ),
            watch(
                "bookmarkable",
                "only events after revision 127 (response #3)"
            )
        );
    }

    #[test]
    fn linearizability_signatures_name_the_kind_of_anomaly() {
        let went_back = Some("revision went back: it answered at revision 80, but ...");
        assert_eq!(
            linearizability(went_back, "range"),
            "linearizability: revision went back"
        );
        assert_eq!(
            linearizability(None, "txn"),
            "linearizability: no linearization places a txn"
        );
    }

    #[test]
    fn groups_keep_the_fastest_failing_seed() {
        let a = vec!["watch/resumable: x".to_string()];
        let ab = vec!["watch/resumable: x".to_string(), "liveness".to_string()];
        let g = group([
            ("s", 4, 3.0, "run s --seed 4", a.as_slice()),
            ("s", 9, 1.5, "run s --seed 9", ab.as_slice()),
            ("s", 2, 1.5, "run s --seed 2", a.as_slice()),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[0].signature.as_str(), g[0].runs),
            ("watch/resumable: x", 3)
        );
        assert_eq!(g[0].fastest.1, 2);
        assert_eq!((g[1].runs, g[1].fastest.1), (1, 9));
    }
}
