//! The one error enum of `pysk-hv`: what every tool can meet is a
//! [`pysk_common::Error`] in [`HvError::Common`]; the rest is this tool's
//! own. A host that fails is no error of the run: it is a class in the
//! summary, and the run exits 1.

use std::fmt;
use std::path::PathBuf;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-hv` run before any host is contacted.
#[derive(Debug)]
pub enum HvError {
    /// A failure every tool can meet: reading or writing a file, stdout, a
    /// bad setting or option, a malformed inventory, an internal fault.
    Common(pysk_common::Error),
    /// A command line that names no hosts, or a `copy` source that is
    /// no regular file.
    Usage(String),
    /// Names or groups the inventory does not have (`-w`, `-x`, `-g`).
    Targets(String),
    /// ssh could not be started at all (missing, not executable; a host
    /// whose ssh fails to start for want of a resource is that host's
    /// failure, not this).
    Ssh(String),
    /// A package name `install` will not send to a host.
    Package(String),
    /// `create`: a NAME whose disk, root or unit is there already.
    Exists(String),
    /// `create`: a step that failed (the steps before it undone).
    Step(String),
    /// `create` run by another user than root.
    NotRoot(String),
    /// The last run's results (`--rerun`) cannot be read as such.
    LastRun {
        /// The file, `last-run.json` in the state directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for HvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvError::Common(e) => e.fmt(f),
            HvError::Usage(why)
            | HvError::Targets(why)
            | HvError::Ssh(why)
            | HvError::Package(why)
            | HvError::Exists(why)
            | HvError::Step(why)
            | HvError::NotRoot(why) => f.write_str(why),
            HvError::LastRun { path, reason } => {
                write!(f, "{}: not the results of a run: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for HvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HvError::Common(e) => Some(e),
            HvError::Usage(_)
            | HvError::Targets(_)
            | HvError::Ssh(_)
            | HvError::Package(_)
            | HvError::Exists(_)
            | HvError::Step(_)
            | HvError::NotRoot(_)
            | HvError::LastRun { .. } => None,
        }
    }
}

impl ToolError for HvError {
    fn exit_code(&self) -> u8 {
        match self {
            HvError::Common(e) => e.exit_code(),
            HvError::Usage(_) => exit::USAGE,
            HvError::Targets(_) | HvError::Package(_) | HvError::LastRun { .. } => exit::DATAERR,
            HvError::Ssh(_) => exit::UNAVAILABLE,
            HvError::Exists(_) => exit::DATAERR,
            HvError::Step(_) => exit::CANTCREAT,
            HvError::NotRoot(_) => exit::NOPERM,
        }
    }
}

pysk_common::tool_error_basics!(HvError);
