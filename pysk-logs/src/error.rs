//! The one error enum of `pysk-logs`: what every tool shares is
//! [`pysk_common::Error`] (reading, writing, stdout, a bad setting, a lock
//! held, an internal fault); the variants here are this tool's own.

use std::fmt;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-logs` run (problems with single lines or
/// single files are reported and counted instead, see `split`).
#[derive(Debug)]
pub enum LogsError {
    /// A shared mechanism failed, or a failure every tool can meet.
    Common(pysk_common::Error),
    /// A `--vhosts` list has a line that is not a host name.
    Vhosts {
        /// The list (`-` for stdin).
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// A batch manifest in the spool's `tmp/` cannot be read back.
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A server (IMAP, DNS) could not be reached, refused us, or broke
    /// its protocol.
    Service {
        /// `host:port`, or the resolver's configuration.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The system's resolver configuration cannot be used (`resolve`
    /// without `--nameserver`).
    ResolvConf {
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for LogsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogsError::Common(e) => e.fmt(f),
            LogsError::Vhosts { path, line, text } => write!(
                f,
                "{}:{line}: {text:?} is not a virtual host name",
                path.display()
            ),
            LogsError::Manifest { path, reason } => write!(
                f,
                "{}: unreadable batch manifest ({reason}); move it away to start over, \
                 after checking the inbox",
                path.display()
            ),
            LogsError::Service { host, reason } => write!(f, "{host}: {reason}"),
            LogsError::ResolvConf { reason } => write!(f, "/etc/resolv.conf: {reason}"),
        }
    }
}

impl std::error::Error for LogsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogsError::Common(e) => Some(e),
            _ => None,
        }
    }
}

impl ToolError for LogsError {
    fn exit_code(&self) -> u8 {
        match self {
            LogsError::Common(e) => e.exit_code(),
            LogsError::Manifest { .. } => exit::IOERR,
            LogsError::Vhosts { .. } => exit::DATAERR,
            LogsError::Service { .. } => exit::UNAVAILABLE,
            LogsError::ResolvConf { .. } => exit::CONFIG,
        }
    }
}

pysk_common::tool_error_basics!(LogsError);
