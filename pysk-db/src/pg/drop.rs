//! `pg drop DB [--force]`: a database and the NOLOGIN group role named
//! after it gone. A database with connections is refused unless
//! `--force`, which ends them (PostgreSQL 13's `DROP DATABASE … WITH
//! (FORCE)`); the owner role stays, as it may own more. A role of the
//! database's name that is not such a group role (a customer's login, a
//! superuser), or one without the database (a group role made by hand,
//! whose members would lose what it carries), is left alone and said.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::names::pg_identifier;
use crate::pg::connect::{self, Target};
use crate::pg::{apply, create};
use crate::plan::{self, Action, Step};

/// What `pg drop` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The database (checked by the name rule).
    pub database: String,
    /// End its connections.
    pub force: bool,
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
    changes: &'a [Step],
    /// Why a role of the database's name is left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    role_kept: Option<&'a str>,
}

/// Plans, then shows or drops.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let (steps, kept) = steps(options)?;
    let db = &options.database;
    match kept.filter(|_| !options.json) {
        Some(NO_DATABASE) => report.info(format_args!(
            "the role {db} stays: there is no database {db}, and a group role is dropped \
             only with its database"
        )),
        Some(why) => report.info(format_args!(
            "the role {db} stays: it is {why}, not a NOLOGIN group role"
        )),
        None => {}
    }
    if options.dry_run {
        if !options.json {
            plan::show(&steps, out)?;
        }
    } else {
        apply::steps(&options.target, &steps, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: db,
            changes: &steps,
            role_kept: kept,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        let role = if kept.is_some() {
            String::new()
        } else {
            format!(" nor group role {db}")
        };
        report.info(format_args!(
            "nothing to change: there is no database {db}{role}"
        ));
    }
    Ok(Outcome::Success)
}

/// Why a group role is kept when its database is not there (`role_kept`).
const NO_DATABASE: &str = "without its database";

/// The statements: the database (when there), then its group role (when
/// there with it, and one as `create` makes it); why a role of that name
/// is kept.
fn steps(options: &Options) -> Result<(Vec<Step>, Option<&'static str>), DbError> {
    let db = &options.database;
    let mut client = connect::connect(&options.target, "postgres")?;
    let query = |client: &mut postgres::Client, sql: &str| {
        client
            .query_one(sql, &[db])
            .map(|row| row.get::<_, i64>(0))
            .map_err(|e| apply::server(&options.target, &e))
    };
    let exists = query(
        &mut client,
        "SELECT count(*) FROM pg_database WHERE datname = $1",
    )?;
    let connections = query(
        &mut client,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
    )?;
    let role = create::role(&mut client, &options.target, db)?;
    let mut steps = Vec::new();
    if exists > 0 {
        if connections > 0 && !options.force {
            return Err(DbError::Conflict(format!(
                "the database {db} has {connections} connection(s): --force ends them"
            )));
        }
        let force = if options.force { " WITH (FORCE)" } else { "" };
        let sql = format!("DROP DATABASE {}{force}", pg_identifier(db));
        let what = format!("the database {db}");
        steps.push(Step::plain(Action::Drop, Some("postgres"), what, sql));
    }
    let kept = match role.as_ref().map(create::Role::not_a_group) {
        Some(None) if exists == 0 => Some(NO_DATABASE),
        found => found.flatten(),
    };
    if role.is_some() && kept.is_none() {
        let sql = format!("DROP ROLE {}", pg_identifier(db));
        let what = format!("the role {db}");
        steps.push(Step::plain(Action::Drop, Some("postgres"), what, sql));
    }
    Ok((steps, kept))
}
