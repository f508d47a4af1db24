//! `mysql drop DB [--user U]`: the database and the account `create` made
//! for it (`U`, default the database's name) at every host it has; what is
//! not there is not dropped, so a second run finds nothing to change.

use std::io::Write;
use std::time::Duration;

use mysql::Conn;
use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::mysql::connect::{self, Target};
use crate::names::mysql_identifier;
use crate::plan::{self, Action, Step};

/// What `mysql drop` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The database (checked by the name rule; not a system database).
    pub database: String,
    /// The account's user name (checked by the name rule; not a system
    /// account).
    pub user: String,
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
    changes: &'a [Step],
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
        connect::apply(&mut conn, &options.target, &steps, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            database: &options.database,
            user: &options.user,
            changes: &steps,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: there is no database {} nor account {}",
            options.database, options.user
        ));
    }
    Ok(Outcome::Success)
}

/// The statements: the database (when there), then each account of the
/// user (roles are not accounts and stay).
fn plan(conn: &mut Conn, options: &Options) -> Result<Vec<Step>, DbError> {
    let refused = |e: mysql::Error| options.target.refused(None, &e);
    let (db, user) = (&options.database, &options.user);
    let mut steps = Vec::new();
    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db.as_str(),),
        )
        .map_err(refused)?;
    if exists.is_some() {
        let sql = format!("DROP DATABASE {}", mysql_identifier(db));
        steps.push(Step::plain(
            Action::Drop,
            None,
            format!("the database {db}"),
            sql,
        ));
    }
    let hosts: Vec<String> = conn
        .exec(
            "SELECT Host FROM mysql.user WHERE User = ? AND is_role = 'N' ORDER BY Host",
            (user.as_str(),),
        )
        .map_err(refused)?;
    for host in hosts {
        let sql = format!(
            "DROP USER {}@{}",
            mysql_identifier(user),
            mysql_identifier(&host)
        );
        steps.push(Step::plain(
            Action::Drop,
            None,
            format!("the account {user}@{host}"),
            sql,
        ));
    }
    Ok(steps)
}
