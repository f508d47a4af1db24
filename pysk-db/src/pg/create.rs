//! `pg create DB --owner USER`, as Pysk made a customer's database: a
//! NOLOGIN role named after the database, the owner a LOGIN role and a
//! member of it, the database owned by the owner, ALL on its schema
//! `public` to the owner. The password reaches the server only as a
//! SCRAM verifier made here; a stored verifier of the same password is
//! left alone, so a second run changes nothing. A role named after the
//! database that is more than such a group role (LOGIN, a superuser, any
//! other attribute, a member of a role, one of PostgreSQL's own; for an
//! owner not yet its member, one that owns or holds anything or has
//! members) is refused, since the owner would get what it may do, and so
//! is an owner that is a superuser, privileged, predefined or a group
//! role with members. Planned from the catalogs, then shown (`--dry-run`,
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
    /// How a database that exists differs from what was asked of it.
    warnings: &'a [String],
}

/// What the catalogs call for: the steps, the step that takes each back
/// should a later one fail, and how a database that exists differs from
/// what was asked (left as it is).
#[derive(Default)]
struct Plan {
    steps: Vec<Step>,
    undo: Vec<Option<Step>>,
    warnings: Vec<String>,
    /// The existing owner's `ALTER ROLE`, planned after everything else:
    /// a run that fails before it leaves the owner's password and LOGIN
    /// as they were (no undo could bring a replaced verifier back).
    last: Option<Step>,
}

impl Plan {
    /// Adds a step and what takes it back.
    fn push(&mut self, step: Step, undo: Option<Step>) {
        self.steps.push(step);
        self.undo.push(undo);
    }
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let Plan {
        steps,
        undo,
        warnings,
        ..
    } = plan(options)?;
    warnings.iter().for_each(|w| report.warn(w));
    if options.dry_run {
        if !options.json {
            plan::show(&steps, out)?;
        }
    } else {
        if let Some(password) = &options.password {
            password.keep()?;
        }
        apply::undoable(&options.target, &steps, &undo, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: &options.database,
            owner: &options.owner,
            changes: &steps,
            warnings: &warnings,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: {} exists, owned by {}",
            options.database, options.owner
        ));
    }
    Ok(Outcome::Success)
}

/// The statements the catalogs call for, in order, with their undo.
fn plan(options: &Options) -> Result<Plan, DbError> {
    let mut client = connect::connect(&options.target, "postgres")?;
    let mut plan = Plan::default();
    let is_member = member(&mut client, options)?;
    group_role(&mut client, options, is_member, &mut plan)?;
    owner_role(&mut client, options, &mut plan)?;
    if !is_member {
        let (db, owner) = (&options.database, &options.owner);
        let (group, member) = (pg_identifier(db), pg_identifier(owner));
        let revoke = Step::plain(
            Action::Revoke,
            Some("postgres"),
            format!("{owner}'s membership in {db}"),
            format!("REVOKE {group} FROM {member}"),
        );
        let sql = format!("GRANT {group} TO {member}");
        plan.push(
            make("postgres", format!("{owner} a member of {db}"), sql),
            Some(revoke),
        );
    }
    database(&mut client, options, &mut plan)?;
    if let Some(step) = plan.last.take() {
        plan.push(step, None);
    }
    Ok(plan)
}

/// A step that makes something, without a secret.
fn make(database: &str, what: String, sql: String) -> Step {
    Step::plain(Action::Make, Some(database), what, sql)
}

/// The step that drops what `kind` (`ROLE`, `DATABASE`) `name` this run
/// made, should a later step fail.
fn drop_again(kind: &str, name: &str, what: String) -> Option<Step> {
    let sql = format!("DROP {kind} {}", pg_identifier(name));
    Some(Step::plain(Action::Drop, Some("postgres"), what, sql))
}

/// The role named after the database: made NOLOGIN when missing; one that
/// exists must be such a group role and nothing more, since the owner
/// becomes a member of it and gets whatever it may do: when the owner is
/// not a member yet, it must own nothing, hold no privilege and have no
/// other member.
fn group_role(
    client: &mut postgres::Client,
    options: &Options,
    is_member: bool,
    plan: &mut Plan,
) -> Result<(), DbError> {
    let db = &options.database;
    match role(client, &options.target, db)? {
        None => {
            let sql = format!("CREATE ROLE {} NOLOGIN", pg_identifier(db));
            let undo = drop_again("ROLE", db, format!("the role {db}"));
            plan.push(make("postgres", format!("the role {db}"), sql), undo);
            Ok(())
        }
        Some(found) => match found.not_a_group() {
            None if is_member => Ok(()),
            None => match in_use(client, options)? {
                None => Ok(()),
                Some(why) => Err(DbError::Conflict(format!(
                    "the role {db} exists and {why}: {} is not made a member of it",
                    options.owner
                ))),
            },
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
/// and LOGIN when it lacks it, as the plan's last step (`add-db`, with no
/// password, refuses a NOLOGIN owner instead). A superuser, a privileged
/// or predefined role and a group role with members are refused, and so
/// is a generated password for a role that exists: a new
/// one, and one read back from `--generate-password`'s file unless it is
/// the role's password already (the same provisioning run again).
fn owner_role(
    client: &mut postgres::Client,
    options: &Options,
    plan: &mut Plan,
) -> Result<(), DbError> {
    let owner = &options.owner;
    let found = role(client, &options.target, owner)?;
    let refuse = |why: String| Err(DbError::Conflict(why));
    if let Some(why) = found.as_ref().and_then(Role::not_an_owner) {
        return refuse(format!(
            "the role {owner} is {why}: a customer's database is not given to one"
        ));
    }
    match (&found, &options.password) {
        (None, None) => refuse(format!(
            "there is no role {owner}: pg create makes it, with a password"
        )),
        (Some(role), None) if !role.login => refuse(format!(
            "the role {owner} cannot log in (NOLOGIN): add-db does not make it a login \
             role without a password; pg create with --password-file does"
        )),
        (Some(_), Some(password)) if password.generated.is_some() => refuse(format!(
            "the role {owner} exists, but not --generate-password's file: give its \
             password with --password-file, or use add-db"
        )),
        (Some(role), Some(password))
            if password.reused && !role.has_password(password.secret.expose().as_bytes()) =>
        {
            refuse(format!(
                "the role {owner} exists, and --generate-password's file holds another \
                 password: give its password with --password-file, or use add-db"
            ))
        }
        (None, Some(password)) => {
            let verifier = scram::verifier(password.secret.expose().as_bytes());
            let (shown, run) = role_sql("CREATE ROLE", owner, "LOGIN PASSWORD", &verifier);
            let what = format!("the login role {owner}");
            let undo = drop_again("ROLE", owner, what.clone());
            let step = Step::secret(Action::Make, Some("postgres"), what, shown, run);
            plan.push(step, undo);
            Ok(())
        }
        (Some(role), password) => {
            let password = password.as_ref().map(|p| p.secret.expose().as_bytes());
            plan.last = role.made_login(owner, password);
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
    /// Other roles are members of it.
    has_members: bool,
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

    /// Why `pg password` does not set this role's password, in words
    /// (a superuser, one of PostgreSQL's own); `None` when it does.
    pub(crate) fn not_for_password(&self) -> Option<&'static str> {
        if self.superuser {
            Some("a superuser")
        } else if self.predefined {
            Some("one of PostgreSQL's own")
        } else {
            None
        }
    }

    /// Why the role may not own a customer's database (nor be given a
    /// password by this tool), in words; `None` when it may.
    pub(crate) fn not_an_owner(&self) -> Option<&'static str> {
        if self.superuser {
            Some("a superuser")
        } else if self.predefined {
            Some("one of PostgreSQL's own")
        } else if self.privileged {
            Some("a role with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS")
        } else if self.has_members {
            Some("a group role other roles are members of")
        } else {
            None
        }
    }

    /// Whether its stored verifier is one of `password`.
    pub(crate) fn has_password(&self, password: &[u8]) -> bool {
        let stored = self.password.as_deref();
        stored.and_then(|s| scram::matches(s, password)) == Some(true)
    }

    /// The step that makes this existing role `name` a login role with
    /// `password`: none when it is one and its stored verifier is one of
    /// the password (or no password is given).
    fn made_login(&self, name: &str, password: Option<&[u8]>) -> Option<Step> {
        match password {
            Some(p) if !self.has_password(p) => {
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
/// to the owner when the template has one (dropped again should the
/// grant fail); one that exists
/// must be the owner's, gets the grant when it lacks it, and is otherwise
/// left as it is, a warning saying how it differs from `--encoding` and
/// `--locale`.
fn database(
    client: &mut postgres::Client,
    options: &Options,
    plan: &mut Plan,
) -> Result<(), DbError> {
    let (db, owner) = (&options.database, &options.owner);
    let grant = || {
        let sql = format!("GRANT ALL ON SCHEMA public TO {}", pg_identifier(owner));
        make(db, format!("ALL on {db}'s schema public to {owner}"), sql)
    };
    match database_owner(client, options)? {
        None => {
            known_encoding(client, options)?;
            let sql = format!(
                "CREATE DATABASE {} OWNER {}{}",
                pg_identifier(db),
                pg_identifier(owner),
                options.make.clauses()
            );
            let undo = drop_again("DATABASE", db, format!("the database {db}"));
            plan.push(make("postgres", format!("the database {db}"), sql), undo);
            if template_has_public(client, options)? {
                plan.push(grant(), None);
            }
        }
        Some(found) if found != *owner => {
            return Err(DbError::Conflict(format!(
                "the database {db} exists, owned by {}, not {owner}",
                crate::names::shown(&found)
            )));
        }
        Some(_) => {
            plan.warnings.extend(differs(client, options)?);
            let mut in_db = connect::connect(&options.target, db)?;
            if !schema_granted(&mut in_db, options)? {
                plan.push(grant(), None);
            }
        }
    }
    Ok(())
}

/// Whether the template a new database is copied from (`template1`
/// unless `--template`) has the schema `public` the grant is on. One
/// that takes no connections cannot be looked into and counts as having
/// it (`template0` always has); a template that is not there fails
/// `CREATE DATABASE` anyway.
fn template_has_public(client: &mut postgres::Client, options: &Options) -> Result<bool, DbError> {
    let template = options.make.template.as_deref().unwrap_or("template1");
    let rows = client
        .query(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&template],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    if !rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
        return Ok(true);
    }
    let mut in_template = connect::connect(&options.target, template)?;
    let row = in_template
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public')",
            &[],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    Ok(row.get(0))
}

/// An `--encoding` the server knows no encoding of is a bad option (exit
/// 2), said before anything is made. `--locale` is not checked so: the
/// server's collations are no reliable list of the locales it takes
/// (`en_US.UTF-8` is listed as `en_US.utf8`, a locale installed later
/// not at all), so a locale it refuses is met by taking back what the run
/// made before.
fn known_encoding(client: &mut postgres::Client, options: &Options) -> Result<(), DbError> {
    let Some(encoding) = &options.make.encoding else {
        return Ok(());
    };
    let row = client
        .query_one("SELECT pg_char_to_encoding($1) >= 0", &[encoding])
        .map_err(|e| apply::server(&options.target, &e))?;
    if row.get(0) {
        return Ok(());
    }
    Err(pysk_common::Error::option(
        "--encoding",
        format!("{encoding:?}: not an encoding this server knows"),
    )
    .into())
}

/// How the database that exists differs from `--encoding` and
/// `--locale`, a sentence each (a locale compared without regard to case
/// or `-`: `UTF-8` is `utf8`).
fn differs(client: &mut postgres::Client, options: &Options) -> Result<Vec<String>, DbError> {
    let (db, make) = (&options.database, &options.make);
    let row = client
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, encoding = pg_char_to_encoding($2),              datcollate::text, datctype::text FROM pg_database WHERE datname = $1",
            &[db, &make.encoding.clone().unwrap_or_default()],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    let (encoding, same, collate, ctype): (String, bool, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let mut warnings = Vec::new();
    if let Some(asked) = make.encoding.as_ref().filter(|_| !same) {
        warnings.push(format!(
            "the database {db} exists with the encoding {encoding}, not {asked} as \
             --encoding asks: left as it is"
        ));
    }
    let key = |locale: &str| locale.to_lowercase().replace('-', "");
    if let Some(asked) = &make.locale
        && (key(asked) != key(&collate) || key(asked) != key(&ctype))
    {
        let found = if collate == ctype {
            collate
        } else {
            format!("{collate} (LC_CTYPE {ctype})")
        };
        warnings.push(format!(
            "the database {db} exists with the locale {found}, not {asked} as --locale \
             asks: left as it is"
        ));
    }
    Ok(warnings)
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
             EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = a.oid), \
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
        has_members: row.get(5),
        password: row.get(6),
    }))
}

/// What the existing group role named like the database carries that
/// its new member would get, in words: what it owns or was granted (in
/// any database: `pg_shdepend`), or its members; `None` when nothing.
fn in_use(client: &mut postgres::Client, options: &Options) -> Result<Option<String>, DbError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_shdepend d \
             WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = a.oid), \
             ARRAY(SELECT pg_get_userbyid(m.member)::text FROM pg_auth_members m \
             WHERE m.roleid = a.oid ORDER BY 1) FROM pg_authid a WHERE rolname = $1",
            &[&options.database],
        )
        .map_err(|e| apply::server(&options.target, &e))?;
    let (holds, members): (bool, Vec<String>) = (row.get(0), row.get(1));
    Ok(if holds {
        Some("owns objects or holds privileges".to_owned())
    } else if !members.is_empty() {
        let members: Vec<String> = members.iter().map(|m| crate::names::shown(m)).collect();
        Some(format!("has the members {}", members.join(", ")))
    } else {
        None
    })
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
