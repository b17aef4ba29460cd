//! The certain violation shared by the register and kv models: a read of the initial value
//! that began after a write which changed it had returned, when no request in the history can
//! write the initial value back.
//!
//! Owns: that one near-linear check, generic over how a model names its objects (one register,
//! or the keys of a map). Proof: the write comes before the read in every linearization (it
//! returned before the read was called), so the read sees the write's value or a later one;
//! only a request writing the initial value could make it visible again, and there is none.
//! Must never decide anything else; the search remains the judge.

use std::collections::HashMap;
use std::hash::Hash;

use crate::history::Operation;

/// What the check needs to know about one operation.
pub(crate) enum Role<K> {
    /// A completed write that left object `K` different from its initial value.
    ChangedFromInitial(K),
    /// A completed read of object `K` that returned its initial value.
    ReadInitial(K),
    /// Anything else.
    Other,
}

/// The violating read that returns first, with the write it missed, or `None`.
/// `restorable(k)`: some request in the history may write the initial value of `k` back.
pub(crate) fn find<'a, I, O, K: Eq + Hash + std::fmt::Debug>(
    history: &'a [Operation<I, O>],
    role: impl Fn(&'a Operation<I, O>) -> Role<K>,
    restorable: impl Fn(&K) -> bool,
) -> Option<(usize, String)> {
    // Per object, the write that returned first.
    let mut first_write: HashMap<K, (u64, usize)> = HashMap::new();
    let mut reads: Vec<(usize, K)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        match role(op) {
            Role::ChangedFromInitial(k) => {
                let e = first_write.entry(k).or_insert((op.ret, i));
                if (op.ret, i) < *e {
                    *e = (op.ret, i);
                }
            }
            Role::ReadInitial(k) => reads.push((i, k)),
            Role::Other => {}
        }
    }
    reads
        .into_iter()
        .filter_map(|(i, k)| {
            let &(ret, w) = first_write.get(&k)?;
            (ret < history[i].call && !restorable(&k)).then(|| {
                (
                    i,
                    format!(
                        "read the initial value of {k:?} after operation #{w} had changed it and returned; no request writes the initial value back"
                    ),
                )
            })
        })
        .min_by_key(|&(i, _)| (history[i].ret, i))
}

#[cfg(test)]
mod tests {
    use crate::models::kv::{Kv, KvInput, KvOutput};
    use crate::models::register::{Register, RegisterInput, RegisterOutput};
    use crate::{check, CheckResult, Model, Operation, Verdict};

    fn reason<M: Model>(model: &M, h: &[Operation<M::Input, M::Output>]) -> Option<String> {
        match check(model, h).result {
            CheckResult::NotLinearizable(cx) => cx.reason,
            _ => None,
        }
    }

    #[test]
    fn register_nil_after_a_completed_write_is_certain() {
        let w = Operation::new(0, 0, 1, RegisterInput::Write(1), RegisterOutput::Write);
        let late = Operation::new(1, 2, 3, RegisterInput::Read, RegisterOutput::Read(None));
        let why = reason(&Register, &[w.clone(), late]).expect("a certain violation");
        assert!(why.contains("after operation #0"), "{why}");
        // Overlapping the write, the nil read is fine.
        let overlapping = Operation::new(1, 1, 3, RegisterInput::Read, RegisterOutput::Read(None));
        assert_eq!(
            check(&Register, &[w, overlapping]).result.verdict(),
            Verdict::Linearizable
        );
    }

    #[test]
    fn kv_empty_read_after_a_put_is_certain_unless_something_empties_the_key() {
        let put = |v: &str| KvInput::Put {
            key: "a".into(),
            value: v.into(),
        };
        let get = KvInput::Get { key: "a".into() };
        let empty = KvOutput::Get {
            value: String::new(),
        };
        let h = vec![
            Operation::new(0, 0, 1, put("x"), KvOutput::Put),
            Operation::new(1, 2, 3, get.clone(), empty.clone()),
        ];
        assert!(reason(&Kv, &h).is_some());
        // A put of "" (even of unknown outcome) could have emptied it: the search decides.
        let mut restorable = h.clone();
        restorable.push(Operation::unknown(2, 0, 9, put("")));
        assert_eq!(reason(&Kv, &restorable), None);
        assert_eq!(
            check(&Kv, &restorable).result.verdict(),
            Verdict::Linearizable
        );
    }
}
