//! The one error enum of `pysk-passwd`.
//!
//! Problems with one home directory are reported and counted instead (the
//! account files are already written by then); these variants end the run.

use std::fmt;
use std::io;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-passwd` run.
#[derive(Debug)]
pub enum PasswdError {
    /// A shared mechanism failed (switches, atomic write).
    Common(pysk_common::Error),
    /// An account file, `/etc/shells` or the user database could not be
    /// read.
    Input {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be written.
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The user database is not a valid version 1 document.
    Database {
        /// Where it came from (a path, or `stdin`).
        source: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The user database broke the rules; each problem was reported on
    /// stderr before this ends the run, and nothing was written.
    Rejected {
        /// Where it came from.
        source: String,
        /// How many problems were found.
        problems: usize,
    },
    /// The database would remove too many managed accounts at once.
    Refused {
        /// Where it came from.
        source: String,
        /// Managed accounts it would remove.
        removed: usize,
        /// Managed accounts there are now.
        managed: usize,
    },
    /// Another program holds the account files' lock.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, when known.
        holder: String,
    },
    /// A switch or option has a value that cannot be used.
    Setting {
        /// The switch or option.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing to standard output failed (a closed pipe ends quietly).
    Stdout(io::Error),
}

impl fmt::Display for PasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswdError::Common(e) => e.fmt(f),
            PasswdError::Input { path, source } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            PasswdError::Output { path, source } => {
                write!(f, "{}: cannot write: {source}", path.display())
            }
            PasswdError::Database { source, reason } => write!(f, "{source}: {reason}"),
            PasswdError::Rejected { source, problems } => write!(
                f,
                "{source}: rejected, {problems} problem{} (listed above); nothing written",
                if *problems == 1 { "" } else { "s" }
            ),
            PasswdError::Refused {
                source,
                removed,
                managed,
            } => write!(
                f,
                "{source}: would remove {removed} of the {managed} managed accounts; \
                 refused, nothing written (--force to accept)"
            ),
            PasswdError::Locked { path, holder } => write!(
                f,
                "{}: held by {holder}; nothing written, try again later",
                path.display()
            ),
            PasswdError::Setting { name, reason } => write!(f, "{name}: {reason}"),
            PasswdError::Stdout(e) => write!(f, "stdout: {e}"),
        }
    }
}

impl std::error::Error for PasswdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PasswdError::Common(e) => Some(e),
            PasswdError::Input { source, .. } | PasswdError::Output { source, .. } => Some(source),
            PasswdError::Stdout(e) => Some(e),
            _ => None,
        }
    }
}

impl ToolError for PasswdError {
    fn exit_code(&self) -> u8 {
        match self {
            PasswdError::Common(e) => e.exit_code(),
            PasswdError::Input { source, .. } => exit::read_failure(source),
            PasswdError::Output { source, .. } => exit::write_failure(source),
            PasswdError::Database { .. }
            | PasswdError::Rejected { .. }
            | PasswdError::Refused { .. } => exit::DATAERR,
            PasswdError::Locked { .. } => exit::TEMPFAIL,
            PasswdError::Setting { .. } => exit::CONFIG,
            PasswdError::Stdout(_) => exit::IOERR,
        }
    }
}

pysk_common::tool_error_basics!(PasswdError);
