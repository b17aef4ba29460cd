//! A key-value map with get, put and append (the model of porcupine's kv logs). Missing keys
//! read as the empty string.
//!
//! Owns: key-value semantics and the per-key partition. Must never parse logs or know about the
//! search.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::initial_value::{self, Role};
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

/// A shared string with its hash computed once (states are hashed often, values rarely change).
#[derive(Clone, Debug)]
pub struct HStr {
    hash: u64,
    text: Arc<str>,
}

impl HStr {
    /// Wraps a string.
    pub fn new(text: &str) -> Self {
        HStr {
            hash: crate::fxhash::hash_one(text),
            text: Arc::from(text),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for HStr {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for HStr {}

impl Hash for HStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The map: (key, value) pairs sorted by key; missing keys read as "".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvState {
    entries: Vec<(HStr, HStr)>,
}

impl KvState {
    /// The value of `key` ("" if missing).
    pub fn get(&self, key: &str) -> &str {
        self.find(key).map_or("", |i| self.entries[i].1.as_str())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// A copy with `key` set to `value`.
    pub fn with(&self, key: &str, value: &str) -> KvState {
        let mut next = self.clone();
        match next.find(key) {
            Ok(i) => next.entries[i].1 = HStr::new(value),
            Err(i) => next.entries.insert(i, (HStr::new(key), HStr::new(value))),
        }
        next
    }

    /// The (key, value) pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The key-value model. The state is the whole map (for a per-key partition it only ever holds
/// that key).
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

impl Model for Kv {
    type State = KvState;
    type Input = KvInput;
    type Output = KvOutput;

    fn never_changes_state(&self, input: &KvInput, _output: &KvOutput) -> bool {
        matches!(input, KvInput::Get { .. })
    }

    fn init(&self) -> Self::State {
        KvState::default()
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
            (KvInput::Get { key }, Some(KvOutput::Get { value })) if state.get(key) == value => {
                next.push(state.clone())
            }
            (KvInput::Put { key, value }, None | Some(KvOutput::Put)) => {
                next.push(state.with(key, value))
            }
            (KvInput::Append { key, value }, None | Some(KvOutput::Append)) => {
                let mut v = String::with_capacity(state.get(key).len() + value.len());
                v.push_str(state.get(key));
                v.push_str(value);
                next.push(state.with(key, &v));
            }
            _ => {}
        }
    }

    fn certain_violation(
        &self,
        history: &[Operation<KvInput, KvOutput>],
    ) -> Option<(usize, String)> {
        // Only a put of "" empties a key again (appends never shorten it).
        let emptied: std::collections::HashSet<&str> = history
            .iter()
            .filter_map(|op| match &op.input {
                KvInput::Put { key, value } if value.is_empty() => Some(key.as_str()),
                _ => None,
            })
            .collect();
        initial_value::find(
            history,
            |op| match (&op.input, &op.output) {
                (KvInput::Put { key, value }, Some(KvOutput::Put))
                | (KvInput::Append { key, value }, Some(KvOutput::Append))
                    if !value.is_empty() =>
                {
                    Role::ChangedFromInitial(key.as_str())
                }
                (KvInput::Get { key }, Some(KvOutput::Get { value })) if value.is_empty() => {
                    Role::ReadInitial(key.as_str())
                }
                _ => Role::Other,
            },
            |k| emptied.contains(k),
        )
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
