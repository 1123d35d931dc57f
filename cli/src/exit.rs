//! How `hookline` ends: one exit code per kind of outcome, so a script can tell a usage mistake
//! from a failure, and a bulk command that did most of its work from one that did none.
//!
//! This module keeps the codes ([`Exit`]), the text `--help` shows about them ([`EXIT_CODES`]),
//! and the error a command returns when its arguments are wrong in a way the grammar cannot
//! catch ([`usage`]), which exits 2 like clap's own usage errors.

use std::process::ExitCode;

/// What a command came to. Each is one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: it did what was asked.
    Ok,
    /// 1: it failed (an AWS call failed, a non-2xx answer, a named item is not there or could
    /// not be handled).
    Failure,
    /// 2: the command line is wrong (clap's usage errors exit 2 too).
    Usage,
    /// 3: a bulk command (`followups retry --all-failed`, `dlq redrive --all`, `events replay
    /// --status`) ran, but refused or could not handle some of its items; they are reported.
    Refused,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::Refused => 3,
        }
    }

    /// [`Exit::Ok`] when `ok`, else `otherwise`.
    pub const fn ok_or(ok: bool, otherwise: Self) -> Self {
        if ok { Self::Ok } else { otherwise }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// The exit codes, as `hookline --help` ends.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  failure (an AWS call failed, a non-2xx answer, a named item missing or not handled)
  2  usage (the command line is wrong)
  3  some items refused: a bulk command (followups retry --all-failed, dlq redrive --all,
     events replay --status) ran but left some items, each reported";

/// A command-line mistake found after parsing (e.g. `--entity` without a `/`): exits 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The error for a command-line mistake found after parsing: `hookline` exits 2 with it.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The exit code for an error a command returned: 2 for a [`UsageError`], else 1.
pub fn of_error(err: &anyhow::Error) -> Exit {
    if err.downcast_ref::<UsageError>().is_some() {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let all = [Exit::Ok, Exit::Failure, Exit::Usage, Exit::Refused];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i);
            assert!(EXIT_CODES.contains(&format!("  {}  ", e.code())), "{e:?}");
        }
        assert_eq!(of_error(&usage("bad")), Exit::Usage);
        assert_eq!(of_error(&anyhow::anyhow!("boom")), Exit::Failure);
        assert_eq!(
            of_error(&usage("bad").context("while parsing")),
            Exit::Usage
        );
        assert_eq!(Exit::ok_or(false, Exit::Refused), Exit::Refused);
        assert_eq!(Exit::ok_or(true, Exit::Refused), Exit::Ok);
    }
}
