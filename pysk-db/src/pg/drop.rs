//! `pg drop DB [--force]`: a database and the NOLOGIN role named after it
//! gone. A database with connections is refused unless `--force`, which
//! ends them (PostgreSQL 13's `DROP DATABASE … WITH (FORCE)`); the owner
//! role stays, as it may own more.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::names::pg_identifier;
use crate::pg::apply;
use crate::pg::connect::{self, Target};
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
}

/// Plans, then shows or drops.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let steps = steps(options)?;
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
            database: &options.database,
            changes: &steps,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: there is no database {} nor role {}",
            options.database, options.database
        ));
    }
    Ok(Outcome::Success)
}

/// The statements: the database (when there), then its role (when there).
fn steps(options: &Options) -> Result<Vec<Step>, DbError> {
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
    let role = query(
        &mut client,
        "SELECT count(*) FROM pg_roles WHERE rolname = $1",
    )?;
    let mut steps = Vec::new();
    if exists > 0 {
        if connections > 0 && !options.force {
            return Err(DbError::Conflict(format!(
                "the database {db} has {connections} connection(s): --force ends them"
            )));
        }
        let force = if options.force { " WITH (FORCE)" } else { "" };
        let sql = format!("DROP DATABASE {}{force}", pg_identifier(db));
        steps.push(Step::plain(
            Action::Drop,
            Some("postgres"),
            format!("the database {db}"),
            sql,
        ));
    }
    if role > 0 {
        let sql = format!("DROP ROLE {}", pg_identifier(db));
        steps.push(Step::plain(
            Action::Drop,
            Some("postgres"),
            format!("the role {db}"),
            sql,
        ));
    }
    Ok(steps)
}
