//! `list [--json]`: the databases of both servers — owner (PostgreSQL's
//! database owner; MariaDB's accounts with ALL on it), size and sessions
//! — one line each on stdout. A server not running here (no socket) is
//! said and left out; one that is there but fails (refuses the
//! connection, a stale socket, a refused query) is named on stderr and
//! left out, the other still listed, and the run exits 1.

use std::io::{ErrorKind, Write};

use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::mysql::SYSTEM_DATABASES;
use crate::mysql::connect as maria;
use crate::pg::apply;
use crate::pg::connect::{self, Target};

/// What `list` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The PostgreSQL server.
    pub pg: Target,
    /// The MariaDB server.
    pub mysql: maria::Target,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// One database.
#[derive(Debug, Clone, Serialize)]
pub struct Database {
    /// `postgresql` or `mariadb`.
    pub server: &'static str,
    /// Its name.
    pub name: String,
    /// Its owner(s).
    pub owners: Vec<String>,
    /// Its size in bytes.
    pub bytes: u64,
    /// Sessions connected to it now.
    pub sessions: u64,
}

/// A server left out of the list.
#[derive(Debug, Clone, Serialize)]
pub struct Unlisted {
    /// `postgresql` or `mariadb`.
    pub server: &'static str,
    /// Its socket.
    pub socket: String,
    /// Why it failed (not for one that is not running here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    databases: &'a [Database],
    not_running: &'a [Unlisted],
    failed: &'a [Unlisted],
}

/// What the servers gave: their databases, those not running here, those
/// that failed.
#[derive(Debug, Default)]
struct Found {
    databases: Vec<Database>,
    not_running: Vec<Unlisted>,
    failed: Vec<Unlisted>,
}

impl Found {
    /// One server's databases, or why it is left out.
    fn add(
        &mut self,
        server: &'static str,
        socket: &std::path::Path,
        result: Result<Vec<Database>, DbError>,
    ) {
        let e = match result {
            Ok(found) => return self.databases.extend(found),
            Err(e) => e,
        };
        let mut unlisted = Unlisted {
            server,
            socket: socket.display().to_string(),
            reason: None,
        };
        if missing(socket) {
            self.not_running.push(unlisted);
        } else {
            unlisted.reason = Some(match e {
                DbError::Unreachable { reason, .. } | DbError::Server { reason, .. } => reason,
                other => other.to_string(),
            });
            self.failed.push(unlisted);
        }
    }
}

/// Lists both servers' databases.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let mut found = Found::default();
    found.add("postgresql", &options.pg.socket(), postgresql(&options.pg));
    let socket = &options.mysql.socket;
    found.add("mariadb", socket, mariadb(&options.mysql));
    for server in &found.failed {
        let reason = server.reason.as_deref().unwrap_or_default();
        report.warn(format_args!("not listed: {}: {reason}", server.socket));
    }
    let outcome = if found.failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    };
    let databases = &found.databases;
    if options.json {
        report::print_json(&Summary {
            databases,
            not_running: &found.not_running,
            failed: &found.failed,
        })?;
        return Ok(outcome);
    }
    for server in &found.not_running {
        report.info(format_args!(
            "not running here: {}: No such file or directory",
            server.socket
        ));
    }
    let mut text = String::new();
    for db in databases {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            db.server,
            db.name,
            db.owners.join(","),
            db.bytes,
            db.sessions
        ));
    }
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(outcome)
}

/// Whether a server's socket is not there at all (the server is not
/// installed or not running here).
fn missing(socket: &std::path::Path) -> bool {
    std::fs::symlink_metadata(socket).is_err_and(|e| e.kind() == ErrorKind::NotFound)
}

/// PostgreSQL's databases that take connections.
fn postgresql(target: &Target) -> Result<Vec<Database>, DbError> {
    let mut client = connect::connect(target, "postgres")?;
    let rows = client
        .query(
            "SELECT d.datname::text, pg_get_userbyid(d.datdba)::text, \
             pg_database_size(d.oid)::bigint, \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) \
             FROM pg_database d WHERE d.datallowconn ORDER BY 1",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    Ok(rows
        .iter()
        .map(|row| Database {
            server: "postgresql",
            name: row.get(0),
            owners: vec![row.get(1)],
            bytes: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
            sessions: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
        })
        .collect())
}

/// MariaDB's databases but its own.
fn mariadb(target: &maria::Target) -> Result<Vec<Database>, DbError> {
    let mut conn = maria::connect(target)?;
    let refused = |e: mysql::Error| target.refused(None, &e);
    let rows: Vec<(String, u64, u64)> = conn
        .exec(
            format!(
                "SELECT s.SCHEMA_NAME, \
                 COALESCE((SELECT SUM(t.DATA_LENGTH + t.INDEX_LENGTH) \
                           FROM information_schema.TABLES t \
                           WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME), 0), \
                 (SELECT COUNT(*) FROM information_schema.PROCESSLIST p \
                  WHERE p.DB = s.SCHEMA_NAME) \
                 FROM information_schema.SCHEMATA s \
                 WHERE s.SCHEMA_NAME NOT IN ({}) ORDER BY 1",
                ["?"; SYSTEM_DATABASES.len()].join(", ")
            ),
            SYSTEM_DATABASES.to_vec(),
        )
        .map_err(refused)?;
    let mut databases = Vec::new();
    for (name, bytes, sessions) in rows {
        let owners: Vec<(String, String)> = conn
            .exec(
                "SELECT User, Host FROM mysql.db WHERE Db = ? AND Select_priv = 'Y' \
                 AND Insert_priv = 'Y' AND Drop_priv = 'Y' AND User <> '' ORDER BY 1, 2",
                (crate::mysql::grant_pattern(&name),),
            )
            .map_err(refused)?;
        databases.push(Database {
            server: "mariadb",
            // A role (PUBLIC among them) has no host.
            owners: owners
                .into_iter()
                .map(|(u, h)| if h.is_empty() { u } else { format!("{u}@{h}") })
                .collect(),
            name,
            bytes,
            sessions,
        });
    }
    Ok(databases)
}
