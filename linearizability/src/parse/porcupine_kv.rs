//! Parser for porcupine's kv logs: one EDN map per line,
//! `{:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append, :key "k", :value "v"|nil}`.
//!
//! Owns: that line format. Times are line numbers; `:fail` operations are dropped, `:info` and
//! never-completed invocations have an unknown outcome. Must never panic on malformed input.

use std::collections::HashMap;

use super::{line_error, ParseError};
use crate::history::Operation;
use crate::models::kv::{KvInput, KvOutput};

/// One key-value operation.
pub type KvOp = Operation<KvInput, KvOutput>;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Nil,
    Str(String),
    Keyword(String),
    Int(i64),
}

/// Parses `{:a 1, :b "x", ...}` into (name, value) pairs.
fn parse_map(line: &str, lineno: usize) -> Result<Vec<(String, Value)>, ParseError> {
    let body = line
        .trim()
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or_else(|| line_error(lineno, "expected a {...} map"))?;
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        if chars.next() != Some(':') {
            return Err(line_error(lineno, "expected a :keyword key"));
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = match chars.peek() {
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(c) => s.push(c),
                            None => return Err(line_error(lineno, "unterminated string")),
                        },
                        Some(c) => s.push(c),
                        None => return Err(line_error(lineno, "unterminated string")),
                    }
                }
                Value::Str(s)
            }
            Some(_) => {
                let tok: String =
                    std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != ','))
                        .collect();
                if tok == "nil" {
                    Value::Nil
                } else if let Some(k) = tok.strip_prefix(':') {
                    Value::Keyword(k.to_string())
                } else if let Ok(i) = tok.parse() {
                    Value::Int(i)
                } else {
                    return Err(line_error(
                        lineno,
                        format!("cannot parse value {tok:?} of :{name}"),
                    ));
                }
            }
            None => return Err(line_error(lineno, format!("missing value for :{name}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Parses a porcupine kv log.
pub fn parse_porcupine_kv(text: &str) -> Result<Vec<KvOp>, ParseError> {
    struct Pending {
        call: u64,
        input: KvInput,
    }
    let mut pending: HashMap<i64, Pending> = HashMap::new();
    let mut ops: Vec<(u64, KvOp)> = Vec::new();
    let mut last_time = 0u64;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let time = line as u64;
        last_time = time;
        let fields = parse_map(raw, line)?;
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let Some(Value::Int(pid)) = get("process") else {
            return Err(line_error(line, "missing or non-integer :process"));
        };
        let Some(Value::Keyword(kind)) = get("type") else {
            return Err(line_error(line, "missing :type keyword"));
        };
        let Some(Value::Keyword(f)) = get("f") else {
            return Err(line_error(line, "missing :f keyword"));
        };
        let Some(Value::Str(key)) = get("key") else {
            return Err(line_error(line, "missing or non-string :key"));
        };
        let value = match get("value") {
            Some(Value::Str(s)) => Some(s.clone()),
            Some(Value::Nil) | None => None,
            Some(other) => return Err(line_error(line, format!("unexpected :value {other:?}"))),
        };
        match kind.as_str() {
            "invoke" => {
                let input = match f.as_str() {
                    "get" => KvInput::Get { key: key.clone() },
                    "put" | "append" => {
                        let value = value
                            .ok_or_else(|| line_error(line, format!(":{f} without a :value")))?;
                        if f == "put" {
                            KvInput::Put {
                                key: key.clone(),
                                value,
                            }
                        } else {
                            KvInput::Append {
                                key: key.clone(),
                                value,
                            }
                        }
                    }
                    other => return Err(line_error(line, format!("unknown :f :{other}"))),
                };
                if pending
                    .insert(*pid, Pending { call: time, input })
                    .is_some()
                {
                    return Err(line_error(
                        line,
                        format!("process {pid} invokes while an operation is pending"),
                    ));
                }
            }
            "ok" | "fail" | "info" => {
                let Some(p) = pending.remove(pid) else {
                    return Err(line_error(
                        line,
                        format!("process {pid} completes without a pending invocation"),
                    ));
                };
                let client = u64::try_from(*pid).unwrap_or(u64::MAX);
                match kind.as_str() {
                    "ok" => {
                        let output = match &p.input {
                            KvInput::Get { .. } => KvOutput::Get {
                                value: value.unwrap_or_default(),
                            },
                            KvInput::Put { .. } => KvOutput::Put,
                            KvInput::Append { .. } => KvOutput::Append,
                        };
                        ops.push((
                            p.call,
                            Operation::new(client, p.call, time, p.input, output),
                        ));
                    }
                    "info" => ops.push((p.call, Operation::unknown(client, p.call, time, p.input))),
                    _ => {}
                }
            }
            other => return Err(line_error(line, format!("unknown :type :{other}"))),
        }
    }
    for (pid, p) in pending {
        let client = u64::try_from(pid).unwrap_or(u64::MAX);
        ops.push((
            p.call,
            Operation::unknown(client, p.call, last_time + 1, p.input),
        ));
    }
    ops.sort_by_key(|(call, _)| *call);
    Ok(ops.into_iter().map(|(_, op)| op).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pair() {
        let log = "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n\
                   {:process 0, :type :ok, :f :get, :key \"5\", :value \"x 0 0 y\"}\n";
        let ops = parse_porcupine_kv(log).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].input, KvInput::Get { key: "5".into() });
        assert_eq!(
            ops[0].output,
            Some(KvOutput::Get {
                value: "x 0 0 y".into()
            })
        );
    }

    #[test]
    fn errors_name_the_line() {
        let log = "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n\
                   {:process 0, :type :ok, :f :get, :key \"5\", :value \"x}\n";
        let e = parse_porcupine_kv(log).unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
