//! The connection to MariaDB as root. A stock Debian server lets root in
//! through its Unix socket by `unix_socket` authentication (the server
//! compares the client's uid with the account's name), so there is no
//! password to read, store or leak. The client is synchronous and starts
//! no thread. A server that takes the connection but never answers (a
//! wedged start, a storm of connections) is given up on after
//! `db_connect_timeout`, so that a cron run does not hold the lock forever.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

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
    /// How long the server may take to answer the connection
    /// (`db_connect_timeout`); statements then take as long as they take.
    pub timeout: Duration,
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

/// A session as root, over the socket only (never TCP); a socket not
/// reached is named with its switch, the server's refusal as it says it.
/// The client's
/// read and write timeouts are those of the socket, for the handshake and
/// every statement alike, and it cannot change them later; so the read
/// timeout is set for the handshake (and the client's own first query)
/// and taken off the socket once the session is there, since `OPTIMIZE`
/// or `CHECK` of a large table may rightly take hours to answer. The
/// write timeout stays: the server takes a statement in at once unless
/// it is wedged.
pub fn connect(target: &Target) -> Result<Conn, DbError> {
    let opts = OptsBuilder::new()
        .socket(Some(target.socket.to_string_lossy()))
        .user(Some("root"))
        .prefer_socket(true)
        .read_timeout(Some(target.timeout))
        .write_timeout(Some(target.timeout));
    let unreachable = |e: &mysql::Error| DbError::Unreachable {
        server: target.name(),
        reason: if timed_out(e) {
            format!(
                "no answer within {} s (db_connect_timeout)",
                target.timeout.as_secs_f64()
            )
        } else if let mysql::Error::MySqlError(_) = e {
            why(e)
        } else {
            format!("{} (db_mysql_socket)", why(e))
        },
    };
    let conn = Conn::new(opts).map_err(|e| unreachable(&e))?;
    no_read_timeout(&conn).map_err(|e| unreachable(&mysql::Error::IoError(e)))?;
    Ok(conn)
}

/// Whether a client error is a socket's timeout (Linux says EAGAIN).
fn timed_out(e: &mysql::Error) -> bool {
    let io = match e {
        mysql::Error::IoError(io) => Some(io),
        mysql::Error::CodecError(codec) => std::error::Error::source(codec)
            .and_then(|cause| cause.downcast_ref::<std::io::Error>()),
        _ => None,
    };
    io.is_some_and(|io| matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

/// Takes the read timeout off the session's socket.
fn no_read_timeout(conn: &Conn) -> std::io::Result<()> {
    // SAFETY: the descriptor is the session's open socket, which `conn`
    // owns and keeps open while `conn` is borrowed here; the borrow
    // claims no ownership and ends with this function.
    let socket = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) };
    // A duplicate of our own (closed when dropped) shares the socket, and
    // with it its options.
    UnixStream::from(socket.try_clone_to_owned()?).set_read_timeout(None)
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
    undoable(conn, target, steps, &[], json, report)
}

/// [`apply`], where `undo[i]` (when there is one) takes `steps[i]` back:
/// when a statement fails, the undo steps of those done are run, latest
/// first, and the error names what they took back (or could not).
pub fn undoable(
    conn: &mut Conn,
    target: &Target,
    steps: &[Step],
    undo: &[Option<Step>],
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    let mut done = 0;
    let result = steps.iter().try_for_each(|step| {
        conn.query_drop(step.statement())
            .map_err(|e| target.refused(Some(&step.sql), &e))?;
        step.said(json, report);
        done += 1;
        Ok(())
    });
    let Err(e) = result else {
        return Ok(());
    };
    Err(crate::plan::take_back(e, undo, done, report, |step| {
        conn.query_drop(step.statement()).map_err(|e| why(&e))
    }))
}
