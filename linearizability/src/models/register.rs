//! A single register with read, write and compare-and-set, starting as nil (the model of the
//! Jepsen etcd logs).
//!
//! Owns: register semantics. Must never parse logs or know about the search.

use serde::{Deserialize, Serialize};

use super::initial_value::{self, Role};
use crate::model::Model;

/// A register request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Set the value.
    Write(i64),
    /// Set the value to `to` if it is `from`.
    Cas {
        /// Expected value.
        from: i64,
        /// New value.
        to: i64,
    },
}

/// A register response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutput {
    /// The value read (`None` = nil).
    Read(Option<i64>),
    /// The write was applied.
    Write,
    /// Whether the compare-and-set succeeded.
    Cas(bool),
}

/// The register model. The state is the value (`None` = nil).
#[derive(Debug, Clone, Copy, Default)]
pub struct Register;

impl Model for Register {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
        next: &mut Vec<Option<i64>>,
    ) {
        match (input, output) {
            (RegisterInput::Read, None) => next.push(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(v))) if v == state => next.push(*state),
            (RegisterInput::Write(v), None | Some(RegisterOutput::Write)) => next.push(Some(*v)),
            (RegisterInput::Cas { from, to }, out) => {
                let matches = *state == Some(*from);
                match out {
                    None => next.push(if matches { Some(*to) } else { *state }),
                    Some(RegisterOutput::Cas(true)) if matches => next.push(Some(*to)),
                    Some(RegisterOutput::Cas(false)) if !matches => next.push(*state),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn never_changes_state(&self, input: &RegisterInput, output: &RegisterOutput) -> bool {
        matches!(
            (input, output),
            (RegisterInput::Read, _) | (RegisterInput::Cas { .. }, RegisterOutput::Cas(false))
        )
    }

    fn certain_violation(
        &self,
        history: &[crate::Operation<RegisterInput, RegisterOutput>],
    ) -> Option<(usize, String)> {
        // Nothing writes nil, so a nil read after a completed write is certain.
        initial_value::find(
            history,
            |op| match (&op.input, &op.output) {
                (RegisterInput::Write(_), Some(RegisterOutput::Write))
                | (RegisterInput::Cas { .. }, Some(RegisterOutput::Cas(true))) => {
                    Role::ChangedFromInitial("register")
                }
                (RegisterInput::Read, Some(RegisterOutput::Read(None))) => {
                    Role::ReadInitial("register")
                }
                _ => Role::Other,
            },
            |_| false,
        )
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        let inp = match input {
            RegisterInput::Read => "read".to_string(),
            RegisterInput::Write(v) => format!("write({v})"),
            RegisterInput::Cas { from, to } => format!("cas({from}, {to})"),
        };
        let out = match output {
            None => "?".to_string(),
            Some(RegisterOutput::Read(v)) => show(*v),
            Some(RegisterOutput::Write) => "ok".to_string(),
            Some(RegisterOutput::Cas(ok)) => if *ok { "ok" } else { "fail" }.to_string(),
        };
        format!("{inp} -> {out}")
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        show(*state)
    }
}

fn show(v: Option<i64>) -> String {
    v.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, Operation, Verdict};

    fn steps(s: Option<i64>, i: RegisterInput, o: Option<RegisterOutput>) -> Vec<Option<i64>> {
        let mut v = Vec::new();
        Register.step(&s, &i, o.as_ref(), &mut v);
        v
    }

    #[test]
    fn semantics() {
        use RegisterInput::*;
        use RegisterOutput as O;
        assert_eq!(steps(None, Read, Some(O::Read(None))), vec![None]);
        assert!(steps(Some(1), Read, Some(O::Read(None))).is_empty());
        assert_eq!(steps(None, Write(3), None), vec![Some(3)]);
        assert_eq!(
            steps(Some(1), Cas { from: 1, to: 2 }, Some(O::Cas(true))),
            vec![Some(2)]
        );
        assert!(steps(Some(1), Cas { from: 2, to: 3 }, Some(O::Cas(true))).is_empty());
        assert_eq!(
            steps(Some(1), Cas { from: 2, to: 3 }, Some(O::Cas(false))),
            vec![Some(1)]
        );
        assert_eq!(steps(Some(1), Cas { from: 2, to: 3 }, None), vec![Some(1)]);
        assert_eq!(steps(Some(2), Cas { from: 2, to: 3 }, None), vec![Some(3)]);
    }

    #[test]
    fn stale_read_is_detected() {
        use RegisterInput::*;
        let h = vec![
            Operation::new(0, 0, 1, Write(1), RegisterOutput::Write),
            Operation::new(1, 2, 3, Read, RegisterOutput::Read(None)),
        ];
        let r = check(&Register, &h);
        assert_eq!(r.result.verdict(), Verdict::NotLinearizable);
        let h = vec![
            Operation::new(0, 0, 3, Write(1), RegisterOutput::Write),
            Operation::new(1, 1, 2, Read, RegisterOutput::Read(None)),
        ];
        assert_eq!(check(&Register, &h).result.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_may_or_may_not_happen() {
        use RegisterInput::*;
        let h = vec![
            Operation::unknown(0, 0, 1, Write(1)),
            Operation::new(1, 2, 3, Read, RegisterOutput::Read(None)),
            Operation::new(1, 4, 5, Read, RegisterOutput::Read(Some(1))),
        ];
        assert_eq!(check(&Register, &h).result.verdict(), Verdict::Linearizable);
        let h = vec![
            Operation::unknown(0, 0, 1, Write(1)),
            Operation::new(1, 2, 3, Read, RegisterOutput::Read(Some(1))),
            Operation::new(1, 4, 5, Read, RegisterOutput::Read(None)),
        ];
        assert_eq!(
            check(&Register, &h).result.verdict(),
            Verdict::NotLinearizable
        );
    }
}
