//! The one error enum of `pysk-passwd`: what every tool can meet is a
//! [`pysk_common::Error`] in [`PasswdError::Common`]; the rest is this
//! tool's own.
//!
//! Problems with one home directory are reported and counted instead (the
//! account files are already written by then); these variants end the run.

use std::fmt;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-passwd` run.
#[derive(Debug)]
pub enum PasswdError {
    /// A failure every tool can meet: reading or writing a file, stdout, a
    /// bad setting, a held lock (the account files' locks too), an internal
    /// fault.
    Common(pysk_common::Error),
    /// The user database is not a valid version 1 document.
    Database {
        /// Where it came from (a path, or `stdin`).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The user database broke the rules; each problem was reported on
    /// stderr before this ends the run, and nothing was written.
    Rejected {
        /// Where it came from.
        origin: String,
        /// How many problems were found.
        problems: usize,
    },
    /// The database would remove too many managed accounts at once.
    Refused {
        /// Where it came from.
        origin: String,
        /// Managed accounts it would remove.
        removed: usize,
        /// Managed accounts there are now.
        managed: usize,
    },
    /// An account file disagrees with the switches (the shared group has
    /// another gid, or its gid belongs to another group): one of the two
    /// must be corrected by hand.
    Conflict {
        /// The account file.
        path: PathBuf,
        /// What disagrees, naming the switch.
        reason: String,
    },
    /// The record of an interrupted sync cannot be carried out: it must be
    /// looked at by hand (the staged files are beside their targets).
    Intent {
        /// The intent record.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for PasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswdError::Common(e) => e.fmt(f),
            PasswdError::Database { origin, reason } => write!(f, "{origin}: {reason}"),
            PasswdError::Rejected { origin, problems } => write!(
                f,
                "{origin}: rejected, {problems} problem{} (listed above); nothing written",
                if *problems == 1 { "" } else { "s" }
            ),
            PasswdError::Refused {
                origin,
                removed,
                managed,
            } => write!(
                f,
                "{origin}: would remove {removed} of the {managed} managed accounts; \
                 refused, nothing written (--force to accept)"
            ),
            PasswdError::Conflict { path, reason } => {
                write!(f, "{}: {reason}; nothing written", path.display())
            }
            PasswdError::Intent { path, reason } => write!(
                f,
                "{}: {reason}; the interrupted sync is left as it is",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PasswdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PasswdError::Common(e) => Some(e),
            _ => None,
        }
    }
}

impl ToolError for PasswdError {
    fn exit_code(&self) -> u8 {
        match self {
            PasswdError::Common(e) => e.exit_code(),
            PasswdError::Database { .. }
            | PasswdError::Rejected { .. }
            | PasswdError::Refused { .. } => exit::DATAERR,
            PasswdError::Conflict { .. } | PasswdError::Intent { .. } => exit::CONFIG,
        }
    }
}

pysk_common::tool_error_basics!(PasswdError);
