//! The error enum for everything `pysk-common` does.
//!
//! Every variant names the file (and line, where there is one) and the
//! cause, so the message a tool prints tells the admin where to look. Tools
//! wrap it in their own error enum and keep its exit code.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::exit::{self, ToolError};

/// A failure in one of the shared mechanisms.
#[derive(Debug)]
pub enum Error {
    /// A configuration file has a line outside the accepted syntax, or a
    /// value of the wrong type.
    Config {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of the inventory is malformed or repeats a name.
    Inventory {
        /// The inventory file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a file failed.
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing or replacing a file failed; the old version is untouched.
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Another run holds the lock.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long we waited, in seconds (0: not at all).
        waited: u64,
    },
    /// A secret file may be read by others than its owner.
    SecretExposed {
        /// The secret file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret was to come from an environment variable that is not set
    /// or not valid UTF-8.
    SecretEnv {
        /// The variable's name.
        var: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { path, line, reason } | Error::Inventory { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
            Error::Read { path, source } => write!(f, "{}: cannot read: {source}", path.display()),
            Error::Write { path, source } => {
                write!(f, "{}: cannot write: {source}", path.display())
            }
            Error::Locked { path, waited: 0 } => write!(
                f,
                "{}: another run holds the lock; try again later or use --wait",
                path.display()
            ),
            Error::Locked { path, waited } => write!(
                f,
                "{}: another run still held the lock after {waited} s",
                path.display()
            ),
            Error::SecretExposed { path, mode } => write!(
                f,
                "{}: secret file is readable by group or others (mode {:04o}); run chmod 600 on it",
                path.display(),
                mode & 0o7777
            ),
            Error::SecretEnv { var } => {
                write!(f, "{var}: environment variable is not set or not UTF-8")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } | Error::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ToolError for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Inventory { .. } | Error::SecretEnv { .. } => {
                exit::CONFIG
            }
            Error::Read { source, .. } => exit::read_failure(source),
            Error::Write { source, .. } => exit::write_failure(source),
            Error::Locked { .. } => exit::TEMPFAIL,
            Error::SecretExposed { .. } => exit::NOPERM,
        }
    }
}
