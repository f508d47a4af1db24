//! The error enum for everything `pysk-common` does, and for what every
//! tool's errors have alike.
//!
//! Every variant names the file (and line, where there is one), the option
//! or the switch, and the cause, so the message a tool prints tells the
//! admin where to look. Tools wrap it in their own error enum (its `Common`
//! variant), which holds only what is the tool's own, and keep its exit
//! code. An error that two tools would both need belongs here, so that it
//! is worded the same everywhere by construction.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::{self, ToolError};

/// Where a setting's value came from, for the message that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line option, such as `--memory`.
    Option(String),
    /// A line of a switches file.
    Switch {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// The built-in default written in the tool's switch list.
    Default,
}

/// A failure in one of the shared mechanisms, or one that every tool can
/// meet (reading, writing, a bad setting).
#[derive(Debug)]
pub enum Error {
    /// A configuration file has a line outside the accepted syntax.
    Config {
        /// The file.
        path: PathBuf,
        /// The 1-based line number (0: the file as a whole).
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
    /// A setting (an option, a switch or a built-in default) has a value
    /// that cannot be used.
    Setting {
        /// The switch key, or the option for options without a switch.
        key: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate file given to be trusted holds no usable certificate.
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a file or directory failed.
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing, creating or removing a file or directory failed; a file
    /// being replaced keeps its old version.
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing to standard output failed (a closed pipe ends quietly, see
    /// [`exit::run`]).
    Stdout(io::Error),
    /// Another run, or another program, holds the lock.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long we waited (zero: not at all).
        waited: Duration,
        /// Who holds it, when known (`process 1234`).
        holder: Option<String>,
    },
    /// A secret file may be read by others than its owner.
    SecretExposed {
        /// The secret file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A fault inside the tool, not in its input: a bug to report.
    Internal(String),
}

/// The cause of an I/O error as a person reads it: the system's message
/// without Rust's `(os error N)` suffix.
pub fn cause(err: &io::Error) -> String {
    let text = err.to_string();
    match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_owned(),
        _ => text,
    }
}

/// Shorthand for `map_err`: an I/O error on `path` while reading it.
pub fn read_err(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
    let path = path.as_ref().to_owned();
    move |source| Error::Read { path, source }
}

/// Shorthand for `map_err`: an I/O error on `path` while writing it.
pub fn write_err(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
    let path = path.as_ref().to_owned();
    move |source| Error::Write { path, source }
}

impl Error {
    /// A bad value of a command-line option that has no switch, such as
    /// `--vhost`: reported as `--vhost: <reason>`, exit 2.
    pub fn option(option: &str, reason: impl Into<String>) -> Error {
        Error::Setting {
            key: option.to_owned(),
            origin: Origin::Option(option.to_owned()),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Line 0: the file as a whole (its name or kind, not a line).
            Error::Config {
                path,
                line: 0,
                reason,
            } => write!(f, "{}: {reason}", path.display()),
            Error::Config { path, line, reason } | Error::Inventory { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
            Error::Setting {
                key,
                origin,
                reason,
            } => match origin {
                Origin::Option(option) => write!(f, "{option}: {reason}"),
                Origin::Switch { path, line } => {
                    write!(f, "{}:{line}: {key}: {reason}", path.display())
                }
                Origin::Default => write!(f, "{key} (built-in default): {reason}"),
            },
            Error::CaFile { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Read { path, source } => {
                write!(f, "{}: cannot read: {}", path.display(), cause(source))
            }
            Error::Write { path, source } => {
                write!(f, "{}: cannot write: {}", path.display(), cause(source))
            }
            Error::Stdout(source) => write!(f, "stdout: {}", cause(source)),
            Error::Locked {
                path,
                waited,
                holder,
            } => {
                let path = path.display();
                let waited = waited.as_secs_f64();
                match (holder, waited > 0.0) {
                    (None, false) => write!(
                        f,
                        "{path}: another run holds the lock; try again later or use --wait"
                    ),
                    (None, true) => {
                        write!(
                            f,
                            "{path}: another run still held the lock after {waited} s"
                        )
                    }
                    (Some(who), false) => write!(
                        f,
                        "{path}: held by {who}; nothing written, try again later or use --wait"
                    ),
                    (Some(who), true) => write!(
                        f,
                        "{path}: still held by {who} after {waited} s; nothing written"
                    ),
                }
            }
            Error::SecretExposed { path, mode } => write!(
                f,
                "{}: secret file is readable by group or others (mode {:04o}); run chmod 600 on it",
                path.display(),
                mode & 0o7777
            ),
            Error::Internal(what) => write!(f, "internal error, please report it: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } | Error::Write { source, .. } | Error::Stdout(source) => {
                Some(source)
            }
            _ => None,
        }
    }
}

impl ToolError for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Setting {
                origin: Origin::Option(_),
                ..
            } => exit::USAGE,
            Error::Config { .. }
            | Error::Inventory { .. }
            | Error::Setting { .. }
            | Error::CaFile { .. } => exit::CONFIG,
            Error::Read { source, .. } => exit::read_failure(source),
            Error::Write { source, .. } => exit::write_failure(source),
            Error::Stdout(_) => exit::IOERR,
            Error::Locked { .. } => exit::TEMPFAIL,
            Error::SecretExposed { .. } => exit::NOPERM,
            Error::Internal(_) => exit::SOFTWARE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_causes_read_without_the_os_error_suffix() {
        let err = Error::Read {
            path: PathBuf::from("/var/spool/x"),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            err.to_string(),
            "/var/spool/x: cannot read: No such file or directory"
        );
        assert_eq!(err.exit_code(), exit::NOINPUT);
        let custom = io::Error::other("not a gzip stream (os error 7)");
        assert_eq!(cause(&custom), "not a gzip stream (os error 7)");
    }

    #[test]
    fn each_origin_of_a_setting_is_named_its_own_way() {
        let reason = "\"12\": at least 1M is needed".to_owned();
        let option = Error::Setting {
            key: "logs_memory".into(),
            origin: Origin::Option("--memory".into()),
            reason: reason.clone(),
        };
        assert_eq!(
            option.to_string(),
            "--memory: \"12\": at least 1M is needed"
        );
        assert_eq!(option.exit_code(), exit::USAGE);
        let switch = Error::Setting {
            key: "logs_memory".into(),
            origin: Origin::Switch {
                path: PathBuf::from("/etc/pysk/serverconfig/default"),
                line: 3,
            },
            reason: reason.clone(),
        };
        assert_eq!(
            switch.to_string(),
            "/etc/pysk/serverconfig/default:3: logs_memory: \"12\": at least 1M is needed"
        );
        assert_eq!(switch.exit_code(), exit::CONFIG);
        let default = Error::Setting {
            key: "logs_memory".into(),
            origin: Origin::Default,
            reason,
        };
        assert_eq!(
            default.to_string(),
            "logs_memory (built-in default): \"12\": at least 1M is needed"
        );
        assert_eq!(Error::option("--vhost", "x").to_string(), "--vhost: x");
    }

    #[test]
    fn a_lock_waited_for_says_how_long_even_under_a_second() {
        let locked = |ms, holder: Option<&str>| Error::Locked {
            path: PathBuf::from("/run/pysk/x.lock"),
            waited: Duration::from_millis(ms),
            holder: holder.map(str::to_owned),
        };
        assert_eq!(
            locked(0, None).to_string(),
            "/run/pysk/x.lock: another run holds the lock; try again later or use --wait"
        );
        assert_eq!(
            locked(500, None).to_string(),
            "/run/pysk/x.lock: another run still held the lock after 0.5 s"
        );
        assert_eq!(
            locked(0, Some("process 42")).to_string(),
            "/run/pysk/x.lock: held by process 42; nothing written, try again later or use --wait"
        );
        assert_eq!(
            locked(500, Some("process 42")).to_string(),
            "/run/pysk/x.lock: still held by process 42 after 0.5 s; nothing written"
        );
    }
}
