//! The one error enum of `pysk-db`: what every tool can meet is a
//! [`pysk_common::Error`] in [`DbError::Common`]; the rest is this tool's
//! own.

use std::fmt;

use pysk_common::exit::{self, ToolError};

/// A failure that ends a `pysk-db` run.
#[derive(Debug)]
pub enum DbError {
    /// A failure every tool can meet: reading or writing a file, stdout, a
    /// bad setting, a held lock, an internal fault.
    Common(pysk_common::Error),
    /// A database or account name that the name rule refuses; refused
    /// before any connection, nothing changed.
    Name(String),
    /// What is there conflicts with what was asked (a database owned by
    /// someone else); nothing changed.
    Conflict(String),
    /// A statement the server refused.
    Server {
        /// The server, by its socket.
        server: String,
        /// The server's message and code.
        reason: String,
    },
    /// The run lacks a permission it needs (PostgreSQL: run as root or as
    /// the superuser's account); nothing changed.
    NotPermitted(String),
    /// A server that cannot be reached, or refused the connection.
    Unreachable {
        /// The server, by its socket.
        server: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Common(e) => e.fmt(f),
            DbError::Name(why) | DbError::Conflict(why) | DbError::NotPermitted(why) => {
                write!(f, "{why}; nothing changed")
            }
            DbError::Unreachable { server, reason } | DbError::Server { server, reason } => {
                write!(f, "{server}: {reason}")
            }
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Common(e) => Some(e),
            DbError::Name(_)
            | DbError::Conflict(_)
            | DbError::NotPermitted(_)
            | DbError::Unreachable { .. }
            | DbError::Server { .. } => None,
        }
    }
}

impl ToolError for DbError {
    fn exit_code(&self) -> u8 {
        match self {
            DbError::Common(e) => e.exit_code(),
            DbError::Name(_) | DbError::Conflict(_) => exit::DATAERR,
            DbError::NotPermitted(_) => exit::NOPERM,
            DbError::Unreachable { .. } | DbError::Server { .. } => exit::UNAVAILABLE,
        }
    }
}

pysk_common::tool_error_basics!(DbError);
