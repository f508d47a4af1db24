//! The connection to MariaDB as root. A stock Debian server lets root in
//! through its Unix socket by `unix_socket` authentication (the server
//! compares the client's uid with the account's name), so there is no
//! password to read, store or leak. The client is synchronous and starts
//! no thread.

use std::path::PathBuf;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

use pysk_common::report::Reporter;

use crate::error::DbError;
use crate::plan::Step;

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's Unix socket (`db_mysql_socket`).
    pub socket: PathBuf,
}

impl Target {
    /// The server as errors name it: its socket.
    pub fn name(&self) -> String {
        self.socket.display().to_string()
    }

    /// A statement the server refused, with the statement as shown (a
    /// secret as `***`) when there is one.
    pub fn refused(&self, shown: Option<&str>, e: &mysql::Error) -> DbError {
        DbError::Server {
            server: self.name(),
            reason: match shown {
                Some(sql) => format!("{sql}: {}", why(e)),
                None => why(e),
            },
        }
    }
}

/// A session as root, over the socket only (never TCP).
pub fn connect(target: &Target) -> Result<Conn, DbError> {
    let opts = OptsBuilder::new()
        .socket(Some(target.socket.to_string_lossy()))
        .user(Some("root"))
        .prefer_socket(true);
    Conn::new(opts).map_err(|e| DbError::Unreachable {
        server: target.name(),
        reason: why(&e),
    })
}

/// A client error in words: the server's message and code, else the
/// cause of a failed connection without Rust's `(os error N)`.
pub fn why(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(server) => format!("{} ({})", server.message, server.code),
        mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(Some((_, desc, _)))) => {
            match desc.rfind(" (os error ") {
                Some(at) => desc[..at].to_owned(),
                None => desc.clone(),
            }
        }
        mysql::Error::IoError(io) => pysk_common::error::cause(io),
        other => other.to_string(),
    }
}

/// Runs a plan's steps in order on `conn`, each said as it is done
/// unless `json`.
pub fn apply(
    conn: &mut Conn,
    target: &Target,
    steps: &[Step],
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    for step in steps {
        conn.query_drop(step.statement())
            .map_err(|e| target.refused(Some(&step.sql), &e))?;
        step.said(json, report);
    }
    Ok(())
}
