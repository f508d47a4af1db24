//! `mysql create DB --user U --host H...`: the account(s) `U@H`, the
//! database, ALL on it to each account. The password reaches the server
//! only as the hash of `db_mysql_auth` made here, written into the
//! statement as a checked literal (the server takes no placeholder there);
//! a stored hash of the same password is left alone (both hashes are
//! deterministic), so a second run changes nothing. Planned from the
//! catalogs, then shown (`--dry-run`, the hash as `***`) or applied.

use std::io::Write;
use std::time::Duration;

use mysql::Conn;
use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::mysql::connect::{self, Target};
use crate::mysql::hash::Auth;
use crate::mysql::setup::{INSTALL_ED25519, ed25519_active};
use crate::names::mysql_identifier;
use crate::password::Password;
use crate::plan::{self, Action, Step};

/// What `mysql create` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// How the accounts are made.
    pub auth: Auth,
    /// The database (checked by the name rule).
    pub database: String,
    /// The account's user name (checked by the name rule).
    pub user: String,
    /// The hosts it may come from (checked by [`check_host`]).
    pub hosts: Vec<String>,
    /// The account's password.
    pub password: Password,
    /// The database's character set (checked by [`check_charset`]).
    pub charset: String,
    /// Its collation, when not the character set's default.
    pub collation: Option<String>,
    /// The lock file of mutating runs.
    pub lock: std::path::PathBuf,
    /// How long to wait for it.
    pub wait: Duration,
    /// Show the plan; change nothing.
    pub dry_run: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    database: &'a str,
    user: &'a str,
    hosts: &'a [String],
    changes: &'a [Step],
}

/// `host` when it is a host an account may name: letters, digits and
/// `.-_%:/` (names, addresses, wildcards, netmasks), at most 255 bytes.
pub fn check_host(host: &str) -> Result<&str, String> {
    let fine = |b: u8| b.is_ascii_alphanumeric() || b".-_%:/".contains(&b);
    if !host.is_empty() && host.len() <= 255 && host.bytes().all(fine) {
        return Ok(host);
    }
    Err(format!(
        "host \"{}\": not a host this tool takes (letters, digits and .-_%:/)",
        host.escape_debug()
    ))
}

/// `name` when it is a character set or collation name: lower-case
/// letters, digits and `_`, at most 64 bytes.
pub fn check_charset<'a>(what: &str, name: &'a str) -> Result<&'a str, String> {
    let fine = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(fine) {
        return Ok(name);
    }
    Err(format!(
        "{what} \"{}\": not a name this tool takes (a-z, 0-9 and _)",
        name.escape_debug()
    ))
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let mut conn = connect::connect(&options.target)?;
    let steps = plan(&mut conn, options)?;
    if options.dry_run {
        if !options.json {
            plan::show(&steps, out)?;
        }
    } else {
        options.password.keep()?;
        connect::apply(&mut conn, &options.target, &steps, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: &options.database,
            user: &options.user,
            hosts: &options.hosts,
            changes: &steps,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: {} exists, with ALL to {} at {}",
            options.database,
            options.user,
            options.hosts.join(", ")
        ));
    }
    Ok(Outcome::Success)
}

/// A database name as a grant names it: `_` and `%` are wildcards there,
/// so they are escaped to mean this database only.
fn grant_pattern(database: &str) -> String {
    database
        .replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

/// The statements the catalogs call for, in order.
fn plan(conn: &mut Conn, options: &Options) -> Result<Vec<Step>, DbError> {
    let target = &options.target;
    let refused = |e: mysql::Error| target.refused(None, &e);
    let (db, user, auth) = (&options.database, &options.user, options.auth);
    let mut steps = Vec::new();
    let mut step = |action: Action, what: String, sql: String, run: String| {
        steps.push(Step::secret(action, None, what, sql, run));
    };

    if auth == Auth::Ed25519 && !ed25519_active(conn, target)? {
        step(
            Action::Install,
            "the ed25519 authentication plugin".to_owned(),
            INSTALL_ED25519.to_owned(),
            INSTALL_ED25519.to_owned(),
        );
    }
    let hash = auth.hash(options.password.secret.expose().as_bytes());
    if !auth.well_formed(&hash) {
        return Err(DbError::Common(pysk_common::Error::Internal(format!(
            "a {} hash of the wrong form",
            auth.plugin()
        ))));
    }
    let mut created = Vec::new();
    for host in &options.hosts {
        let account = format!("{}@{}", mysql_identifier(user), mysql_identifier(host));
        let stored: Option<(String, String)> = conn
            .exec_first(
                "SELECT plugin, authentication_string FROM mysql.user \
                 WHERE User = ? AND Host = ? AND is_role = 'N'",
                (user.as_str(), host.as_str()),
            )
            .map_err(refused)?;
        let verb = match stored {
            None => "CREATE USER",
            Some(_) if options.password.generated.is_some() => {
                return Err(DbError::Conflict(format!(
                    "the account {user}@{host} exists, but not --generate-password's file: \
                     give its password with --password-file"
                )));
            }
            Some((plugin, text)) if plugin == auth.plugin() && text == hash => continue,
            Some(_) => "ALTER USER",
        };
        let what = if verb == "CREATE USER" {
            created.push(host);
            format!("the account {user}@{host}")
        } else {
            format!("{user}@{host}'s password")
        };
        step(
            if verb == "CREATE USER" {
                Action::Make
            } else {
                Action::Set
            },
            what,
            format!("{verb} {account} {}", auth.clause("***")),
            format!("{verb} {account} {}", auth.clause(&hash)),
        );
    }

    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db.as_str(),),
        )
        .map_err(refused)?;
    if exists.is_none() {
        let mut sql = format!(
            "CREATE DATABASE {} CHARACTER SET {}",
            mysql_identifier(db),
            options.charset
        );
        if let Some(collation) = &options.collation {
            sql.push_str(&format!(" COLLATE {collation}"));
        }
        step(Action::Make, format!("the database {db}"), sql.clone(), sql);
    }

    let pattern = mysql_identifier(&grant_pattern(db));
    for host in &options.hosts {
        let account = format!("{}@{}", mysql_identifier(user), mysql_identifier(host));
        let grant = format!("GRANT ALL PRIVILEGES ON {pattern}.* TO {account}");
        // A new account has no grant yet (and SHOW GRANTS would fail).
        let granted: Vec<String> = if created.contains(&host) {
            Vec::new()
        } else {
            conn.query(format!("SHOW GRANTS FOR {account}"))
                .map_err(refused)?
        };
        if !granted.contains(&grant) {
            step(
                Action::Make,
                format!("ALL on {db} to {user}@{host}"),
                grant.clone(),
                grant,
            );
        }
    }
    Ok(steps)
}
