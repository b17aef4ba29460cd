//! Our own JSON history format: `{"model": "register"|"kv"|"etcd", "operations": [...],
//! "faults": [...]}` where operations are serialized [`Operation`]s; an etcd history may add
//! `"watches": [...]`, serialized [`WatcherHistory`]s.
//!
//! Owns: the JSON envelope. Must never panic on malformed input.

use serde::{Deserialize, Serialize};

use super::ParseError;
use crate::history::{validate, FaultWindow, Operation};
use crate::models::etcd::{EtcdRequest, EtcdResponse};
use crate::models::kv::{KvInput, KvOutput};
use crate::models::register::{RegisterInput, RegisterOutput};
use crate::watch::WatcherHistory;

/// A history in our JSON format, tagged by model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum JsonHistory {
    /// A register history.
    Register {
        /// The operations.
        operations: Vec<Operation<RegisterInput, RegisterOutput>>,
        /// Fault windows for the HTML view.
        #[serde(default)]
        faults: Vec<FaultWindow>,
    },
    /// A key-value history.
    Kv {
        /// The operations.
        operations: Vec<Operation<KvInput, KvOutput>>,
        /// Fault windows for the HTML view.
        #[serde(default)]
        faults: Vec<FaultWindow>,
    },
    /// An etcd history.
    Etcd {
        /// The operations.
        operations: Vec<Operation<EtcdRequest, EtcdResponse>>,
        /// Fault windows for the HTML view.
        #[serde(default)]
        faults: Vec<FaultWindow>,
        /// Watch histories recorded in the same run (checked by `crate::run`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        watches: Vec<WatcherHistory>,
    },
}

/// Parses and validates a JSON history.
pub fn parse_json(text: &str) -> Result<JsonHistory, ParseError> {
    let h: JsonHistory = serde_json::from_str(text).map_err(|e| ParseError::Json {
        line: e.line(),
        source: e,
    })?;
    match &h {
        JsonHistory::Register { operations, .. } => validate(operations)?,
        JsonHistory::Kv { operations, .. } => validate(operations)?,
        JsonHistory::Etcd { operations, .. } => validate(operations)?,
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_history_round_trips() {
        let text = r#"{"model":"register","operations":[
            {"client":0,"call":0,"ret":1,"input":{"write":3},"output":"write"},
            {"client":1,"call":2,"ret":3,"input":"read","output":{"read":3}},
            {"client":2,"call":2,"ret":9,"input":{"cas":{"from":3,"to":4}}}
        ]}"#;
        let h = parse_json(text).unwrap();
        let JsonHistory::Register { operations, faults } = &h else {
            panic!("wrong model");
        };
        assert_eq!(operations.len(), 3);
        assert!(operations[2].is_unknown());
        assert!(faults.is_empty());
        let again = parse_json(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(h, again);
    }

    #[test]
    fn error_names_the_line() {
        let e = parse_json("{\"model\":\"register\",\n\"operations\": [\n{\"client\": x}]}")
            .unwrap_err();
        assert!(e.to_string().starts_with("line 3:"), "{e}");
    }
}
