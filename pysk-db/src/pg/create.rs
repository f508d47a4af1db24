//! `pg create DB --owner USER`, as Pysk made a customer's database: a
//! NOLOGIN role named after the database, the owner a LOGIN role and a
//! member of it, the database owned by the owner, ALL on its schema
//! `public` to the owner. The password reaches the server only as a
//! SCRAM verifier made here; a stored verifier of the same password is
//! left alone, so a second run changes nothing. A role named after the
//! database that is more than such a group role (LOGIN, a superuser, any
//! other attribute, a member of a role, one of PostgreSQL's own) is
//! refused, since the owner would get what it may do, and so is a
//! superuser owner. Planned from the catalogs, then shown (`--dry-run`,
//! the verifier as `***`) or applied.

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
    let mut client = connect::connect(&options.target, "postgres")?;
    let mut steps = Vec::new();
    group_role(&mut client, options, &mut steps)?;
    owner_role(&mut client, options, &mut steps)?;
    if !member(&mut client, options)? {
        let (db, owner) = (&options.database, &options.owner);
        let sql = format!("GRANT {} TO {}", pg_identifier(db), pg_identifier(owner));
        steps.push(make("postgres", format!("{owner} a member of {db}"), sql));
    }
    database(&mut client, options, &mut steps)?;
    Ok(steps)
}

/// A step that makes something, without a secret.
fn make(database: &str, what: String, sql: String) -> Step {
    Step::plain(Action::Make, Some(database), what, sql)
}

/// The role named after the database: made NOLOGIN when missing; one that
/// exists must be such a group role and nothing more, since the owner
/// becomes a member of it and gets whatever it may do.
fn group_role(
    client: &mut postgres::Client,
    options: &Options,
    steps: &mut Vec<Step>,
) -> Result<(), DbError> {
    let db = &options.database;
    match role(client, &options.target, db)? {
        None => {
            let sql = format!("CREATE ROLE {} NOLOGIN", pg_identifier(db));
            steps.push(make("postgres", format!("the role {db}"), sql));
            Ok(())
        }
        Some(found) => match found.not_a_group() {
            None => Ok(()),
            Some(why) => Err(DbError::Conflict(format!(
                "the role {db} exists and is {why}, not a NOLOGIN group role: \
                 {} is not made a member of it",
                options.owner
            ))),
        },
    }
}

/// The owner: made a LOGIN role with the password when missing; one that
/// exists gets the password when its stored verifier is not one of it,
/// and LOGIN when it lacks it. A superuser is refused, and so is a
/// generated password for a role that has one already.
fn owner_role(
    client: &mut postgres::Client,
    options: &Options,
    steps: &mut Vec<Step>,
) -> Result<(), DbError> {
    let owner = &options.owner;
    let found = role(client, &options.target, owner)?;
    let refuse = |why: String| Err(DbError::Conflict(why));
    match (&found, &options.password) {
        (None, None) => refuse(format!(
            "there is no role {owner}: pg create makes it, with a password"
        )),
        (Some(role), _) if role.superuser => refuse(format!(
            "the role {owner} is a superuser: a customer's database is not given to one"
        )),
        (Some(_), Some(password)) if password.generated.is_some() => refuse(format!(
            "the role {owner} exists, but not --generate-password's file: give its \
             password with --password-file, or use add-db"
        )),
        (None, Some(password)) => {
            let verifier = scram::verifier(password.secret.expose().as_bytes());
            let (shown, run) = role_sql("CREATE ROLE", owner, "LOGIN PASSWORD", &verifier);
            let what = format!("the login role {owner}");
            steps.push(Step::secret(
                Action::Make,
                Some("postgres"),
                what,
                shown,
                run,
            ));
            Ok(())
        }
        (Some(role), password) => {
            let password = password.as_ref().map(|p| p.secret.expose().as_bytes());
            steps.extend(role.made_login(owner, password));
            Ok(())
        }
    }
}

/// What the catalog says of a role.
pub(crate) struct Role {
    /// `rolcanlogin`.
    login: bool,
    /// `rolsuper`.
    superuser: bool,
    /// Any of `rolcreaterole`, `rolcreatedb`, `rolreplication`,
    /// `rolbypassrls`.
    privileged: bool,
    /// One of PostgreSQL's own (an oid below `FirstNormalObjectId`).
    predefined: bool,
    /// A member of another role, whose rights it passes on.
    member: bool,
    /// `rolpassword`.
    password: Option<String>,
}

impl Role {
    /// Why the role is not a group role as `create` makes one, in words;
    /// `None` when it is one.
    pub(crate) fn not_a_group(&self) -> Option<&'static str> {
        if self.predefined {
            Some("one of PostgreSQL's own")
        } else if self.superuser {
            Some("a superuser")
        } else if self.login {
            Some("a login role")
        } else if self.privileged {
            Some("a role with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS")
        } else if self.member {
            Some("a member of another role")
        } else {
            None
        }
    }

    /// The step that makes this existing role `name` a login role with
    /// `password`: none when it is one and its stored verifier is one of
    /// the password (or no password is given).
    fn made_login(&self, name: &str, password: Option<&[u8]>) -> Option<Step> {
        let stored = self.password.as_deref();
        match password {
            Some(p) if stored.and_then(|s| scram::matches(s, p)) != Some(true) => {
                let verifier = scram::verifier(p);
                let (shown, run) = role_sql("ALTER ROLE", name, "LOGIN PASSWORD", &verifier);
                let what = format!("{name}'s password");
                Some(Step::secret(
                    Action::Set,
                    Some("postgres"),
                    what,
                    shown,
                    run,
                ))
            }
            _ if !self.login => {
                let sql = format!("ALTER ROLE {} LOGIN", pg_identifier(name));
                Some(make("postgres", format!("{name} a login role"), sql))
            }
            _ => None,
        }
    }
}

/// The database: made, owned by the owner, with ALL on its schema public
/// to the owner; one that exists must be the owner's, and gets the grant
/// when it lacks it.
fn database(
    client: &mut postgres::Client,
    options: &Options,
    steps: &mut Vec<Step>,
) -> Result<(), DbError> {
    let (db, owner) = (&options.database, &options.owner);
    let grant = || {
        let sql = format!("GRANT ALL ON SCHEMA public TO {}", pg_identifier(owner));
        make(db, format!("ALL on {db}'s schema public to {owner}"), sql)
    };
    match database_owner(client, options)? {
        None => {
            let sql = format!(
                "CREATE DATABASE {} OWNER {}{}",
                pg_identifier(db),
                pg_identifier(owner),
                options.make.clauses()
            );
            steps.push(make("postgres", format!("the database {db}"), sql));
            steps.push(grant());
        }
        Some(found) if found != *owner => {
            return Err(DbError::Conflict(format!(
                "the database {db} exists, owned by {}, not {owner}",
                crate::names::shown(&found)
            )));
        }
        Some(_) => {
            let mut in_db = connect::connect(&options.target, db)?;
            if !schema_granted(&mut in_db, options)? {
                steps.push(grant());
            }
        }
    }
    Ok(())
}

/// A role statement with its verifier: as shown (`***`) and as run.
fn role_sql(verb: &str, role: &str, clause: &str, verifier: &str) -> (String, String) {
    let head = format!("{verb} {} {clause}", pg_identifier(role));
    (
        format!("{head} '***'"),
        format!("{head} {}", pg_literal(verifier)),
    )
}

/// The role `name` as the catalog has it, `None` when there is none.
pub(crate) fn role(
    client: &mut postgres::Client,
    target: &Target,
    name: &str,
) -> Result<Option<Role>, DbError> {
    let rows = client
        .query(
            "SELECT rolcanlogin, rolsuper, \
             rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls, \
             oid < 16384, \
             EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = a.oid), \
             rolpassword FROM pg_authid a WHERE rolname = $1",
            &[&name],
        )
        .map_err(|e| apply::server(target, &e))?;
    Ok(rows.first().map(|row| Role {
        login: row.get(0),
        superuser: row.get(1),
        privileged: row.get(2),
        predefined: row.get(3),
        member: row.get(4),
        password: row.get(5),
    }))
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
