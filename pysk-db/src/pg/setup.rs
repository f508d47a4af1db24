//! `pg setup`: what a fresh cluster grants everyone, taken back. PUBLIC
//! keeps only CONNECT on `template1` (every new database is its copy), and
//! loses CREATE on the schema `public` of every database that still grants
//! it (PostgreSQL 14 and older; 15 no longer does). Planned first from the
//! catalogs, then shown (`--dry-run`) or applied; a second run finds
//! nothing to change and says so.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::names::pg_identifier;
use crate::pg::connect::{self, Target};

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

/// One change of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The database the statement runs in.
    pub database: String,
    /// What it takes back, in words.
    pub what: String,
    /// The statement.
    pub sql: String,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    changes: &'a [Change],
    unchanged: usize,
}

/// Plans, then shows or applies.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = if options.dry_run {
        Lock::existing(&options.lock, options.wait)?
    } else {
        if let Some(dir) = options.lock.parent() {
            std::fs::create_dir_all(dir).map_err(pysk_common::error::write_err(dir))?;
        }
        Some(Lock::acquire(&options.lock, options.wait)?)
    };
    let (changes, unchanged) = plan(&options.target)?;
    if !options.dry_run {
        apply(&options.target, &changes, options.json, report)?;
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            changes: &changes,
            unchanged,
        })?;
    } else if options.dry_run {
        show(&changes, out)?;
    } else if changes.is_empty() {
        report.info(format_args!(
            "nothing to change: PUBLIC's grants are as setup leaves them"
        ));
    }
    Ok(Outcome::Success)
}

/// The changes the catalogs call for, and how many checks found nothing
/// to change.
fn plan(target: &Target) -> Result<(Vec<Change>, usize), DbError> {
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
            changes.push(Change {
                database: "template1".to_owned(),
                what: format!("PUBLIC's {privilege} on the database template1"),
                sql: format!("REVOKE {privilege} ON DATABASE template1 FROM PUBLIC"),
            });
        } else {
            unchanged += 1;
        }
    }
    let databases = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .map_err(|e| server(target, &e))?;
    drop(client);
    for row in databases {
        let database: String = row.get(0);
        let mut client = connect::connect(target, &database)?;
        let check = "has_schema_privilege('public', 'public', $1)";
        if schema_exists(&mut client, target)? && granted(&mut client, target, check, "CREATE")? {
            changes.push(Change {
                sql: "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
                what: format!(
                    "PUBLIC's CREATE on the schema public of {}",
                    pg_identifier(&database)
                ),
                database,
            });
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
        .map_err(|e| server(target, &e))?;
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
        .map_err(|e| server(target, &e))?;
    Ok(row.get(0))
}

/// Runs each change in its database, said as it is done (unless the
/// `--json` document says it).
fn apply(
    target: &Target,
    changes: &[Change],
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    for change in changes {
        let mut client = connect::connect(target, &change.database)?;
        client
            .batch_execute(&change.sql)
            .map_err(|e| server(target, &e))?;
        if !json {
            report.info(format_args!("took back {}", change.what));
        }
    }
    Ok(())
}

/// The dry run's plan on stdout.
fn show(changes: &[Change], out: &mut dyn Write) -> Result<(), DbError> {
    let mut text = String::new();
    for change in changes {
        text.push_str(&format!(
            "would take back {}: {};\n",
            change.what, change.sql
        ));
    }
    if changes.is_empty() {
        text.push_str("nothing to change\n");
    }
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(())
}

/// A statement the server refused.
fn server(target: &Target, e: &postgres::Error) -> DbError {
    DbError::Server {
        server: target.socket().display().to_string(),
        reason: connect::why(e),
    }
}
