//! A key-value map with get, put and append (the model of porcupine's kv logs). Missing keys
//! read as the empty string.
//!
//! Owns: key-value semantics and the per-key partition. Must never parse logs or know about the
//! search.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::Operation;
use crate::model::Model;

/// A key-value request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvInput {
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append to a key's value.
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: String,
    },
}

impl KvInput {
    /// The key the request touches.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key } | KvInput::Put { key, .. } | KvInput::Append { key, .. } => key,
        }
    }
}

/// A key-value response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvOutput {
    /// The value read.
    Get {
        /// The value ("" for a missing key).
        value: String,
    },
    /// The put was applied.
    Put,
    /// The append was applied.
    Append,
}

/// The key-value model. The state is the whole map (for a per-key partition it only ever holds
/// that key).
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

impl Model for Kv {
    type State = BTreeMap<String, String>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn step(
        &self,
        state: &Self::State,
        input: &KvInput,
        output: Option<&KvOutput>,
        next: &mut Vec<Self::State>,
    ) {
        match (input, output) {
            (KvInput::Get { .. }, None) => next.push(state.clone()),
            (KvInput::Get { key }, Some(KvOutput::Get { value })) => {
                if state.get(key).map_or("", String::as_str) == value {
                    next.push(state.clone());
                }
            }
            (KvInput::Put { key, value }, None | Some(KvOutput::Put)) => {
                let mut s = state.clone();
                s.insert(key.clone(), value.clone());
                next.push(s);
            }
            (KvInput::Append { key, value }, None | Some(KvOutput::Append)) => {
                let mut s = state.clone();
                s.entry(key.clone()).or_default().push_str(value);
                next.push(s);
            }
            _ => {}
        }
    }

    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Option<Vec<Vec<usize>>> {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, op) in history.iter().enumerate() {
            by_key.entry(op.input.key()).or_default().push(i);
        }
        Some(by_key.into_values().collect())
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let out = match output {
            None => "?".to_string(),
            Some(KvOutput::Get { value }) => format!("{value:?}"),
            Some(_) => "ok".to_string(),
        };
        match input {
            KvInput::Get { key } => format!("get({key:?}) -> {out}"),
            KvInput::Put { key, value } => format!("put({key:?}, {value:?}) -> {out}"),
            KvInput::Append { key, value } => format!("append({key:?}, {value:?}) -> {out}"),
        }
    }

    fn describe_state(&self, state: &Self::State) -> String {
        let items: Vec<String> = state.iter().map(|(k, v)| format!("{k:?}: {v:?}")).collect();
        format!("{{{}}}", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, check_with, CheckOptions, Verdict};

    fn get(key: &str) -> KvInput {
        KvInput::Get { key: key.into() }
    }
    fn got(value: &str) -> KvOutput {
        KvOutput::Get {
            value: value.into(),
        }
    }
    fn append(key: &str, value: &str) -> KvInput {
        KvInput::Append {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn append_then_get() {
        let h = vec![
            Operation::new(0, 0, 1, append("a", "x"), KvOutput::Append),
            Operation::new(0, 2, 3, append("a", "y"), KvOutput::Append),
            Operation::new(1, 4, 5, get("a"), got("xy")),
            Operation::new(1, 6, 7, get("b"), got("")),
        ];
        assert_eq!(check(&Kv, &h).result.verdict(), Verdict::Linearizable);
        let mut bad = h.clone();
        bad[2].output = Some(got("yx"));
        for partition in [true, false] {
            let opts = CheckOptions {
                partition,
                ..CheckOptions::default()
            };
            assert_eq!(
                check_with(&Kv, &bad, &opts).result.verdict(),
                Verdict::NotLinearizable
            );
        }
    }

    #[test]
    fn partition_groups_by_key() {
        let h = vec![
            Operation::new(0, 0, 1, get("a"), got("")),
            Operation::new(0, 2, 3, get("b"), got("")),
            Operation::new(0, 4, 5, get("a"), got("")),
        ];
        assert_eq!(Kv.partition(&h), Some(vec![vec![0, 2], vec![1]]));
    }
}
