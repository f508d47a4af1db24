//! A plan's statements run on PostgreSQL: a database's statements in one
//! session, those a transaction can hold in one (`BEGIN` … `COMMIT`), so
//! a refused one leaves none of them done. `CREATE DATABASE` and `DROP
//! DATABASE` cannot run in a transaction: when one fails, or a statement
//! after it does, what the run made before is taken back by the undo
//! steps its plan gave, latest first, and the error says what was.

use std::ops::Range;

use pysk_common::report::Reporter;

use crate::error::DbError;
use crate::pg::connect::{self, Target};
use crate::plan::Step;

/// Runs the steps in order, each in its database (`postgres` when it
/// names none), each said once done unless `json`.
pub fn steps(
    target: &Target,
    steps: &[Step],
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    undoable(target, steps, &[], json, report)
}

/// [`steps`], where `undo[i]` (when there is one) takes `steps[i]` back:
/// when a statement fails, the undo steps of those done are run, latest
/// first, and the error names what they took back (or could not).
pub fn undoable(
    target: &Target,
    steps: &[Step],
    undo: &[Option<Step>],
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    let mut done = 0;
    let Err(e) = run(target, steps, &mut done, json, report) else {
        return Ok(());
    };
    Err(crate::plan::take_back(e, undo, done, report, |step| {
        connect::connect(target, in_database(step))
            .and_then(|mut client| {
                client
                    .batch_execute(step.statement())
                    .map_err(|e| server(target, &e))
            })
            .map_err(|e| e.to_string())
    }))
}

/// Runs the steps unit by unit ([`units`]), a session per run of one
/// database's steps; `done` counts the steps committed.
fn run(
    target: &Target,
    steps: &[Step],
    done: &mut usize,
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    let mut session: Option<(&str, postgres::Client)> = None;
    for unit in units(steps) {
        let database = in_database(&steps[unit.start]);
        let client = match &mut session {
            Some((open, client)) if *open == database => client,
            _ => {
                &mut session
                    .insert((database, connect::connect(target, database)?))
                    .1
            }
        };
        let unit_steps = &steps[unit.clone()];
        let refused = |step: &Step, e: postgres::Error| DbError::Server {
            server: target.socket().display().to_string(),
            reason: format!("{}: {}", step.sql, connect::why(&e)),
        };
        if let [step] = unit_steps
            && alone(step)
        {
            client
                .batch_execute(step.statement())
                .map_err(|e| refused(step, e))?;
        } else {
            let mut transaction = client
                .transaction()
                .map_err(|e| refused(&steps[unit.start], e))?;
            for step in unit_steps {
                transaction
                    .batch_execute(step.statement())
                    .map_err(|e| refused(step, e))?;
            }
            let last = &steps[unit.end - 1];
            transaction.commit().map_err(|e| refused(last, e))?;
        }
        unit_steps.iter().for_each(|step| step.said(json, report));
        *done = unit.end;
    }
    Ok(())
}

/// The steps cut into what runs at once: a statement that cannot run in
/// a transaction alone, else the longest run of one database's steps.
fn units(steps: &[Step]) -> Vec<Range<usize>> {
    let mut units: Vec<Range<usize>> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        match units.last_mut() {
            Some(last)
                if !alone(step)
                    && !alone(&steps[last.start])
                    && in_database(&steps[last.start]) == in_database(step) =>
            {
                last.end = n + 1;
            }
            _ => units.push(n..n + 1),
        }
    }
    units
}

/// Whether PostgreSQL refuses to run the step in a transaction.
fn alone(step: &Step) -> bool {
    let sql = step.statement();
    sql.starts_with("CREATE DATABASE ") || sql.starts_with("DROP DATABASE ")
}

/// The database a step runs in.
fn in_database(step: &Step) -> &str {
    step.database.as_deref().unwrap_or("postgres")
}

/// A statement the server refused.
pub fn server(target: &Target, e: &postgres::Error) -> DbError {
    DbError::Server {
        server: target.socket().display().to_string(),
        reason: connect::why(e),
    }
}
