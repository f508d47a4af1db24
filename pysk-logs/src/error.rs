//! The one error enum of `pysk-logs`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-logs` run (problems with single lines or
/// single files are reported and counted instead, see `split`).
#[derive(Debug)]
pub enum LogsError {
    /// A shared mechanism failed (switches, lock, atomic write).
    Common(pysk_common::Error),
    /// An input file could not be opened or read.
    Input {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An output file or directory could not be written.
    Output {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing to standard output failed (a closed pipe ends quietly).
    Stdout(io::Error),
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
    /// A server (IMAP, …) could not be reached or refused us.
    Service {
        /// `host:port`.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// A switch or option has a value that cannot be used.
    Setting {
        /// The switch or option.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for LogsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogsError::Common(e) => e.fmt(f),
            LogsError::Input { path, source } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            LogsError::Output { path, source } => {
                write!(f, "{}: cannot write: {source}", path.display())
            }
            LogsError::Stdout(e) => write!(f, "stdout: {e}"),
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
            LogsError::Setting { name, reason } => write!(f, "{name}: {reason}"),
            LogsError::Service { host, reason } => write!(f, "{host}: {reason}"),
        }
    }
}

impl std::error::Error for LogsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogsError::Common(e) => Some(e),
            LogsError::Input { source, .. } | LogsError::Output { source, .. } => Some(source),
            LogsError::Stdout(e) => Some(e),
            _ => None,
        }
    }
}

impl ToolError for LogsError {
    fn exit_code(&self) -> u8 {
        match self {
            LogsError::Common(e) => e.exit_code(),
            LogsError::Input { source, .. } => exit::read_failure(source),
            LogsError::Output { source, .. } => exit::write_failure(source),
            LogsError::Stdout(_) | LogsError::Manifest { .. } => exit::IOERR,
            LogsError::Vhosts { .. } => exit::DATAERR,
            LogsError::Setting { .. } => exit::CONFIG,
            LogsError::Service { .. } => exit::UNAVAILABLE,
        }
    }
}

pysk_common::tool_error_basics!(LogsError);
