//! The rule image names (and kernel references) follow, and why a name
//! breaks it: below both the name type and the error type that reports it.

use std::fmt;

/// Longest image name, in bytes (all accepted characters are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong,
    BadFirst,
    BadChar(char),
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("it is empty"),
            NameProblem::TooLong => write!(f, "it is longer than {MAX_NAME_LEN} characters"),
            NameProblem::BadFirst => f.write_str("it must start with a-z or 0-9"),
            NameProblem::BadChar(c) => {
                write!(f, "{c:?} is not allowed; use a-z, 0-9, '.', '_' and '-'")
            }
        }
    }
}

/// The name rule alone, for names of other things that follow it (kernel
/// references).
pub(crate) fn check(name: &str) -> Result<(), NameProblem> {
    let mut chars = name.chars();
    let first = chars.next().ok_or(NameProblem::Empty)?;
    if !matches!(first, 'a'..='z' | '0'..='9') {
        return Err(NameProblem::BadFirst);
    }
    if let Some(c) = chars.find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')) {
        return Err(NameProblem::BadChar(c));
    }
    // Checked last: every accepted char is one byte, so len() counts chars.
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong);
    }
    Ok(())
}
