//! What every mutating subcommand of both servers shares: a plan of
//! statements read from the catalogs, each shown by a dry run (a secret
//! as `***`) or run in order and said as it is done; and the state lock
//! the runs take, so one mutating run happens at a time.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::error::DbError;

/// What a step does, as a dry run and a report say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Creates something, or makes it what it should be.
    Make,
    /// Sets a password.
    Set,
    /// Takes a privilege back.
    Revoke,
    /// Drops something.
    Drop,
    /// Installs a plugin.
    Install,
    /// Ends a session.
    End,
}

impl Action {
    /// The verb of a dry run's line: "would make …".
    fn verb(self) -> &'static str {
        match self {
            Action::Make => "make",
            Action::Set => "set",
            Action::Revoke => "revoke",
            Action::Drop => "drop",
            Action::Install => "install",
            Action::End => "end",
        }
    }

    /// The verb of a report's line: "made …".
    fn done(self) -> &'static str {
        match self {
            Action::Make => "made",
            Action::Set => "set",
            Action::Revoke => "revoked",
            Action::Drop => "dropped",
            Action::Install => "installed",
            Action::End => "ended",
        }
    }
}

/// One statement of a plan; in `--json` documents as `action`, `database`
/// (PostgreSQL: the database it runs in), `what` and `sql`.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What it does.
    pub action: Action,
    /// The database it runs in (PostgreSQL; MariaDB needs none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// To what, in words.
    pub what: String,
    /// The statement as shown (a secret as `***`).
    pub sql: String,
    /// The statement as run.
    #[serde(skip)]
    run: String,
}

impl Step {
    /// A step without a secret: shown as it is run.
    pub fn plain(action: Action, database: Option<&str>, what: String, sql: String) -> Step {
        Step::secret(action, database, what, sql.clone(), sql)
    }

    /// A step whose statement holds a secret: `shown` has it as `***`.
    pub fn secret(
        action: Action,
        database: Option<&str>,
        what: String,
        shown: String,
        run: String,
    ) -> Step {
        Step {
            action,
            database: database.map(str::to_owned),
            what,
            sql: shown,
            run,
        }
    }

    /// The statement as run (it may hold a secret: never show it).
    pub fn statement(&self) -> &str {
        &self.run
    }

    /// Says that the step was done, unless `--json` says it.
    pub fn said(&self, json: bool, report: &Reporter) {
        if !json {
            report.info(format_args!("{} {}", self.action.done(), self.what));
        }
    }
}

/// A failed run's error `e`, after the work of its first `done` steps is
/// taken back: the undo steps of those (`undo[i]` takes `steps[i]` back)
/// are run latest first by `drop`, each on its own, and what they took
/// back (or could not, with why) is put into a server's message, else said
/// as a warning. Both servers' runs end this way.
pub fn take_back(
    e: DbError,
    undo: &[Option<Step>],
    done: usize,
    report: &Reporter,
    mut drop: impl FnMut(&Step) -> Result<(), String>,
) -> DbError {
    let made: Vec<&Step> = undo.iter().take(done).flatten().rev().collect();
    if made.is_empty() {
        return e;
    }
    let (mut undone, mut left) = (Vec::new(), Vec::new());
    for step in made {
        match drop(step) {
            Ok(()) => undone.push(step.what.as_str()),
            Err(why) => left.push(format!("{} ({why})", step.what)),
        }
    }
    let note = undo_note(&undone, &left);
    match e {
        DbError::Server { server, reason } => DbError::Server {
            server,
            reason: format!("{reason}; {note}"),
        },
        DbError::Unreachable { server, reason } => DbError::Unreachable {
            server,
            reason: format!("{reason}; {note}"),
        },
        other => {
            report.warn(note);
            other
        }
    }
}

/// What taking back a failed run's work did: the steps `undone` (dropped
/// again) and those `left` (with why), for an admin to drop by hand.
fn undo_note(undone: &[&str], left: &[String]) -> String {
    let mut note = Vec::new();
    if !undone.is_empty() {
        let verb = if undone.len() == 1 { "was" } else { "were" };
        note.push(format!(
            "{} made by this run {verb} dropped again",
            undone.join(", ")
        ));
    }
    if !left.is_empty() {
        note.push(format!(
            "made by this run and still there, to drop by hand: {}",
            left.join(", ")
        ));
    }
    note.join("; ")
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

/// A dry run's plan on stdout: `would VERB what: statement;` a line, or
/// `nothing to change`.
pub fn show(steps: &[Step], out: &mut dyn Write) -> Result<(), DbError> {
    let mut text = String::new();
    for step in steps {
        text.push_str(&format!(
            "would {} {}: {};\n",
            step.action.verb(),
            step.what,
            step.sql
        ));
    }
    if steps.is_empty() {
        text.push_str("nothing to change\n");
    }
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(())
}
