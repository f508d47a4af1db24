//! `pg vacuum [--analyze] [--all | DB...]`: every table of every database
//! (but `template0`, which takes no connections) vacuumed one at a time
//! with `SKIP_LOCKED` and the session's `lock_timeout` (`db_lock_timeout`),
//! so that maintenance never queues behind a migration's lock and stalls
//! a site. A table another session holds is skipped and named: PostgreSQL
//! says so only for a table named in the statement, which is why the
//! tables are taken one by one.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::error::DbError;
use crate::names::pg_identifier;
use crate::pg::apply;
use crate::pg::connect::{self, Notices, Target};

/// SQLSTATE `lock_not_available`: a table skipped, or a lock not had in
/// time.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// What `pg vacuum` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The databases (checked by the name rule); empty: all.
    pub databases: Vec<String>,
    /// ANALYZE too.
    pub analyze: bool,
    /// REINDEX each user table CONCURRENTLY too.
    pub reindex: bool,
    /// How long a table's lock is waited for before it is skipped.
    pub lock_timeout: Duration,
    /// Name the tables; vacuum nothing.
    pub dry_run: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
    /// Databases vacuumed at once.
    pub jobs: usize,
}

/// One database's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Vacuumed {
    /// The database.
    pub database: String,
    /// Seconds it took.
    pub seconds: f64,
    /// Its tables.
    pub tables: usize,
    /// Those done.
    pub vacuumed: usize,
    /// Those skipped because another session held them.
    pub skipped: Vec<String>,
    /// Those the server refused, with why.
    pub failed: Vec<String>,
    /// User tables reindexed (with `--reindex`).
    pub reindexed: usize,
    /// User tables not reindexed because another session held them (the
    /// half-built indexes such a stop leaves are dropped).
    pub reindex_skipped: Vec<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    databases: &'a [Vacuumed],
}

/// A database's session: its name, the client, the notices it collects.
struct Session {
    database: String,
    client: postgres::Client,
    notices: Notices,
    /// Whether the catalogs every database shares are vacuumed here: in
    /// the first database only, as they are one relation (vacuumed from
    /// two sessions at once, one would skip it as locked).
    shared: bool,
}

/// Vacuums the databases, `jobs` at a time; `Partial` (exit 1) when a
/// table failed. Connections are made on this thread, between batches:
/// the account switch of a connect applies to every thread of the
/// process.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let databases = if options.databases.is_empty() {
        all_databases(&options.target)?
    } else {
        options.databases.clone()
    };
    // At most `jobs` sessions at once: a cluster of hundreds of databases
    // must not run out of connections. Each batch is connected here, on
    // this thread, then vacuumed on its own threads.
    let mut done = Vec::new();
    for (n, batch) in databases.chunks(options.jobs.max(1)).enumerate() {
        let mut sessions = Vec::new();
        for (k, database) in batch.iter().enumerate() {
            let notices: Notices = Arc::new(Mutex::new(Vec::new()));
            let client = connect::connect_with(&options.target, database, Some(notices.clone()))?;
            sessions.push(Session {
                shared: n == 0 && k == 0,
                database: database.clone(),
                client,
                notices,
            });
        }
        if options.dry_run {
            for session in sessions {
                done.push(plan_only(options, session, out)?);
            }
        } else {
            done.extend(in_parallel(options, sessions)?);
        }
    }
    for vacuumed in &done {
        if !options.json && !options.dry_run {
            say(vacuumed, report);
        }
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            databases: &done,
        })?;
    }
    Ok(if done.iter().all(|d| d.failed.is_empty()) {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// A batch of sessions vacuumed at once, a thread each; the outcomes in
/// the sessions' order.
fn in_parallel(options: &Options, sessions: Vec<Session>) -> Result<Vec<Vacuumed>, DbError> {
    let outcomes: Vec<Result<Vacuumed, DbError>> = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .into_iter()
            .map(|session| s.spawn(|| vacuum(options, session)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(pysk_common::Error::Internal("a vacuum thread panicked".to_owned()).into())
                })
            })
            .collect()
    });
    outcomes.into_iter().collect()
}

/// A dry run's view of one database: its tables, named on `out`.
fn plan_only(
    options: &Options,
    mut session: Session,
    out: &mut dyn Write,
) -> Result<Vacuumed, DbError> {
    let tables = tables(&mut session.client, &options.target, session.shared)?;
    if !options.json {
        for table in &tables {
            writeln!(out, "would vacuum {}: {table}", session.database)
                .map_err(pysk_common::Error::Stdout)?;
        }
    }
    Ok(Vacuumed {
        database: session.database,
        tables: tables.len(),
        ..Vacuumed::default()
    })
}

/// Every database that takes connections.
fn all_databases(target: &Target) -> Result<Vec<String>, DbError> {
    let mut client = connect::connect(target, "postgres")?;
    let rows = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// One database, table by table.
fn vacuum(options: &Options, session: Session) -> Result<Vacuumed, DbError> {
    let target = &options.target;
    let started = Instant::now();
    let Session {
        database,
        mut client,
        notices,
        shared,
    } = session;
    let tables = tables(&mut client, target, shared)?;
    let mut result = Vacuumed {
        database,
        tables: tables.len(),
        ..Vacuumed::default()
    };
    client
        .batch_execute(&set_lock_timeout(options.lock_timeout))
        .map_err(|e| apply::server(target, &e))?;
    let how = if options.analyze {
        "SKIP_LOCKED, ANALYZE"
    } else {
        "SKIP_LOCKED"
    };
    for table in tables {
        notices.lock().map(|mut n| n.clear()).ok();
        match client.batch_execute(&format!("VACUUM ({how}) {table}")) {
            Ok(()) if skipped(&notices) => result.skipped.push(table),
            Ok(()) => result.vacuumed += 1,
            Err(e) if e.code().is_some_and(|c| c.code() == LOCK_NOT_AVAILABLE) => {
                result.skipped.push(table);
            }
            Err(e) => result.failed.push(format!("{table}: {}", connect::why(&e))),
        }
    }
    if options.reindex {
        reindex(&mut client, target, &mut result)?;
    }
    result.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    Ok(result)
}

/// Each user table reindexed CONCURRENTLY (the server refuses that for
/// system catalogs), within the session's lock_timeout: a table held
/// elsewhere is skipped, and the invalid `_ccnew` indexes a stopped
/// REINDEX CONCURRENTLY leaves behind — kept up to date on every write
/// until dropped — are dropped.
fn reindex(
    client: &mut postgres::Client,
    target: &Target,
    result: &mut Vacuumed,
) -> Result<(), DbError> {
    let user_tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
             ORDER BY n.nspname, c.relname",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    let mut stopped = false;
    for row in user_tables {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let name = format!("{}.{}", pg_identifier(&schema), pg_identifier(&table));
        match client.batch_execute(&format!("REINDEX TABLE CONCURRENTLY {name}")) {
            Ok(()) => result.reindexed += 1,
            Err(e) if e.code().is_some_and(|c| c.code() == LOCK_NOT_AVAILABLE) => {
                result.reindex_skipped.push(name);
                stopped = true;
            }
            Err(e) => result.failed.push(format!("{name}: {}", connect::why(&e))),
        }
    }
    if stopped {
        drop_half_built(client, target, result)?;
    }
    Ok(())
}

/// Drops the invalid `_ccnew` indexes a stopped REINDEX CONCURRENTLY left.
fn drop_half_built(
    client: &mut postgres::Client,
    target: &Target,
    result: &mut Vacuumed,
) -> Result<(), DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT i.indisvalid AND c.relname LIKE '%\\_ccnew%'",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    for row in rows {
        let (schema, index): (String, String) = (row.get(0), row.get(1));
        let name = format!("{}.{}", pg_identifier(&schema), pg_identifier(&index));
        if let Err(e) = client.batch_execute(&format!("DROP INDEX CONCURRENTLY {name}")) {
            result.failed.push(format!("{name}: {}", connect::why(&e)));
        }
    }
    Ok(())
}

/// The statement that sets the session's `lock_timeout` to `timeout`, in
/// whole milliseconds rounded up: never `0ms`, which PostgreSQL reads as
/// "wait forever".
fn set_lock_timeout(timeout: Duration) -> String {
    let ms = timeout.as_nanos().div_ceil(1_000_000).max(1);
    format!("SET lock_timeout = '{ms}ms'")
}

/// Whether the last statement's notices say a table was skipped.
fn skipped(notices: &Notices) -> bool {
    notices
        .lock()
        .map(|n| n.iter().any(|(code, _)| code == LOCK_NOT_AVAILABLE))
        .unwrap_or(false)
}

/// The database's tables and materialized views, as `schema.table`
/// quoted, but other sessions' temporary ones, and the shared catalogs
/// unless `shared`.
fn tables(
    client: &mut postgres::Client,
    target: &Target,
    shared: bool,
) -> Result<Vec<String>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' \
             AND (NOT c.relisshared OR $1) \
             ORDER BY n.nspname, c.relname",
            &[&shared],
        )
        .map_err(|e| apply::server(target, &e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let (schema, table): (String, String) = (row.get(0), row.get(1));
            format!("{}.{}", pg_identifier(&schema), pg_identifier(&table))
        })
        .collect())
}

/// A database's outcome in lines: the count, then what was skipped or
/// failed (a warning: it needs attention).
fn say(vacuumed: &Vacuumed, report: &Reporter) {
    report.info(format_args!(
        "{}: {} of {} tables vacuumed in {:.2} s",
        vacuumed.database, vacuumed.vacuumed, vacuumed.tables, vacuumed.seconds
    ));
    if !vacuumed.reindex_skipped.is_empty() {
        report.info(format_args!(
            "{}: not reindexed, held by another session: {}",
            vacuumed.database,
            vacuumed.reindex_skipped.join(", ")
        ));
    }
    if !vacuumed.skipped.is_empty() {
        report.info(format_args!(
            "{}: skipped, held by another session: {}",
            vacuumed.database,
            vacuumed.skipped.join(", ")
        ));
    }
    for failure in &vacuumed.failed {
        report.warn(format_args!("{}: {failure}", vacuumed.database));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_timeout_below_a_millisecond_never_becomes_wait_forever() {
        let sql = |nanos| set_lock_timeout(Duration::from_nanos(nanos));
        assert_eq!(sql(400_000), "SET lock_timeout = '1ms'");
        assert_eq!(sql(1), "SET lock_timeout = '1ms'");
        assert_eq!(sql(0), "SET lock_timeout = '1ms'");
        assert_eq!(sql(1_000_001), "SET lock_timeout = '2ms'");
        assert_eq!(
            set_lock_timeout(Duration::from_secs(5)),
            "SET lock_timeout = '5000ms'"
        );
    }
}
