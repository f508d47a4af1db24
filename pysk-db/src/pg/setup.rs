//! `pg setup`: what a fresh cluster grants everyone, taken back. PUBLIC
//! keeps only CONNECT on `template1`, so that no one else puts a schema
//! into it for every new database to copy (a database's own grants are
//! not copied: a new one grants PUBLIC CONNECT and TEMPORARY as
//! PostgreSQL always does), and loses CREATE on the schema `public` of
//! every database that still grants it (PostgreSQL 14 and older; 15 no
//! longer does). Planned first from the
//! catalogs, then shown (`--dry-run`) or applied; a second run finds
//! nothing to change and says so.

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

/// What `pg setup` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
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
    changes: &'a [Step],
    unchanged: usize,
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let (changes, unchanged) = steps(&options.target)?;
    if !options.dry_run {
        apply::steps(&options.target, &changes, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            changes: &changes,
            unchanged,
        })?;
    } else if options.dry_run {
        plan::show(&changes, out)?;
    } else if changes.is_empty() {
        report.info(format_args!(
            "nothing to change: PUBLIC's grants are as setup leaves them"
        ));
    }
    Ok(Outcome::Success)
}

/// The changes the catalogs call for, and how many checks found nothing
/// to change.
fn steps(target: &Target) -> Result<(Vec<Step>, usize), DbError> {
    let mut client = connect::connect(target, "template1")?;
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for privilege in ["CREATE", "TEMPORARY"] {
        if granted(
            &mut client,
            target,
            "has_database_privilege('public', 'template1', $1)",
            privilege,
        )? {
            changes.push(Step::plain(
                Action::Revoke,
                Some("template1"),
                format!("PUBLIC's {privilege} on the database template1"),
                format!("REVOKE {privilege} ON DATABASE template1 FROM PUBLIC"),
            ));
        } else {
            unchanged += 1;
        }
    }
    let databases = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    drop(client);
    for row in databases {
        let database: String = row.get(0);
        let mut client = connect::connect(target, &database)?;
        let check = "has_schema_privilege('public', 'public', $1)";
        if schema_exists(&mut client, target)? && granted(&mut client, target, check, "CREATE")? {
            let what = format!(
                "PUBLIC's CREATE on the schema public of {}",
                pg_identifier(&database)
            );
            let sql = "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned();
            changes.push(Step::plain(Action::Revoke, Some(&database), what, sql));
        } else {
            unchanged += 1;
        }
    }
    Ok((changes, unchanged))
}

/// Whether the check `function` (with `$1` the privilege) says PUBLIC
/// holds `privilege`.
fn granted(
    client: &mut postgres::Client,
    target: &Target,
    function: &str,
    privilege: &str,
) -> Result<bool, DbError> {
    let row = client
        .query_one(&format!("SELECT {function}"), &[&privilege])
        .map_err(|e| apply::server(target, &e))?;
    Ok(row.get(0))
}

/// Whether the database has a schema `public` (an admin may have dropped
/// it).
fn schema_exists(client: &mut postgres::Client, target: &Target) -> Result<bool, DbError> {
    let row = client
        .query_one(
            "SELECT count(*) > 0 FROM pg_namespace WHERE nspname = 'public'",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    Ok(row.get(0))
}
