//! `pysk-backup restore-db NAME [--time T] [--as NEWNAME] [--dry-run]`:
//! one database's dump restored into its production server (the
//! configured sockets) under NAME or NEWNAME, which must not exist there
//! (65 otherwise, nothing changed). The dump comes from the local
//! `current` set, or with `--time` from the dump set as the backup held
//! it then (restored into a temporary directory first); its file is
//! checked against the manifest before the server sees it.
//!
//! PostgreSQL: the database made from `template0` with the dumped one's
//! encoding and locale, owned by its owner when that role exists (else
//! the superuser); `pg_restore --exit-on-error --single-transaction` as the
//! superuser keeps every object's owner and grants as dumped, so the
//! roles must exist (the set's `globals.sql` holds them): a restore
//! naming a missing role fails whole. MariaDB: `CREATE DATABASE` with
//! the dumped one's character set and collation, the dump loaded as root
//! (its `ALTER DATABASE` lines made to name NEWNAME); grants are per database name, so a copy under
//! NEWNAME has none of the original's. A restore that fails drops the
//! database it made, so nothing is left half done.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;
use pysk_db::names::Rule;
use pysk_db::pg::connect::Target;

use crate::dump::set::Entry;
use crate::dump::{mysql, pg};
use crate::engine;
use crate::error::BackupError;
use crate::fetch::{self, Fetched};
use crate::load;

/// What `restore-db` does, resolved from the command line and the
/// switches.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dump directory (the local `current` set).
    pub dump_dir: PathBuf,
    /// The lock file.
    pub lock: PathBuf,
    /// How long to wait for the lock.
    pub wait: Duration,
    /// The database as dumped: `shop`, or `postgresql/shop` when both
    /// servers have one of that name.
    pub name: String,
    /// `--time` and the engine: the dump set as the backup held it then.
    pub from_backup: Option<(String, engine::Config)>,
    /// `--as`: the name to restore under.
    pub as_name: Option<String>,
    /// `db_name_pattern`: the name the database gets must follow it.
    pub rule: Rule,
    /// PostgreSQL's socket and superuser.
    pub pg: Target,
    /// MariaDB's socket.
    pub mysql_socket: PathBuf,
    /// Say what would be done; change nothing.
    pub dry_run: bool,
}

/// Restores the database.
pub fn run(opts: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, BackupError> {
    let _lock = match opts.dry_run {
        true => Lock::existing(&opts.lock, opts.wait)?,
        false => Some(Lock::acquire(&opts.lock, opts.wait)?),
    };
    let fetched = match &opts.from_backup {
        Some((time, config)) => fetch::from_backup(config, Some(time))?,
        None => fetch::local(&opts.dump_dir)?,
    };
    let entry = find(&fetched, &opts.name)?;
    let source = entry.database.as_deref().unwrap_or_default();
    let target = opts.as_name.as_deref().unwrap_or(source);
    opts.rule
        .check("database", target)
        .map_err(BackupError::Name)?;
    let server = Production::new(&entry.server, opts)?;
    if server.exists(target)? {
        return Err(BackupError::Name(format!(
            "{} database {target} exists already; restore under another name with --as",
            server.name()
        )));
    }
    let step = format!("the restore of {} database {source}", server.name());
    fetched
        .check(entry)
        .map_err(|reason| load::failed(&step, reason))?;
    let what = format!(
        "{} database {source} of the dump set {} as {target}",
        server.name(),
        fetched.stamp
    );
    if opts.dry_run {
        writeln!(out, "would restore {what}").map_err(pysk_common::Error::Stdout)?;
        return Ok(Outcome::Success);
    }
    server.create(target, &entry.options)?;
    if let Err(reason) = server.load(target, source, &fetched.file(entry)) {
        if let Err(e) = server.drop_database(target) {
            report.warn(format_args!("dropping the half-restored {target}: {e}"));
        }
        return Err(load::failed(&step, reason));
    }
    report.info(format_args!("restored {what}"));
    Ok(Outcome::Success)
}

/// The dump of `name` (`db` or `server/db`) in the set.
fn find<'a>(fetched: &'a Fetched, name: &str) -> Result<&'a Entry, BackupError> {
    let (server, database) = match name.split_once('/') {
        Some((s, db)) if s == pg::SERVER || s == mysql::SERVER => (Some(s), db),
        _ => (None, name),
    };
    let found: Vec<&Entry> = fetched
        .manifest
        .dumps
        .iter()
        .filter(|d| d.database.as_deref() == Some(database))
        .filter(|d| server.is_none_or(|s| d.server == s))
        .collect();
    match found[..] {
        [entry] => Ok(entry),
        [] => {
            let held: Vec<String> = fetched
                .manifest
                .dumps
                .iter()
                .filter_map(|d| Some(format!("{}/{}", d.server, d.database.as_deref()?)))
                .collect();
            Err(BackupError::Name(format!(
                "{name}: no such database in the dump set {} (it holds {})",
                fetched.stamp,
                match held.is_empty() {
                    true => "none".to_owned(),
                    false => held.join(", "),
                }
            )))
        }
        _ => Err(BackupError::Name(format!(
            "{name}: both servers have a database of that name; say {}/{name} or {}/{name}",
            pg::SERVER,
            mysql::SERVER
        ))),
    }
}

/// The production server a dump goes back to.
enum Production {
    Pg(load::pg::Server),
    My(load::mysql::Server),
}

impl Production {
    fn new(server: &str, opts: &Options) -> Result<Production, BackupError> {
        match server {
            pg::SERVER => Ok(Production::Pg(load::pg::Server::new(opts.pg.clone())?)),
            _ => Ok(Production::My(load::mysql::Server {
                socket: opts.mysql_socket.clone(),
                timeout: opts.pg.connect_timeout,
            })),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Production::Pg(_) => "PostgreSQL",
            Production::My(_) => "MariaDB",
        }
    }

    fn exists(&self, database: &str) -> Result<bool, BackupError> {
        match self {
            Production::Pg(s) => s.exists(database),
            Production::My(s) => s.exists(database),
        }
    }

    fn create(
        &self,
        database: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(), BackupError> {
        match self {
            Production::Pg(s) => s.create(database, options),
            Production::My(s) => s.create(database, options),
        }
    }

    fn load(&self, database: &str, dumped: &str, file: &std::path::Path) -> Result<(), String> {
        match self {
            Production::Pg(s) => s.load(database, file, load::pg::Into::Production),
            Production::My(s) => s.load(file, Some(database), Some(dumped)),
        }
    }

    fn drop_database(&self, database: &str) -> Result<(), BackupError> {
        match self {
            Production::Pg(s) => s.drop_database(database),
            Production::My(s) => s.drop_database(database),
        }
    }
}
