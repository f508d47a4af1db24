//! The one error enum of `pysk-ssl`: what every tool can meet is a
//! [`pysk_common::Error`] in [`SslError::Common`]; the rest is this
//! tool's own.

use std::fmt;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-ssl` run.
#[derive(Debug)]
pub enum SslError {
    /// A failure every tool can meet: reading or writing a file, stdout, a
    /// bad setting, a CA file, a held lock, an internal fault.
    Common(pysk_common::Error),
    /// A file given to the tool is not what it must be (a certificate or a
    /// key that does not parse, a file too large); nothing was changed.
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// A line of an endpoint list or of the inventory's `ssl=` setting
    /// is not what `served` can probe; nothing was probed.
    List {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A file would be replaced that must not be without being asked
    /// (a pending key); nothing was changed.
    Exists {
        /// The file.
        path: PathBuf,
        /// Why it is kept, and how to go on.
        reason: String,
    },
    /// The install gate refused the certificate; nothing was changed.
    Refused {
        /// The name being installed.
        name: String,
        /// The check that failed: `key`, `chain`, `expiry`, `names`.
        check: &'static str,
        /// Why.
        reason: String,
    },
    /// The ACME CA could not be reached or refused a step; nothing was
    /// installed.
    Acme {
        /// The step: `new order`, `validation`, …
        step: &'static str,
        /// Why (the CA's problem document, or the connection's error).
        reason: String,
    },
    /// The reload command could not run or failed (the reason says
    /// whether the files are in place).
    Reload {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for SslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SslError::Common(e) => e.fmt(f),
            SslError::Input { path, reason } => write!(f, "{}: {reason}", path.display()),
            SslError::Exists { path, reason } => write!(f, "{}: {reason}", path.display()),
            SslError::List { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
            SslError::Refused {
                name,
                check,
                reason,
            } => write!(
                f,
                "{name}: refused by the {check} check: {reason}; nothing changed"
            ),
            SslError::Acme { step, reason } => {
                write!(f, "ACME {step}: {reason}; nothing installed")
            }
            SslError::Reload { command, reason } => {
                write!(f, "ssl_reload_command \"{command}\": {reason}")
            }
        }
    }
}

impl std::error::Error for SslError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SslError::Common(e) => Some(e),
            _ => None,
        }
    }
}

impl ToolError for SslError {
    fn exit_code(&self) -> u8 {
        match self {
            SslError::Common(e) => e.exit_code(),
            SslError::Input { .. } | SslError::List { .. } | SslError::Refused { .. } => {
                exit::DATAERR
            }
            SslError::Acme { .. } | SslError::Reload { .. } => exit::UNAVAILABLE,
            SslError::Exists { .. } => exit::CANTCREAT,
        }
    }
}

pysk_common::tool_error_basics!(SslError);
