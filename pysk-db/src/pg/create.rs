//! `pg create DB --owner USER`, as Pysk made a customer's database: a
//! NOLOGIN role named after the database, the owner a LOGIN role and a
//! member of it, the database owned by the owner, ALL on its schema
//! `public` to the owner. The password reaches the server only as a
//! SCRAM verifier made here; a stored verifier of the same password is
//! left alone, so a second run changes nothing. Planned from the
//! catalogs, then shown (`--dry-run`, the verifier as `***`) or applied.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::names::{pg_identifier, pg_literal};
use crate::password::Password;
use crate::pg::apply;
use crate::pg::connect::{self, Target};
use crate::pg::scram;
use crate::plan::{self, Action, Step};

/// What `pg create` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The database (checked by the name rule).
    pub database: String,
    /// Its owner (checked by the name rule).
    pub owner: String,
    /// The owner's password; `None` (`add-db`): the owner must exist, and
    /// its password is left as it is.
    pub password: Option<Password>,
    /// The lock file of mutating runs.
    pub lock: std::path::PathBuf,
    /// How long to wait for it.
    pub wait: Duration,
    /// Show the plan; change nothing.
    pub dry_run: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
    /// How a new database is made.
    pub make: Make,
}

/// How a new database is made: `CREATE DATABASE`'s options (the server's
/// defaults where `None`).
#[derive(Debug, Clone, Default)]
pub struct Make {
    /// `ENCODING`.
    pub encoding: Option<String>,
    /// `LOCALE`.
    pub locale: Option<String>,
    /// `TEMPLATE` (checked by the name rule).
    pub template: Option<String>,
}

impl Make {
    /// The options as `CREATE DATABASE` takes them, each value quoted.
    fn clauses(&self) -> String {
        let mut text = String::new();
        if let Some(template) = &self.template {
            text.push_str(&format!(" TEMPLATE {}", pg_identifier(template)));
        }
        if let Some(encoding) = &self.encoding {
            text.push_str(&format!(" ENCODING {}", pg_literal(encoding)));
        }
        if let Some(locale) = &self.locale {
            text.push_str(&format!(" LOCALE {}", pg_literal(locale)));
        }
        text
    }
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    database: &'a str,
    owner: &'a str,
    changes: &'a [Step],
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let steps = steps(options)?;
    if options.dry_run {
        if !options.json {
            plan::show(&steps, out)?;
        }
    } else {
        if let Some(password) = &options.password {
            password.keep()?;
        }
        apply::steps(&options.target, &steps, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: &options.database,
            owner: &options.owner,
            changes: &steps,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: {} exists, owned by {}",
            options.database, options.owner
        ));
    }
    Ok(Outcome::Success)
}

/// The statements the catalogs call for, in order.
fn steps(options: &Options) -> Result<Vec<Step>, DbError> {
    let (db, owner) = (&options.database, &options.owner);
    let mut client = connect::connect(&options.target, "postgres")?;
    let mut steps = Vec::new();
    let mut step = |what: String, sql: String, run: String, database: &str| {
        steps.push(Step::secret(Action::Make, Some(database), what, sql, run));
    };
    if !role_exists(&mut client, options, db)? {
        let sql = format!("CREATE ROLE {} NOLOGIN", pg_identifier(db));
        step(format!("the role {db}"), sql.clone(), sql, "postgres");
    }
    match (
        stored_password(&mut client, options, owner)?,
        &options.password,
    ) {
        (None, None) => {
            return Err(DbError::Conflict(format!(
                "there is no role {owner}: pg create makes it, with a password"
            )));
        }
        (Some(_), None) => {}
        (None, Some(password)) => {
            let verifier = scram::verifier(password.secret.expose().as_bytes());
            let (shown, run) = role_sql("CREATE ROLE", owner, "LOGIN PASSWORD", &verifier);
            step(format!("the login role {owner}"), shown, run, "postgres");
        }
        (
            Some(_),
            Some(Password {
                generated: Some(_), ..
            }),
        ) => {
            return Err(DbError::Conflict(format!(
                "the role {owner} exists: give its password with --password-file, \
                 or use add-db"
            )));
        }
        (Some(stored), Some(password)) => {
            let password = password.secret.expose().as_bytes();
            if stored.as_deref().and_then(|s| scram::matches(s, password)) != Some(true) {
                let verifier = scram::verifier(password);
                let (shown, run) = role_sql("ALTER ROLE", owner, "LOGIN PASSWORD", &verifier);
                step(format!("{owner}'s password"), shown, run, "postgres");
            }
        }
    }
    if !member(&mut client, options)? {
        let sql = format!("GRANT {} TO {}", pg_identifier(db), pg_identifier(owner));
        step(
            format!("{owner} a member of {db}"),
            sql.clone(),
            sql,
            "postgres",
        );
    }
    match database_owner(&mut client, options)? {
        None => {
            let sql = format!(
                "CREATE DATABASE {} OWNER {}{}",
                pg_identifier(db),
                pg_identifier(owner),
                options.make.clauses()
            );
            step(format!("the database {db}"), sql.clone(), sql, "postgres");
            let sql = format!("GRANT ALL ON SCHEMA public TO {}", pg_identifier(owner));
            step(
                format!("ALL on {db}'s schema public to {owner}"),
                sql.clone(),
                sql,
                db,
            );
        }
        Some(found) if found != *owner => {
            return Err(DbError::Conflict(format!(
                "the database {db} exists, owned by {}, not {owner}",
                found.escape_debug()
            )));
        }
        Some(_) => {
            let mut in_db = connect::connect(&options.target, db)?;
            if !schema_granted(&mut in_db, options)? {
                let sql = format!("GRANT ALL ON SCHEMA public TO {}", pg_identifier(owner));
                step(
                    format!("ALL on {db}'s schema public to {owner}"),
                    sql.clone(),
                    sql,
                    db,
                );
            }
        }
    }
    Ok(steps)
}

/// A role statement with its verifier: as shown (`***`) and as run.
fn role_sql(verb: &str, role: &str, clause: &str, verifier: &str) -> (String, String) {
    let head = format!("{verb} {} {clause}", pg_identifier(role));
    (
        format!("{head} '***'"),
        format!("{head} {}", pg_literal(verifier)),
    )
}

/// Whether the role `name` exists.
fn role_exists(
    client: &mut postgres::Client,
    options: &Options,
    name: &str,
) -> Result<bool, DbError> {
    let rows = client
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .map_err(|e| apply::server(&options.target, &e))?;
    Ok(!rows.is_empty())
}

/// The stored password of the role `name`: `None` when there is no such
/// role, `Some(None)` when it has none.
fn stored_password(
    client: &mut postgres::Client,
    options: &Options,
    name: &str,
) -> Result<Option<Option<String>>, DbError> {
    let rows = client
        .query(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&name],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    Ok(rows.first().map(|row| row.get(0)))
}

/// Whether the owner is a member of the database's role.
fn member(client: &mut postgres::Client, options: &Options) -> Result<bool, DbError> {
    let rows = client
        .query(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 AND u.rolname = $2",
            &[&options.database, &options.owner],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    Ok(!rows.is_empty())
}

/// The database's owner, `None` when there is no such database.
fn database_owner(
    client: &mut postgres::Client,
    options: &Options,
) -> Result<Option<String>, DbError> {
    let rows = client
        .query(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&options.database],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    Ok(rows.first().map(|row| row.get(0)))
}

/// Whether the owner holds CREATE and USAGE on the database's schema
/// `public` (a missing schema counts as granted: there is nothing to
/// grant on).
fn schema_granted(client: &mut postgres::Client, options: &Options) -> Result<bool, DbError> {
    let row = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') \
             OR has_schema_privilege($1, 'public', 'CREATE, USAGE')",
            &[&options.owner],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    Ok(row.get(0))
}
