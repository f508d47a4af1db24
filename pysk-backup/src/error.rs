//! The one error enum of `pysk-backup`: what every tool can meet is a
//! [`pysk_common::Error`] in [`BackupError::Common`]; the rest is this
//! tool's own.

use std::fmt;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-backup` run.
#[derive(Debug)]
pub enum BackupError {
    /// A failure every tool can meet: reading or writing a file, stdout, a
    /// bad setting, a held lock, an internal fault.
    Common(pysk_common::Error),
    /// A database name that is not one of the server's, or an option that
    /// names nothing there; nothing changed.
    Name(String),
    /// A step of the job failed (a dump, its check, the backup, a restore
    /// drill); what it was and why. The last good dump set and backup are
    /// kept.
    Failed {
        /// The step, in words ("the dump of shop").
        step: String,
        /// Why, with the program's own words where there are some.
        reason: String,
    },
    /// The backup itself is damaged, missing or unreadable.
    Damaged(String),
    /// The engine's repository is locked by another program that is still
    /// running; nothing changed, try again later.
    Busy(String),
    /// The passphrase does not open the backup (a wrong passphrase file).
    Denied(String),
    /// A server or program needed cannot be reached or run.
    Unavailable {
        /// The server (by its socket) or the program.
        what: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Common(e) => e.fmt(f),
            BackupError::Name(why) => write!(f, "{why}; nothing changed"),
            BackupError::Failed { step, reason } => write!(f, "{step} failed: {reason}"),
            BackupError::Damaged(why) => write!(f, "the backup is damaged: {why}"),
            BackupError::Busy(why) => {
                write!(f, "the backup target is locked by another program: {why}")
            }
            BackupError::Denied(why) => write!(
                f,
                "the passphrase of backup_passphrase_file does not open the backup: {why}"
            ),
            BackupError::Unavailable { what, reason } => write!(f, "{what}: {reason}"),
        }
    }
}

impl std::error::Error for BackupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackupError::Common(e) => Some(e),
            BackupError::Name(_)
            | BackupError::Failed { .. }
            | BackupError::Damaged(_)
            | BackupError::Busy(_)
            | BackupError::Denied(_)
            | BackupError::Unavailable { .. } => None,
        }
    }
}

impl ToolError for BackupError {
    fn exit_code(&self) -> u8 {
        match self {
            BackupError::Common(e) => e.exit_code(),
            BackupError::Name(_) => exit::DATAERR,
            BackupError::Failed { .. } | BackupError::Damaged(_) => exit::PARTIAL,
            BackupError::Busy(_) => exit::TEMPFAIL,
            BackupError::Denied(_) => exit::NOPERM,
            BackupError::Unavailable { .. } => exit::UNAVAILABLE,
        }
    }
}

pysk_common::tool_error_basics!(BackupError);
