//! The one error enum of `pysk-dns`.
//!
//! Problems with one server (unreachable, a rejected document) or one zone
//! (a conflict, a failed validation) are reported and counted instead, so
//! that the other servers and zones still get done; these variants end the
//! whole run. What every tool can meet (reading, writing, a bad setting, a
//! lock, an internal fault) is `pysk_common::Error`, kept in `Common`.

use std::fmt;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-dns` run.
#[derive(Debug)]
pub enum DnsError {
    /// A shared mechanism failed (settings, inventory, lock, reading or
    /// writing a file, the CA file, stdout).
    Common(pysk_common::Error),
    /// A state file pysk-dns wrote itself no longer parses.
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `pysk-dns serial` was asked about a zone with no recorded serial.
    NoSerial {
        /// The zone.
        zone: String,
        /// The serial state file.
        path: PathBuf,
    },
    /// The reload command could not be started or failed.
    Reload {
        /// The command line.
        command: String,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Common(e) => e.fmt(f),
            DnsError::State { path, reason } => write!(
                f,
                "{}: damaged state file ({reason}); move it away to start over",
                path.display()
            ),
            DnsError::NoSerial { zone, path } => {
                write!(f, "{zone}: no serial recorded in {}", path.display())
            }
            DnsError::Reload { command, reason } => write!(f, "{command}: {reason}"),
        }
    }
}

impl std::error::Error for DnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DnsError::Common(e) => Some(e),
            _ => None,
        }
    }
}

impl ToolError for DnsError {
    fn exit_code(&self) -> u8 {
        match self {
            DnsError::Common(e) => e.exit_code(),
            DnsError::State { .. } => exit::DATAERR,
            DnsError::NoSerial { .. } => exit::NOINPUT,
            DnsError::Reload { .. } => exit::UNAVAILABLE,
        }
    }
}

pysk_common::tool_error_basics!(DnsError);
