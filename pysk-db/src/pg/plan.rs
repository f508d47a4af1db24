//! What every mutating `pg` subcommand shares: a plan of statements, each
//! in its database, shown by a dry run (secrets as `***`) or run in
//! order; the state lock they run under.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::error::DbError;
use crate::pg::connect::{self, Target};

/// One statement of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The database it runs in.
    pub database: String,
    /// What it does, in words.
    pub what: String,
    /// The statement as shown (a secret as `***`).
    pub sql: String,
    /// The statement as run.
    #[serde(skip)]
    pub run: String,
}

impl Step {
    /// A step without a secret: shown as it is run.
    pub fn plain(database: &str, what: String, sql: String) -> Step {
        Step {
            database: database.to_owned(),
            what,
            run: sql.clone(),
            sql,
        }
    }
}

/// The state lock of a mutating run: for a dry run only where its file
/// exists (a dry run creates nothing), else made with its directory.
pub fn lock(path: &Path, wait: Duration, dry_run: bool) -> Result<Option<Lock>, DbError> {
    if dry_run {
        return Ok(Lock::existing(path, wait)?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(pysk_common::error::write_err(dir))?;
    }
    Ok(Some(Lock::acquire(path, wait)?))
}

/// Runs each step in its database, in order, said as `done` and its
/// `what` unless `quiet` (the `--json` document says it).
pub fn apply(
    target: &Target,
    steps: &[Step],
    done: &str,
    quiet: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    for step in steps {
        let mut client = connect::connect(target, &step.database)?;
        client
            .batch_execute(&step.run)
            .map_err(|e| DbError::Server {
                server: target.socket().display().to_string(),
                reason: format!("{}: {}", step.sql, connect::why(&e)),
            })?;
        if !quiet {
            report.info(format_args!("{done} {}", step.what));
        }
    }
    Ok(())
}

/// A dry run's plan on stdout: `would VERB what: statement;` a line.
pub fn show(steps: &[Step], verb: &str, out: &mut dyn Write) -> Result<(), DbError> {
    let mut text = String::new();
    for step in steps {
        text.push_str(&format!("would {verb} {}: {};\n", step.what, step.sql));
    }
    if steps.is_empty() {
        text.push_str("nothing to change\n");
    }
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(())
}

/// A statement the server refused.
pub fn server(target: &Target, e: &postgres::Error) -> DbError {
    DbError::Server {
        server: target.socket().display().to_string(),
        reason: connect::why(e),
    }
}
