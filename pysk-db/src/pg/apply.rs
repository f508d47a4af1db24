//! A plan's statements run on PostgreSQL, each in its database.

use pysk_common::report::Reporter;

use crate::error::DbError;
use crate::pg::connect::{self, Target};
use crate::plan::Step;

/// Runs each step in its database (`postgres` when it names none), in
/// order, each said as it is done unless `json`.
pub fn steps(
    target: &Target,
    steps: &[Step],
    json: bool,
    report: &Reporter,
) -> Result<(), DbError> {
    for step in steps {
        let database = step.database.as_deref().unwrap_or("postgres");
        let mut client = connect::connect(target, database)?;
        client
            .batch_execute(step.statement())
            .map_err(|e| DbError::Server {
                server: target.socket().display().to_string(),
                reason: format!("{}: {}", step.sql, connect::why(&e)),
            })?;
        step.said(json, report);
    }
    Ok(())
}

/// A statement the server refused.
pub fn server(target: &Target, e: &postgres::Error) -> DbError {
    DbError::Server {
        server: target.socket().display().to_string(),
        reason: connect::why(e),
    }
}
