//! A check that found something: `stack lock --check` and `stack build --check` (the lock or the output
//! is not current), `stack outdated --exit-code` (something newer upstream) and `stack diff
//! --exit-code` (the tree changes). Commands return it as their error; the binary prints its report and
//! exits 1, where every other error exits 2 ([`crate::cli::EXIT_CODES`]).

use std::fmt;

/// A failed check, with the diagnostic to print or none when the command already printed its result
/// (JSON on stdout, a table, a diff).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckFailed {
    report: Option<String>,
}

impl CheckFailed {
    /// A failed check whose `report` is the whole diagnostic for stderr: an `error:` line, what is not
    /// current (one line each), and a `help:` line with the command that fixes it.
    pub fn with_report(report: impl Into<String>) -> CheckFailed {
        CheckFailed {
            report: Some(report.into()),
        }
    }

    /// A failed check whose result is already printed: nothing more to say, only exit 1.
    pub fn reported() -> CheckFailed {
        CheckFailed::default()
    }

    /// The diagnostic to print on stderr; `None` when the result is already printed.
    pub fn report(&self) -> Option<&str> {
        self.report.as_deref()
    }
}

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.report.as_deref().unwrap_or("a check failed"))
    }
}

impl std::error::Error for CheckFailed {}
