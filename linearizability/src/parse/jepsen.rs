//! Parser for Jepsen etcd register logs.
//!
//! Owns: the line format `INFO  jepsen.util - <process> <:type> <:f> <value>` (tab- or
//! space-separated; `[a b]` is one value). Times are line numbers. `:fail` operations did not
//! happen and are dropped; `:info` operations and invocations that never complete have an
//! unknown outcome. Must never panic on malformed input.

use std::collections::HashMap;

use super::{line_error, ParseError};
use crate::history::Operation;
use crate::models::register::{RegisterInput, RegisterOutput};

/// One register operation from a Jepsen log.
pub type RegisterOp = Operation<RegisterInput, RegisterOutput>;

/// Splits on whitespace, keeping `[a b]` together.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut depth = 0usize;
    for (i, c) in line.char_indices() {
        match c {
            '[' => {
                depth += 1;
                start.get_or_insert(i);
            }
            ']' => depth = depth.saturating_sub(1),
            c if c.is_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    out.push(&line[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

fn parse_value(tok: &str, line: usize) -> Result<Option<i64>, ParseError> {
    if tok == "nil" {
        return Ok(None);
    }
    tok.parse::<i64>()
        .map(Some)
        .map_err(|_| line_error(line, format!("expected an integer or nil, found {tok:?}")))
}

fn parse_input(f: &str, value: &str, line: usize) -> Result<RegisterInput, ParseError> {
    match f {
        ":read" => Ok(RegisterInput::Read),
        ":write" => parse_value(value, line)?
            .map(RegisterInput::Write)
            .ok_or_else(|| line_error(line, "write of nil")),
        ":cas" => {
            let inner = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or_else(|| line_error(line, format!("expected [from to], found {value:?}")))?;
            let parts: Vec<&str> = inner.split_whitespace().collect();
            match parts.as_slice() {
                [a, b] => match (parse_value(a, line)?, parse_value(b, line)?) {
                    (Some(from), Some(to)) => Ok(RegisterInput::Cas { from, to }),
                    _ => Err(line_error(line, "cas with nil")),
                },
                _ => Err(line_error(
                    line,
                    format!("expected [from to], found {value:?}"),
                )),
            }
        }
        other => Err(line_error(line, format!("unknown operation {other:?}"))),
    }
}

/// Parses a Jepsen etcd log into register operations.
pub fn parse_jepsen_etcd(text: &str) -> Result<Vec<RegisterOp>, ParseError> {
    struct Pending {
        call: u64,
        input: RegisterInput,
        f: String,
    }
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut ops: Vec<(u64, RegisterOp)> = Vec::new();
    let mut last_time = 0u64;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let time = line as u64;
        let t = tokens(raw);
        if t.is_empty() {
            continue;
        }
        last_time = time;
        let Some(dash) = t.iter().position(|&x| x == "-") else {
            return Err(line_error(
                line,
                "expected `INFO  jepsen.util - <process> <type> <f> <value>`",
            ));
        };
        let rest = &t[dash + 1..];
        let [pid, kind, f, value @ ..] = rest else {
            return Err(line_error(line, "expected <process> <type> <f> <value>"));
        };
        let pid: u64 = pid
            .parse()
            .map_err(|_| line_error(line, format!("expected a process number, found {pid:?}")))?;
        let value = value.first().copied().unwrap_or("nil");
        match *kind {
            ":invoke" => {
                let input = parse_input(f, value, line)?;
                if pending.contains_key(&pid) {
                    return Err(line_error(
                        line,
                        format!("process {pid} invokes while an operation is pending"),
                    ));
                }
                pending.insert(
                    pid,
                    Pending {
                        call: time,
                        input,
                        f: (*f).to_string(),
                    },
                );
            }
            ":ok" | ":fail" | ":info" => {
                let Some(p) = pending.remove(&pid) else {
                    return Err(line_error(
                        line,
                        format!("process {pid} completes without a pending invocation"),
                    ));
                };
                if p.f != *f {
                    return Err(line_error(
                        line,
                        format!("process {pid} invoked {} but completes {f}", p.f),
                    ));
                }
                match *kind {
                    ":ok" => {
                        let output = match p.input {
                            RegisterInput::Read => RegisterOutput::Read(parse_value(value, line)?),
                            RegisterInput::Write(_) => RegisterOutput::Write,
                            RegisterInput::Cas { .. } => RegisterOutput::Cas(true),
                        };
                        ops.push((p.call, Operation::new(pid, p.call, time, p.input, output)));
                    }
                    ":info" => ops.push((p.call, Operation::unknown(pid, p.call, time, p.input))),
                    _ => {} // :fail: the operation did not happen.
                }
            }
            other => return Err(line_error(line, format!("unknown event type {other:?}"))),
        }
    }
    for (pid, p) in pending {
        ops.push((
            p.call,
            Operation::unknown(pid, p.call, last_time + 1, p.input),
        ));
    }
    ops.sort_by_key(|(call, _)| *call);
    Ok(ops.into_iter().map(|(_, op)| op).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_brackets() {
        assert_eq!(
            tokens("INFO  jepsen.util - 3\t:invoke :cas   [1 2]"),
            vec!["INFO", "jepsen.util", "-", "3", ":invoke", ":cas", "[1 2]"]
        );
    }

    #[test]
    fn parses_all_kinds() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - 1 :invoke :cas [1 2]\n\
                   INFO  jepsen.util - 2\t:invoke\t:write\t4\n\
                   INFO  jepsen.util - 0\t:ok\t:read\t3\n\
                   INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]\n\
                   INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n";
        let ops = parse_jepsen_etcd(log).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].output, Some(RegisterOutput::Read(Some(3))));
        assert_eq!((ops[0].call, ops[0].ret), (1, 4));
        assert!(ops[1].is_unknown());
        assert_eq!(ops[1].input, RegisterInput::Write(4));
    }

    #[test]
    fn errors_name_the_line() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\tpotato\n";
        let e = parse_jepsen_etcd(log).unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_jepsen_etcd("garbage\n").unwrap_err().to_string();
        assert!(e.starts_with("line 1:"), "{e}");
    }
}
