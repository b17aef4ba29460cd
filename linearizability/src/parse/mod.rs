//! Parsers for history files: Jepsen etcd logs, porcupine kv logs and our own JSON format, plus
//! format detection.
//!
//! Owns: turning text into `Operation`s, with errors that name the line. Must never check
//! linearizability nor panic on malformed input.

mod jepsen;
mod json;
mod porcupine_kv;

pub use jepsen::parse_jepsen_etcd;
pub use json::{parse_json, JsonHistory};
pub use porcupine_kv::parse_porcupine_kv;

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Jepsen etcd register logs (`INFO  jepsen.util - 0 :invoke :read nil`).
    JepsenEtcd,
    /// Porcupine kv logs (`{:process 0, :type :invoke, :f :get, ...}`).
    PorcupineKv,
    /// Our JSON format ([`JsonHistory`]).
    Json,
}

impl Format {
    /// Parses a `--format` value.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jepsen-etcd" => Some(Format::JepsenEtcd),
            "porcupine-kv" => Some(Format::PorcupineKv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Guesses the format from the file name and its content.
    pub fn detect(path: &str, content: &str) -> Option<Format> {
        let first = content
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if first.starts_with("{:") {
            Some(Format::PorcupineKv)
        } else if first.contains("jepsen.util") {
            Some(Format::JepsenEtcd)
        } else if first.starts_with('{') || path.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// A malformed history file.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A line could not be understood.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The JSON is malformed.
    #[error("line {line}: invalid JSON history: {source}")]
    Json {
        /// 1-based line number reported by serde_json.
        line: usize,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// The history is structurally invalid.
    #[error("invalid history: {0}")]
    History(#[from] crate::history::HistoryError),
}

pub(crate) fn line_error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError::Line {
        line,
        message: message.into(),
    }
}
