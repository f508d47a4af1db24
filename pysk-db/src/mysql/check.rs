//! `mysql check [--optimize | --repair | --analyze]`: every table of every
//! database but the server's own (system-versioned ones too), one `CHECK
//! TABLE` (or `OPTIMIZE`, `REPAIR`, `ANALYZE TABLE`) each, the rows the
//! server reports shown per table (with `-q` only its warnings and
//! errors). InnoDB has no in-place OPTIMIZE: it rebuilds the whole table,
//! which needs its size again on disk, so with `--optimize` a table larger
//! than the free space of the data directory is skipped and named rather
//! than left to fill the disk; a system-versioned table is rebuilt with its
//! history kept (`system_versioning_alter_history = KEEP`). The three that change tables run under the
//! state lock; `--dry-run` lists the statements and the skipped tables and
//! runs none.

use std::io::Write;
use std::path::Path;

use mysql::Conn;
use mysql::prelude::Queryable;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Level, Reporter};

use crate::error::DbError;
use crate::mysql::SYSTEM_DATABASES;
use crate::mysql::connect::{self, Target};
use crate::names::mysql_identifier;
use crate::plan;

/// Which statement is run on each table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// `CHECK TABLE`.
    Check,
    /// `OPTIMIZE TABLE`.
    Optimize,
    /// `REPAIR TABLE`.
    Repair,
    /// `ANALYZE TABLE`.
    Analyze,
}

impl How {
    /// Whether it changes tables (and so runs under the lock).
    fn changes(self) -> bool {
        self != How::Check
    }

    /// The verb of a dry run's line.
    fn verb(self) -> &'static str {
        match self {
            How::Check => "check",
            How::Optimize => "optimize",
            How::Repair => "repair",
            How::Analyze => "analyze",
        }
    }

    /// The statement's head.
    fn statement(self) -> &'static str {
        match self {
            How::Check => "CHECK TABLE",
            How::Optimize => "OPTIMIZE TABLE",
            How::Repair => "REPAIR TABLE",
            How::Analyze => "ANALYZE TABLE",
        }
    }
}

/// What `mysql check` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// The statement.
    pub how: How,
    /// The lock file of mutating runs.
    pub lock: std::path::PathBuf,
    /// How long to wait for it.
    pub wait: std::time::Duration,
    /// List the statements and skipped tables; run none.
    pub dry_run: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// One row the server reported for a table.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// `status`, `note`, `info`, `warning` or `error`.
    pub msg_type: String,
    /// What it says.
    pub msg_text: String,
}

impl Message {
    /// Whether it is trouble (`error` or `warning`, in any case: the
    /// server says both `Error` and `error`), which `-q` still shows.
    fn trouble(&self) -> bool {
        self.is("error") || self.is("warning")
    }

    /// Whether its type is `what`, in any case.
    fn is(&self, what: &str) -> bool {
        self.msg_type.eq_ignore_ascii_case(what)
    }
}

/// One table's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// Its database.
    pub database: String,
    /// The table.
    pub table: String,
    /// Its storage engine.
    pub engine: String,
    /// What the server reported.
    pub messages: Vec<Message>,
}

/// A table `--optimize` left alone.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Its database.
    pub database: String,
    /// The table.
    pub table: String,
    /// Its data and indexes, in bytes.
    pub bytes: u64,
    /// The free space of the data directory, in bytes.
    pub free: u64,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dry_run: bool,
    operation: How,
    tables: &'a [Checked],
    skipped: &'a [Skipped],
    errors: usize,
}

/// A row of `information_schema.TABLES`: database, table, engine, bytes.
type Table = (String, String, Option<String>, Option<u64>);

/// Runs the statement on every table; `Partial` (exit 1) when a table
/// reports an error.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, DbError> {
    let _lock = if options.how.changes() {
        plan::lock(&options.lock, options.wait, options.dry_run)?
    } else {
        None
    };
    let target = &options.target;
    let mut conn = connect::connect(target)?;
    let tables = tables(&mut conn, target)?;
    let (mut todo, skipped) = weigh(&mut conn, options, report, tables)?;
    if options.dry_run {
        return dry_run(options, out, &todo, &skipped);
    }
    if options.how == How::Optimize {
        // A system-versioned table is rebuilt as any other: the rebuild
        // changes no column, and its history rows stay as they are.
        conn.query_drop("SET SESSION system_versioning_alter_history = KEEP")
            .map_err(|e| target.refused(None, &e))?;
    }
    for checked in &mut todo {
        checked.messages = statement(&mut conn, options.how, &checked.database, &checked.table);
    }
    show(options, report, out, &todo, &skipped)
}

/// The tables to run the statement on and, with `--optimize`, those
/// larger than the free space, skipped. A dry run weighs the sizes the
/// server's statistics give; a real one analyzes each InnoDB table first.
fn weigh(
    conn: &mut Conn,
    options: &Options,
    report: &Reporter,
    mut tables: Vec<Table>,
) -> Result<(Vec<Checked>, Vec<Skipped>), DbError> {
    let target = &options.target;
    let free = if options.how == How::Optimize {
        if !options.json && tables.iter().any(|t| t.2.as_deref() == Some("InnoDB")) {
            // Nothing is wrong: an info, which -q hides.
            report.info(format_args!(
                "OPTIMIZE TABLE rebuilds an InnoDB table whole: it needs the table's size \
                 again on disk and blocks writes to it briefly at start and end"
            ));
        }
        if !options.dry_run {
            measure_innodb(conn, target, &mut tables)?;
        }
        Some(free_of_datadir(conn, target)?)
    } else {
        None
    };
    let mut todo = Vec::new();
    let mut skipped = Vec::new();
    for (database, table, engine, bytes) in tables {
        let bytes = bytes.unwrap_or(0);
        match free {
            Some(free) if bytes > free => skipped.push(Skipped {
                database,
                table,
                bytes,
                free,
            }),
            _ => todo.push(Checked {
                database,
                table,
                engine: engine.unwrap_or_default(),
                messages: Vec::new(),
            }),
        }
    }
    Ok((todo, skipped))
}

/// A table as a statement names it.
fn name(database: &str, table: &str) -> String {
    format!("{}.{}", mysql_identifier(database), mysql_identifier(table))
}

/// A dry run: each statement that would run and each table that would be
/// skipped, a line each on stdout (or the `--json` document).
fn dry_run(
    options: &Options,
    out: &mut dyn Write,
    todo: &[Checked],
    skipped: &[Skipped],
) -> Result<Outcome, DbError> {
    if options.json {
        summary(options, todo, skipped, 0)?;
        return Ok(Outcome::Success);
    }
    let mut text = String::new();
    for t in todo {
        text.push_str(&format!(
            "would {} {}.{}: {} {};\n",
            options.how.verb(),
            t.database,
            t.table,
            options.how.statement(),
            name(&t.database, &t.table)
        ));
    }
    for s in skipped {
        text.push_str(&format!(
            "would skip {}.{}: its {} bytes exceed the {} bytes free for the data directory\n",
            s.database, s.table, s.bytes, s.free
        ));
    }
    if todo.is_empty() && skipped.is_empty() {
        text.push_str("nothing to change\n");
    }
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}

/// The `--json` document.
fn summary(
    options: &Options,
    tables: &[Checked],
    skipped: &[Skipped],
    errors: usize,
) -> Result<(), DbError> {
    Ok(report::print_json(&Summary {
        dry_run: options.dry_run,
        operation: options.how,
        tables,
        skipped,
        errors,
    })?)
}

/// Every base table (system-versioned ones too) but those of the
/// server's own databases.
fn tables(conn: &mut Conn, target: &Target) -> Result<Vec<Table>, DbError> {
    conn.exec(
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE, DATA_LENGTH + INDEX_LENGTH \
             FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
             AND TABLE_SCHEMA NOT IN ({}) ORDER BY TABLE_SCHEMA, TABLE_NAME",
            ["?"; SYSTEM_DATABASES.len()].join(", ")
        ),
        SYSTEM_DATABASES.to_vec(),
    )
    .map_err(|e| target.refused(None, &e))
}

/// The true size of each InnoDB table: the sizes `information_schema`
/// gives come from statistics that are refreshed in the background and
/// may be far behind a table that just grew, so each is analyzed (cheap:
/// it samples pages) and measured again before its rebuild is weighed.
fn measure_innodb(conn: &mut Conn, target: &Target, tables: &mut [Table]) -> Result<(), DbError> {
    let refused = |e: mysql::Error| target.refused(None, &e);
    for (database, table, engine, bytes) in tables.iter_mut() {
        if engine.as_deref() != Some("InnoDB") {
            continue;
        }
        conn.query_drop(format!("ANALYZE TABLE {}", name(database, table)))
            .map_err(refused)?;
        *bytes = conn
            .exec_first(
                "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (database.as_str(), table.as_str()),
            )
            .map_err(refused)?
            .flatten();
    }
    Ok(())
}

/// The free space of the file system of the server's data directory.
fn free_of_datadir(conn: &mut Conn, target: &Target) -> Result<u64, DbError> {
    let datadir: Option<String> = conn
        .query_first("SELECT @@datadir")
        .map_err(|e| target.refused(None, &e))?;
    free_bytes(Path::new(&datadir.unwrap_or_default()))
}

/// The rows the server reports for `how` on one table; a statement the
/// server refuses is that table's error.
fn statement(conn: &mut Conn, how: How, database: &str, table: &str) -> Vec<Message> {
    let sql = format!("{} {}", how.statement(), name(database, table));
    match conn.query::<(String, String, String, String), _>(&sql) {
        Ok(rows) => rows
            .into_iter()
            .map(|(_, _, msg_type, msg_text)| Message { msg_type, msg_text })
            .collect(),
        Err(e) => vec![Message {
            msg_type: "error".to_owned(),
            msg_text: connect::why(&e),
        }],
    }
}

/// Every table's rows on stdout (with `-q` only warnings and errors: a
/// quiet run that went well prints nothing), or the `--json` document;
/// the skipped and failed tables on stderr.
fn show(
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
    done: &[Checked],
    skipped: &[Skipped],
) -> Result<Outcome, DbError> {
    let failed: Vec<&Checked> = done
        .iter()
        .filter(|c| c.messages.iter().any(|m| m.is("error")))
        .collect();
    if options.json {
        summary(options, done, skipped, failed.len())?;
    } else {
        let quiet = report.level() == Level::Quiet;
        let mut text = String::new();
        for checked in done {
            for m in &checked.messages {
                if !quiet || m.trouble() {
                    text.push_str(&format!(
                        "{}.{}: {}: {}\n",
                        checked.database, checked.table, m.msg_type, m.msg_text
                    ));
                }
            }
        }
        out.write_all(text.as_bytes())
            .map_err(pysk_common::Error::Stdout)?;
        for s in skipped {
            report.warn(format_args!(
                "skipped {}.{}: its {} bytes exceed the {} bytes free for the data directory",
                s.database, s.table, s.bytes, s.free
            ));
        }
        for f in &failed {
            report.warn(format_args!("{}.{} reports an error", f.database, f.table));
        }
    }
    Ok(if failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// The bytes an unprivileged writer may still use on `dir`'s file system.
// The field types of statvfs differ between platforms (u64 on Linux).
#[allow(clippy::useless_conversion)]
fn free_bytes(dir: &Path) -> Result<u64, DbError> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| pysk_common::error::read_err(dir)(std::io::Error::from(e)))?;
    Ok(u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size())))
}
