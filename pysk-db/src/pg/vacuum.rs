//! `pg vacuum [--analyze] [--all | DB...]`: every table of every database
//! (but `template0`, which takes no connections) vacuumed one at a time
//! with `SKIP_LOCKED` and the session's `lock_timeout` (`db_lock_timeout`),
//! so that maintenance never queues behind a migration's lock and stalls
//! a site. A table another session holds is skipped and named: PostgreSQL
//! says so only for a table named in the statement, which is why the
//! tables are taken one by one. With `--analyze`, partitioned tables are
//! analyzed too (VACUUM has nothing to do on them, their partitions are
//! tables of their own). Runs under the state lock, as the mutating
//! subcommands do; a database that fails is named and the others go on.

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
use crate::plan;

/// SQLSTATE `lock_not_available`: a table skipped, or a lock not had in
/// time.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// SQLSTATE `undefined_table`: a table dropped since it was listed.
const UNDEFINED_TABLE: &str = "42P01";

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
    /// The lock file of mutating runs.
    pub lock: std::path::PathBuf,
    /// How long to wait for it.
    pub wait: Duration,
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
    /// Its tables (but those dropped while the run went on).
    pub tables: usize,
    /// Those done.
    pub vacuumed: usize,
    /// Those skipped at once (`SKIP_LOCKED`) because another session held
    /// them.
    pub skipped: Vec<TableName>,
    /// Those whose lock was not had within the lock timeout.
    pub timed_out: Vec<TableName>,
    /// Those the server refused, with why; or why the database could not
    /// be done at all.
    pub failed: Vec<Failure>,
    /// User tables reindexed (with `--reindex`).
    pub reindexed: usize,
    /// User tables not reindexed because another session held them (the
    /// half-built indexes such a stop leaves on them are dropped).
    pub reindex_skipped: Vec<TableName>,
}

impl Vacuumed {
    /// A database that could not be done: `why` its one failure.
    fn failed(database: &str, why: &DbError) -> Vacuumed {
        Vacuumed {
            database: database.to_owned(),
            failed: vec![Failure {
                table: None,
                why: why.to_string(),
            }],
            ..Vacuumed::default()
        }
    }
}

/// A table by its schema and name: in `--json` as the two, in lines as
/// SQL writes it (`"public"."orders"`).
#[derive(Debug, Clone, Serialize)]
pub struct TableName {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub table: String,
}

impl TableName {
    /// As SQL names it: each part quoted.
    fn sql(&self) -> String {
        format!(
            "{}.{}",
            pg_identifier(&self.schema),
            pg_identifier(&self.table)
        )
    }
}

/// A failure: of a table (`schema` and `table` beside `why` in `--json`),
/// or of the database itself.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The table, when it was one table's.
    #[serde(flatten)]
    pub table: Option<TableName>,
    /// Why, in the server's words.
    pub why: String,
}

impl Failure {
    /// A table's failure.
    fn of(table: &TableName, why: String) -> Failure {
        Failure {
            table: Some(table.clone()),
            why,
        }
    }
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

/// A table as vacuum takes it: its name, and whether it is a partitioned
/// table (analyzed, not vacuumed).
struct Table {
    name: TableName,
    partitioned: bool,
}

impl Table {
    /// The statement that does it.
    fn statement(&self, analyze: bool) -> String {
        let name = self.name.sql();
        match (self.partitioned, analyze) {
            (true, _) => format!("ANALYZE (SKIP_LOCKED) {name}"),
            (false, true) => format!("VACUUM (SKIP_LOCKED, ANALYZE) {name}"),
            (false, false) => format!("VACUUM (SKIP_LOCKED) {name}"),
        }
    }
}

/// Vacuums the databases, `jobs` at a time; `Partial` (exit 1) when a
/// table or a database failed. Connections are made on this thread,
/// between batches: the account switch of a connect applies to every
/// thread of the process.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = plan::lock(&options.lock, options.wait, options.dry_run)?;
    let databases = databases(options)?;
    // At most `jobs` sessions at once: a cluster of hundreds of databases
    // must not run out of connections.
    let mut done = Vec::new();
    for (n, batch) in databases.chunks(options.jobs.max(1)).enumerate() {
        let sessions: Vec<Opened> = batch
            .iter()
            .enumerate()
            .map(|(k, database)| open(options, database, n == 0 && k == 0))
            .collect();
        if options.dry_run {
            for session in sessions {
                done.push(match session {
                    Opened::Ready(session) => plan_only(options, session, out)?,
                    Opened::Failed(failed) => failed,
                });
            }
        } else {
            done.extend(in_parallel(options, sessions)?);
        }
    }
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            databases: &done,
        })?;
    } else if !options.dry_run {
        done.iter().for_each(|vacuumed| say(vacuumed, report));
    }
    Ok(if done.iter().all(|d| d.failed.is_empty()) {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// The databases to vacuum: every one that takes connections, or those
/// named, each checked to exist and take connections (bad input
/// otherwise, before anything is done).
fn databases(options: &Options) -> Result<Vec<String>, DbError> {
    let target = &options.target;
    let mut client = connect::connect(target, "postgres")?;
    let rows = client
        .query(
            "SELECT datname::text, datallowconn FROM pg_database ORDER BY datname",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    let found: Vec<(String, bool)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    if options.databases.is_empty() {
        return Ok(found.into_iter().filter(|d| d.1).map(|d| d.0).collect());
    }
    for database in &options.databases {
        match found.iter().find(|d| d.0 == *database) {
            None => {
                return Err(DbError::Conflict(format!(
                    "there is no database {database}"
                )));
            }
            Some((_, false)) => {
                return Err(DbError::Conflict(format!(
                    "the database {database} takes no connections"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(options.databases.clone())
}

/// A database's session, or its outcome when none could be opened.
enum Opened {
    /// Connected.
    Ready(Session),
    /// Not: why, as the database's outcome.
    Failed(Vacuumed),
}

/// A session in `database`, or its failure as an outcome (it may have
/// been dropped since it was listed).
fn open(options: &Options, database: &str, shared: bool) -> Opened {
    let notices: Notices = Arc::new(Mutex::new(Vec::new()));
    match connect::connect_with(&options.target, database, Some(notices.clone())) {
        Ok(client) => Opened::Ready(Session {
            database: database.to_owned(),
            client,
            notices,
            shared,
        }),
        Err(e) => Opened::Failed(Vacuumed::failed(database, &e)),
    }
}

/// A batch of sessions vacuumed at once, a thread each; the outcomes in
/// the sessions' order, those that could not connect among them. A
/// thread that panicked is an internal error.
fn in_parallel(options: &Options, sessions: Vec<Opened>) -> Result<Vec<Vacuumed>, DbError> {
    std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .into_iter()
            .map(|session| match session {
                Opened::Ready(session) => s.spawn(|| vacuum(options, session)),
                // Kept in its place among the others.
                Opened::Failed(failed) => s.spawn(move || failed),
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| {
                    pysk_common::Error::Internal("a vacuum thread panicked".to_owned()).into()
                })
            })
            .collect()
    })
}

/// A dry run's view of one database: its tables, named on `out` (a
/// failure to write there ends the run).
fn plan_only(
    options: &Options,
    mut session: Session,
    out: &mut dyn Write,
) -> Result<Vacuumed, DbError> {
    let target = &options.target;
    let tables = match tables(&mut session.client, target, session.shared, options.analyze) {
        Ok(tables) => tables,
        Err(e) => return Ok(Vacuumed::failed(&session.database, &e)),
    };
    if !options.json {
        for table in &tables {
            let verb = if table.partitioned {
                "analyze"
            } else {
                "vacuum"
            };
            writeln!(
                out,
                "would {verb} {}: {}",
                session.database,
                table.name.sql()
            )
            .map_err(pysk_common::Error::Stdout)?;
        }
    }
    Ok(Vacuumed {
        database: session.database,
        tables: tables.len(),
        ..Vacuumed::default()
    })
}

/// One database, table by table; a failure of the database itself (its
/// tables not listed, the timeout not set) is its outcome's one failure.
fn vacuum(options: &Options, session: Session) -> Vacuumed {
    let database = session.database.clone();
    let started = Instant::now();
    match vacuum_tables(options, session) {
        Ok(mut done) => {
            done.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
            done
        }
        Err(e) => Vacuumed::failed(&database, &e),
    }
}

/// [`vacuum`]'s work.
fn vacuum_tables(options: &Options, session: Session) -> Result<Vacuumed, DbError> {
    let target = &options.target;
    let Session {
        database,
        mut client,
        notices,
        shared,
    } = session;
    let tables = tables(&mut client, target, shared, options.analyze)?;
    let mut result = Vacuumed {
        database,
        tables: tables.len(),
        ..Vacuumed::default()
    };
    client
        .batch_execute(&set_lock_timeout(options.lock_timeout))
        .map_err(|e| apply::server(target, &e))?;
    for table in tables {
        notices.lock().map(|mut n| n.clear()).ok();
        let code = |e: &postgres::Error| e.code().map(|c| c.code().to_owned());
        match client.batch_execute(&table.statement(options.analyze)) {
            Ok(()) if skipped(&notices) => result.skipped.push(table.name),
            Ok(()) => result.vacuumed += 1,
            Err(e) => match code(&e).as_deref() {
                Some(LOCK_NOT_AVAILABLE) => result.timed_out.push(table.name),
                // Dropped since it was listed: gone, not failed.
                Some(UNDEFINED_TABLE) => result.tables -= 1,
                _ => result
                    .failed
                    .push(Failure::of(&table.name, connect::why(&e))),
            },
        }
    }
    if options.reindex {
        reindex(&mut client, target, &mut result)?;
    }
    Ok(result)
}

/// Each user table reindexed CONCURRENTLY (the server refuses that for
/// system catalogs), within the session's lock_timeout: a table held
/// elsewhere is skipped, and the invalid `_ccnew`/`_ccold` indexes a
/// stopped REINDEX CONCURRENTLY leaves on it and its TOAST table — kept
/// up to date on every write until dropped, and skipped by every later
/// REINDEX — are dropped, both those this run leaves and, before the
/// table is reindexed, those of earlier runs (so a drop that failed is
/// tried again the next time).
fn reindex(
    client: &mut postgres::Client,
    target: &Target,
    result: &mut Vacuumed,
) -> Result<(), DbError> {
    let user_tables = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
             ORDER BY n.nspname, c.relname",
            &[],
        )
        .map_err(|e| apply::server(target, &e))?;
    for row in user_tables {
        let oid: u32 = row.get(0);
        let name = TableName {
            schema: row.get(1),
            table: row.get(2),
        };
        drop_half_built(client, target, oid, &name, result)?;
        match client.batch_execute(&format!("REINDEX TABLE CONCURRENTLY {}", name.sql())) {
            Ok(()) => result.reindexed += 1,
            Err(e) if e.code().is_some_and(|c| c.code() == LOCK_NOT_AVAILABLE) => {
                drop_half_built(client, target, oid, &name, result)?;
                result.reindex_skipped.push(name);
            }
            Err(e) if e.code().is_some_and(|c| c.code() == UNDEFINED_TABLE) => {}
            Err(e) => result.failed.push(Failure::of(&name, connect::why(&e))),
        }
    }
    Ok(())
}

/// Drops the invalid `_ccnew` and `_ccold` indexes a stopped REINDEX
/// CONCURRENTLY left on the table `oid` (`table`) and its TOAST table,
/// unless another session is building an index on either right now (its
/// own REINDEX CONCURRENTLY's, say).
fn drop_half_built(
    client: &mut postgres::Client,
    target: &Target,
    oid: u32,
    table: &TableName,
    result: &mut Vacuumed,
) -> Result<(), DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN (SELECT $1::oid AS heap, reltoastrelid AS toast FROM pg_class \
                         WHERE oid = $1) t \
             WHERE i.indrelid IN (t.heap, t.toast) AND NOT i.indisvalid \
             AND c.relname ~ '_cc(new|old)[0-9]*$' \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p \
                             WHERE p.relid IN (t.heap, t.toast) AND p.pid <> pg_backend_pid())",
            &[&oid],
        )
        .map_err(|e| apply::server(target, &e))?;
    for row in rows {
        let (schema, index): (String, String) = (row.get(0), row.get(1));
        let name = format!("{}.{}", pg_identifier(&schema), pg_identifier(&index));
        if let Err(e) = client.batch_execute(&format!("DROP INDEX CONCURRENTLY {name}")) {
            let why = format!(
                "its half-built index {name} not dropped: {}",
                connect::why(&e)
            );
            result.failed.push(Failure::of(table, why));
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

/// The database's tables and materialized views (and with `analyze` its
/// partitioned tables), but other sessions' temporary ones, and the
/// shared catalogs unless `shared`.
fn tables(
    client: &mut postgres::Client,
    target: &Target,
    shared: bool,
    analyze: bool,
) -> Result<Vec<Table>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind = 'p' FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE (c.relkind IN ('r', 'm') OR (c.relkind = 'p' AND $2)) \
             AND c.relpersistence <> 't' AND (NOT c.relisshared OR $1) \
             ORDER BY n.nspname, c.relname",
            &[&shared, &analyze],
        )
        .map_err(|e| apply::server(target, &e))?;
    Ok(rows
        .iter()
        .map(|row| Table {
            name: TableName {
                schema: row.get(0),
                table: row.get(1),
            },
            partitioned: row.get(2),
        })
        .collect())
}

/// A database's outcome in lines: the count, then what was skipped, not
/// had in time or failed, each a warning (shown under `-q` too: a table
/// skipped every night needs attention).
fn say(vacuumed: &Vacuumed, report: &Reporter) {
    let db = &vacuumed.database;
    if vacuumed.failed.is_empty() || vacuumed.tables > 0 {
        report.info(format_args!(
            "{db}: {} of {} tables vacuumed in {:.2} s",
            vacuumed.vacuumed, vacuumed.tables, vacuumed.seconds
        ));
    }
    for (list, why) in [
        (
            &vacuumed.reindex_skipped,
            "not reindexed, held by another session",
        ),
        (&vacuumed.skipped, "skipped, held by another session"),
        (&vacuumed.timed_out, "not had within the lock timeout"),
    ] {
        if !list.is_empty() {
            let names: Vec<String> = list.iter().map(TableName::sql).collect();
            report.warn(format_args!("{db}: {why}: {}", names.join(", ")));
        }
    }
    for failure in &vacuumed.failed {
        match &failure.table {
            Some(table) => report.warn(format_args!("{db}: {}: {}", table.sql(), failure.why)),
            None => report.warn(format_args!("{db}: {}", failure.why)),
        }
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
