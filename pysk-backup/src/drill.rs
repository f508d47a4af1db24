//! `pysk-backup drill [--from-backup]`: the newest dump set — the local
//! `current` set, or the one the newest backup holds — restored into
//! throw-away servers the drill starts in a temporary directory of its
//! own ([`postgres`], [`mariadb`]; never the production servers), each
//! only when the set has dumps of it. Every dump file is checked against
//! the manifest first (size, SHA-256); then each server's globals or
//! grants, then each database, then every table's rows compared with the
//! manifest (exact counts equal; estimates within 2 % or 10 rows). A
//! database whose restore fails or whose counts differ fails the drill
//! (exit 1); the others are still drilled. `<state>/drills.json` keeps
//! the last proven restore of each database. What a killed drill left is
//! swept first ([`stale`]).

pub mod mariadb;
pub mod postgres;
pub mod stale;

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use pysk_common::atomic::{self, Options as FileOptions};
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::dump::set::Entry;
use crate::dump::{mysql, pg};
use crate::engine;
use crate::error::BackupError;
use crate::fetch::{self, Fetched};
use crate::load::{self, Counts, Differs};

/// How long a throw-away server, ready by then, may take to answer a
/// connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a throw-away server may take to start.
pub(crate) const BOUND: Duration = Duration::from_secs(60);

/// The file of the last proven restores, in the state directory.
pub const DRILLS: &str = "drills.json";

/// What a drill does, resolved from the command line and the switches.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dump directory.
    pub dump_dir: PathBuf,
    /// The state directory (`drills.json`).
    pub state_dir: PathBuf,
    /// The lock file.
    pub lock: PathBuf,
    /// How long to wait for the lock.
    pub wait: Duration,
    /// The engine, when the set is taken from the backup.
    pub from_backup: Option<engine::Config>,
    /// The PostgreSQL superuser: the throw-away cluster's superuser and
    /// the system account it runs as.
    pub pg_superuser: String,
    /// Print the `--json` document.
    pub json: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Whether the set came from the backup.
    pub from_backup: bool,
    /// The set's name (`20261130T005000Z`).
    pub set: String,
    /// When the set was made.
    pub created: String,
    /// Each database drilled.
    pub databases: Vec<Drilled>,
}

/// One database's drill.
#[derive(Debug, Serialize)]
pub struct Drilled {
    /// `postgresql` or `mariadb`.
    pub server: String,
    /// The database.
    pub database: String,
    /// Whether it restored and every table's rows matched.
    pub proven: bool,
    /// Its tables, as restored.
    pub tables: usize,
    /// Its rows, as restored.
    pub rows: u64,
    /// The tables whose rows differ from the manifest's.
    pub differ: Vec<Differs>,
    /// Why it did not restore.
    pub error: Option<String>,
}

impl Drilled {
    /// The database as `drills.json` keys it: `postgresql/shop`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.server, self.database)
    }

    /// Why it failed, in words.
    fn why(&self) -> String {
        if let Some(error) = &self.error {
            return error.clone();
        }
        let count = |n: Option<u64>| n.map_or_else(|| "none".to_owned(), |n| n.to_string());
        let tables: Vec<String> = self
            .differ
            .iter()
            .map(|d| {
                format!(
                    "{} (recorded {}, restored {})",
                    d.table,
                    count(d.recorded),
                    count(d.restored)
                )
            })
            .collect();
        format!("row counts differ: {}", tables.join(", "))
    }
}

/// Runs the drill.
pub fn run(opts: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, BackupError> {
    let _lock = Lock::acquire(&opts.lock, opts.wait)?;
    stale::sweep(&std::env::temp_dir(), report);
    let fetched = match &opts.from_backup {
        Some(config) => fetch::from_backup(config, None)?,
        None => fetch::local(&opts.dump_dir)?,
    };
    report.verbose(format_args!(
        "drilling the dump set {}",
        fetched.dir.display()
    ));
    let tmp = fetch::temp_dir("drill")?;
    let mut databases = Vec::new();
    for server in [pg::SERVER, mysql::SERVER] {
        databases.extend(drill_server(server, &fetched, tmp.path(), opts, report)?);
    }
    record(opts, &fetched, &databases, report)?;
    let all_proven = !databases.is_empty() && databases.iter().all(|d| d.proven);
    if let (Some(config), true) = (&opts.from_backup, all_proven) {
        prove_backup(config, report)?;
    }
    let summary = Summary {
        from_backup: opts.from_backup.is_some(),
        set: fetched.stamp.clone(),
        created: fetched.manifest.created.clone(),
        databases,
    };
    show(&summary, opts.json, report, out)?;
    let failed: Vec<String> = summary
        .databases
        .iter()
        .filter(|d| !d.proven)
        .map(Drilled::key)
        .collect();
    if failed.is_empty() {
        return Ok(Outcome::Success);
    }
    report.warn(format_args!(
        "the drill failed for {} of {} databases: {}",
        failed.len(),
        summary.databases.len(),
        failed.join(", ")
    ));
    Ok(Outcome::Partial)
}

/// A throw-away server.
enum Throwaway {
    Pg(postgres::Postgres),
    My(mariadb::Mariadb),
}

impl Throwaway {
    fn start(server: &str, root: &Path, opts: &Options) -> Result<Throwaway, BackupError> {
        match server {
            pg::SERVER => Ok(Throwaway::Pg(postgres::Postgres::start(
                root,
                &opts.pg_superuser,
            )?)),
            _ => Ok(Throwaway::My(mariadb::Mariadb::start(root)?)),
        }
    }

    /// Loads the globals (roles) or grants.
    fn globals(&self, file: &Path) -> Result<(), String> {
        match self {
            Throwaway::Pg(pg) => pg.globals(file),
            Throwaway::My(my) => my.server.load(file, None, None),
        }
    }

    /// Makes `database` as the manifest records it (a fresh server's
    /// own, such as `postgres`, is there already, empty) and loads its
    /// dump.
    fn restore(&self, entry: &Entry, file: &Path) -> Result<(), String> {
        let database = entry.database.as_deref().unwrap_or_default();
        let said = |e: BackupError| e.to_string();
        match self {
            Throwaway::Pg(pg) => {
                if !pg.server.exists(database).map_err(said)? {
                    pg.server.create(database, &entry.options).map_err(said)?;
                }
                pg.server.load(database, file, load::pg::Into::Throwaway)
            }
            Throwaway::My(my) => {
                if !my.server.exists(database).map_err(said)? {
                    my.server.create(database, &entry.options).map_err(said)?;
                }
                my.server.load(file, Some(database), None)
            }
        }
    }

    fn count(&self, database: &str) -> Result<Counts, String> {
        match self {
            Throwaway::Pg(pg) => pg.server.count(database),
            Throwaway::My(my) => my.server.count(database),
        }
    }
}

/// One server's part: its throw-away server started (only when the set
/// has dumps of it), its globals, then each database.
fn drill_server(
    server: &str,
    fetched: &Fetched,
    root: &Path,
    opts: &Options,
    report: &Reporter,
) -> Result<Vec<Drilled>, BackupError> {
    let dumps: Vec<&Entry> = fetched
        .manifest
        .dumps
        .iter()
        .filter(|d| d.server == server && d.database.is_some())
        .collect();
    if dumps.is_empty() {
        return Ok(Vec::new());
    }
    let thrown = Throwaway::start(server, root, opts)?;
    report.verbose(format_args!("{server}: a throw-away server started"));
    let globals = fetched.globals(server).map(|g| {
        fetched
            .check(g)
            .and_then(|()| thrown.globals(&fetched.file(g)))
            .map_err(|e| format!("its {} did not restore: {e}", g.kind))
    });
    let globals_failed = match globals {
        Some(Err(why)) => Some(why),
        _ => None,
    };
    let drilled = dumps
        .into_iter()
        .map(|entry| drill_one(&thrown, fetched, entry, globals_failed.as_deref()))
        .collect();
    drop(thrown);
    Ok(drilled)
}

/// One database: its file checked, restored, its tables counted and
/// compared with the manifest.
fn drill_one(
    thrown: &Throwaway,
    fetched: &Fetched,
    entry: &Entry,
    globals_failed: Option<&str>,
) -> Drilled {
    let database = entry.database.clone().unwrap_or_default();
    let counted = match globals_failed {
        Some(why) => Err(why.to_owned()),
        None => fetched
            .check(entry)
            .and_then(|()| thrown.restore(entry, &fetched.file(entry)))
            .and_then(|()| thrown.count(&database)),
    };
    let mut drilled = Drilled {
        server: entry.server.clone(),
        database,
        proven: false,
        tables: 0,
        rows: 0,
        differ: Vec::new(),
        error: None,
    };
    match counted {
        Ok(counts) => {
            drilled.differ = load::compare(&entry.tables, &counts, entry.rows == "estimate");
            drilled.proven = drilled.differ.is_empty();
            drilled.tables = counts.len();
            drilled.rows = counts.values().sum();
        }
        Err(why) => drilled.error = Some(why),
    }
    drilled
}

/// `drills.json`: the last proven restore of each database.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Drills {
    /// Always 1.
    pub version: u32,
    /// By `server/database`.
    pub databases: BTreeMap<String, Proven>,
}

/// A database's last proven restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proven {
    /// When the drill proved it (RFC 3339, UTC).
    pub proven: String,
    /// The dump set it restored.
    pub set: String,
    /// Its tables.
    pub tables: usize,
}

/// Reads `drills.json`; a missing file is none, an unreadable one is
/// warned about and started afresh.
pub fn read_drills(state_dir: &Path, report: &Reporter) -> Drills {
    let path = state_dir.join(DRILLS);
    let parsed = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Drills::default()),
        Err(e) => Err(pysk_common::error::cause(&e)),
    };
    parsed.unwrap_or_else(|why| {
        report.warn(format_args!("{}: {why}; written afresh", path.display()));
        Drills::default()
    })
}

/// Notes each proven database in `drills.json` (atomically); the others
/// keep their last proven restore.
fn record(
    opts: &Options,
    fetched: &Fetched,
    drilled: &[Drilled],
    report: &Reporter,
) -> Result<(), BackupError> {
    let mut drills = read_drills(&opts.state_dir, report);
    drills.version = 1;
    let now = crate::run::now_rfc3339();
    for d in drilled.iter().filter(|d| d.proven) {
        let proven = Proven {
            proven: now.clone(),
            set: fetched.stamp.clone(),
            tables: d.tables,
        };
        drills.databases.insert(d.key(), proven);
    }
    let text = serde_json::to_string_pretty(&drills)
        .map_err(|e| pysk_common::Error::Internal(format!("drills.json: {e}")))?;
    crate::dump::set::make_dir(&opts.state_dir)?;
    let options = FileOptions {
        mode: Some(0o644),
        ..FileOptions::default()
    };
    atomic::replace(
        &opts.state_dir.join(DRILLS),
        format!("{text}\n").as_bytes(),
        options,
    )?;
    Ok(())
}

/// The summary: `--json` on stdout, else a line per database on stderr
/// (a failed one always, a proven one unless `-q`).
fn show(
    summary: &Summary,
    json: bool,
    report: &Reporter,
    _out: &mut dyn Write,
) -> Result<(), BackupError> {
    // The document instead of the lines, as dump --json and run --json.
    if json {
        report::print_json(summary)?;
        return Ok(());
    }
    for d in &summary.databases {
        match d.proven {
            true => report.info(format_args!(
                "{}: proven, {} tables, {} rows (set {})",
                d.key(),
                d.tables,
                d.rows,
                summary.set
            )),
            false => report.warn(format_args!("{}: {}", d.key(), d.why())),
        }
    }
    if summary.databases.is_empty() {
        report.info(format_args!(
            "the dump set {} holds no database",
            summary.set
        ));
    }
    Ok(())
}

/// Records the backup the dump set came from as proven
/// (`verified.json`, as `verify` does): every database of it restored
/// and counted, so retention keeps it until a newer one is proven. The
/// fetch restored the newest chain (duplicity) or snapshot (restic).
fn prove_backup(config: &engine::Config, report: &Reporter) -> Result<(), BackupError> {
    let status = engine::open(config)?.status()?;
    if let Some(backup) = status.newest_proof() {
        crate::verify::record(config, &backup)?;
        report.verbose(format_args!(
            "proven: {backup}, kept by retention until a newer backup is proven"
        ));
    }
    Ok(())
}

/// Stops `child`: each signal in turn, waiting its seconds for the exit,
/// then SIGKILL; the child is reaped.
pub(crate) fn stop(child: &mut Child, signals: &[(Signal, u64)]) {
    for (signal, secs) in signals {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), *signal);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(*secs) {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of a server's log, for an error.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.len() {
        0 => format!("{} is empty", path.display()),
        n => lines[n.saturating_sub(3)..].join(" / "),
    }
}
