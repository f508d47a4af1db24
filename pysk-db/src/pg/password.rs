//! `pg password USER --password-file F`: a login role's password set as a
//! SCRAM verifier made here, and left alone when the stored verifier is
//! one of the same password. A superuser and PostgreSQL's own roles are
//! refused (65), as `mysql password` refuses root.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};
use pysk_common::secret::Secret;

use crate::error::DbError;
use crate::names::{pg_identifier, pg_literal};
use crate::pg::connect::{self, Target};
use crate::pg::scram;
use crate::pg::{apply, create};
use crate::plan::{self, Action, Step};

/// What `pg password` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The role (checked by the name rule).
    pub user: String,
    /// Its new password.
    pub password: Secret,
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
    user: &'a str,
    changes: &'a [Step],
}

/// Checks the stored verifier, then sets a new one when it differs.
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
            user: &options.user,
            changes: &steps,
        })?;
    } else if steps.is_empty() && !options.dry_run {
        report.info(format_args!(
            "nothing to change: {} has this password already",
            options.user
        ));
    }
    Ok(Outcome::Success)
}

/// The statement, if the stored verifier is not one of the password; a
/// superuser and PostgreSQL's own roles are refused, as no customer's.
fn steps(options: &Options) -> Result<Vec<Step>, DbError> {
    let mut client = connect::connect(&options.target, "postgres")?;
    let user = &options.user;
    let Some(role) = create::role(&mut client, &options.target, user)? else {
        return Err(DbError::Conflict(format!("there is no role {user}")));
    };
    if let Some(why) = role.not_for_password() {
        return Err(DbError::Conflict(format!(
            "the role {user} is {why}: its password is not set by this tool"
        )));
    }
    let password = options.password.expose().as_bytes();
    if role.has_password(password) {
        return Ok(Vec::new());
    }
    let head = format!("ALTER ROLE {} PASSWORD", pg_identifier(user));
    Ok(vec![Step::secret(
        Action::Set,
        Some("postgres"),
        format!("{user}'s password"),
        format!("{head} '***'"),
        format!("{head} {}", pg_literal(&scram::verifier(password))),
    )])
}
