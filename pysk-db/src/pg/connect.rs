//! The connection to PostgreSQL as its superuser. A stock Debian cluster
//! lets the system account `postgres` in by peer authentication and
//! refuses root, so the process takes that account's uid and gid for the
//! connect alone — the server checks the peer once, at connect — and is
//! root again before anything else happens. Run as that account itself,
//! it connects as it is; run as anyone else, it is refused (exit 77). A
//! connect runs on a short-lived thread of its own, waited for at most
//! `db_connect_timeout`; connects are made while no other thread of
//! ours works, since glibc switches every thread of the process.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use nix::unistd::{Gid, Uid, User, geteuid, setresgid, setresuid};

use crate::error::DbError;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The directory of the server's socket (`db_pg_socket_dir`).
    pub socket_dir: PathBuf,
    /// The port that names the socket (`db_pg_port`).
    pub port: u16,
    /// The system account the superuser is reached as (`db_pg_superuser`),
    /// also the database role.
    pub superuser: String,
    /// How long a connect may take, authentication included
    /// (`db_connect_timeout`); a statement has no such limit.
    pub connect_timeout: Duration,
}

impl Target {
    /// The socket file, as errors name it.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }
}

/// The server's notices and warnings of a session (SQLSTATE, message),
/// as they arrive.
pub type Notices = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A client connected as the superuser to `database`.
pub fn connect(target: &Target, database: &str) -> Result<postgres::Client, DbError> {
    connect_with(target, database, None)
}

/// [`connect`], the session's notices collected in `notices`.
pub fn connect_with(
    target: &Target,
    database: &str,
    notices: Option<Notices>,
) -> Result<postgres::Client, DbError> {
    let account = User::from_name(&target.superuser)
        .map_err(|e| unreachable(target, format!("looking up {}: {e}", target.superuser)))?
        .ok_or_else(|| unreachable(target, format!("no system account {}", target.superuser)))?;
    let euid = geteuid();
    if euid != account.uid && !euid.is_root() {
        return Err(DbError::NotPermitted(format!(
            "run as root or as {}: PostgreSQL's superuser is reached through that account",
            target.superuser
        )));
    }
    let mut config = config(target, database);
    if let Some(notices) = notices {
        config.notice_callback(move |notice| {
            if let Ok(mut list) = notices.lock() {
                list.push((notice.code().code().to_owned(), notice.message().to_owned()));
            }
        });
    }
    if euid == account.uid {
        within(target, config)
    } else {
        as_account(&account, || within(target, config))?
    }
}

/// Connects within the target's connect timeout. The client's own
/// `connect_timeout` bounds the socket's connect alone, not the startup
/// and authentication exchange after it, so a server that accepts and
/// never answers would hold the run (and its lock) forever: the connect
/// runs on a thread of its own, left blocked on that socket when the time
/// is up. It runs with the ids of the moment, which are the whole
/// process's.
fn within(target: &Target, config: postgres::Config) -> Result<postgres::Client, DbError> {
    let (sender, answer) = mpsc::channel();
    std::thread::Builder::new()
        .name("pg-connect".to_owned())
        .spawn(move || {
            // A send fails only when the wait is over: nobody to tell.
            let _ = sender.send(config.connect(postgres::NoTls));
        })
        .map_err(|e| pysk_common::Error::Internal(format!("starting the connect's thread: {e}")))?;
    match answer.recv_timeout(target.connect_timeout) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(refused(target, &e)),
        Err(RecvTimeoutError::Timeout) => Err(unreachable(
            target,
            format!(
                "no answer within {} s (db_connect_timeout)",
                target.connect_timeout.as_secs_f64()
            ),
        )),
        Err(RecvTimeoutError::Disconnected) => Err(pysk_common::Error::Internal(
            "the connect's thread ended without an answer".to_owned(),
        )
        .into()),
    }
}

/// A failed connect: the server's refusal as it says it, or a socket not
/// reached, naming the switches that name it.
fn refused(target: &Target, e: &postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(_) => unreachable(target, why(e)),
        None => unreachable(target, format!("{} (db_pg_socket_dir, db_pg_port)", why(e))),
    }
}

/// The client's configuration: the socket only (a host name would be
/// resolved on a thread of the client's own).
fn config(target: &Target, database: &str) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host_path(&target.socket_dir)
        .port(target.port)
        .user(&target.superuser)
        .dbname(database)
        .application_name("pysk-db");
    config
}

/// Runs `work` with the effective uid and gid of `account`, and is root
/// again afterwards whatever `work` did. The gid is switched first, while
/// the process may still do so; the real and saved ids stay root's, which
/// is what lets it switch back.
fn as_account<T>(account: &User, work: impl FnOnce() -> T) -> Result<T, DbError> {
    let (root, group) = (Uid::from_raw(0), Gid::from_raw(0));
    let switch = |what: &str, e: nix::Error| {
        DbError::Common(pysk_common::Error::Internal(format!(
            "switching to the account {} ({what}): {e}",
            account.name
        )))
    };
    setresgid(group, account.gid, group).map_err(|e| switch("gid", e))?;
    if let Err(e) = setresuid(root, account.uid, root) {
        let _ = setresgid(group, group, group);
        return Err(switch("uid", e));
    }
    let done = work();
    setresuid(root, root, root).map_err(|e| switch("back to root", e))?;
    setresgid(group, group, group).map_err(|e| switch("back to root's group", e))?;
    Ok(done)
}

/// A client error in words: the server's message and code, else the
/// cause of a failed connection.
pub fn why(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return pysk_common::error::cause(io);
        }
        source = inner.source();
    }
    e.to_string()
}

/// The server at `target` cannot be reached or refused the connection.
fn unreachable(target: &Target, reason: String) -> DbError {
    DbError::Unreachable {
        server: target.socket().display().to_string(),
        reason,
    }
}
