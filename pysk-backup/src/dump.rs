//! `pysk-backup dump`: a new dump set of every database, each dump
//! validated before it counts, committed only when all of them were
//! ([`set`]). [`pg`] and [`mysql`] make each server's dumps, written
//! through [`file`]; [`judge`] weighs each dumper.
//!
//! Under the lock: a killed run's leftovers removed, the last good set's
//! manifest read (a server it had dumps of must still be there; a dump
//! shrinking below `backup_shrink_percent` of its last size fails unless
//! `--force`), the servers and databases chosen, then the set written and
//! committed. Any failure leaves `current` and its set as they were.

pub mod carry;
pub mod file;
pub mod mysql;
pub mod pg;
pub mod set;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use pysk_common::lock::Lock;
use pysk_common::report::Reporter;
use pysk_db::error::DbError;
use pysk_db::pg::connect::Target;

use crate::child::{CopyError, Running};
use crate::error::BackupError;
use carry::Previous;
use set::{Entry, Manifest, Staging};

/// What a dump run does, resolved from the command line and the switches.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dump directory (`current`, `sets/`).
    pub dir: PathBuf,
    /// The run's lock file.
    pub lock: PathBuf,
    /// How long to wait for another run's lock.
    pub wait: Duration,
    /// `--postgres`: PostgreSQL asked for (its socket must exist).
    pub postgres: bool,
    /// `--mysql`: MariaDB asked for (its socket must exist).
    pub mysql: bool,
    /// `--only`: only these databases.
    pub only: Vec<String>,
    /// `--exclude`: not these databases.
    pub exclude: Vec<String>,
    /// `--force`: keep a dump that shrank.
    pub force: bool,
    /// `backup_shrink_percent`.
    pub shrink_percent: u64,
    /// `backup_lock_wait_timeout`.
    pub lock_wait: Duration,
    /// PostgreSQL's socket and superuser.
    pub pg: Target,
    /// MariaDB's socket.
    pub mysql_socket: PathBuf,
    /// `--dry-run`: say what would be dumped, write nothing.
    pub dry_run: bool,
}

/// What a dump run did (or, dry, would do): the `--json` document.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The new set, now `current` (`None` when nothing was written).
    pub set: Option<PathBuf>,
    /// Every dump written, as in the manifest.
    pub dumps: Vec<Entry>,
    /// The last good set's dumps carried over into the new set (or, dry,
    /// that would be), as this run left them out.
    pub carried: Vec<Entry>,
    /// A dry run's dumps it would make.
    pub planned: Vec<Planned>,
    /// Servers left out, and why.
    pub skipped: Vec<Skipped>,
}

/// A dump to be made.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// `postgresql` or `mariadb`.
    pub server: &'static str,
    /// `globals`, `grants` or `database`.
    pub kind: &'static str,
    /// The database, for a database's dump.
    pub database: Option<String>,
}

/// A server, or one of its databases, not dumped.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// `postgresql` or `mariadb`.
    pub server: &'static str,
    /// The database, when one database is left out (not the server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Why.
    pub reason: String,
}

/// The databases of each server connected (`None`: not connected, so
/// not known), for carrying over only what is still there.
#[derive(Debug, Default)]
pub struct Listed {
    /// PostgreSQL's, those that take no connections among them.
    pub pg: Option<Vec<String>>,
    /// MariaDB's.
    pub mysql: Option<Vec<String>>,
}

impl Listed {
    /// The databases of `server`, when it was connected.
    pub fn of(&self, server: &str) -> Option<&[String]> {
        match server {
            pg::SERVER => self.pg.as_deref(),
            _ => self.mysql.as_deref(),
        }
    }
}

/// A pysk-db error as ours: a server that cannot be reached or refuses us
/// is unavailable (69).
pub fn db_error(e: DbError) -> BackupError {
    match e {
        DbError::Common(e) => BackupError::Common(e),
        DbError::Unreachable { server, reason } | DbError::Server { server, reason } => {
            BackupError::Unavailable {
                what: server,
                reason,
            }
        }
        DbError::Name(why) | DbError::Conflict(why) => BackupError::Name(why),
        DbError::NotPermitted(why) => BackupError::Denied(why),
    }
}

/// The verdict on a dumper whose output [`Running::copy`] wrote to
/// `path`. A failed write of that file comes first, as what it is (a full
/// disk: 73, the file named), since the dumper then dies of the closed
/// pipe; then the dumper's own verdict, then a failed read of its output.
pub fn judge(
    copied: Result<(), CopyError>,
    dumper: Running,
    path: &Path,
    failed: impl Fn(String) -> BackupError,
) -> Result<(), BackupError> {
    let verdict = dumper.finish();
    if let Err(CopyError::Write(e)) = copied {
        return Err(pysk_common::error::write_err(path)(e).into());
    }
    verdict.map_err(&failed)?;
    match copied {
        Err(CopyError::Read(why)) => Err(failed(format!("{}: {why}", path.display()))),
        _ => Ok(()),
    }
}

impl Options {
    /// A database both `--only` and `--exclude` name is a usage error
    /// (exit 2): the two contradict each other.
    pub fn check(&self) -> Result<(), BackupError> {
        match self.only.iter().find(|n| self.exclude.contains(n)) {
            Some(name) => Err(pysk_common::Error::option(
                "--exclude",
                format!("{name} is also named by --only; name it in one of them"),
            )
            .into()),
            None => Ok(()),
        }
    }
}

/// `pysk-backup dump`: takes the lock (a dry run only waits for a held
/// one), then [`locked`].
pub fn run(options: &Options, report: &Reporter) -> Result<Summary, BackupError> {
    options.check()?;
    let _lock = match options.dry_run {
        true => Lock::existing(&options.lock, options.wait)?,
        false => Some(Lock::acquire(&options.lock, options.wait)?),
    };
    locked(options, report)
}

/// Makes a new dump set (or, dry, says what it would hold); the caller
/// holds the lock (`run` holds its own for the whole job).
pub fn locked(options: &Options, report: &Reporter) -> Result<Summary, BackupError> {
    options.check()?;
    if !options.dry_run {
        set::clean(&options.dir, report)?;
    }
    let previous = Previous::read(&options.dir, report);
    let (mut connected, skipped) = connect(options, previous.as_ref().map(|p| &p.manifest))?;
    check_only(options, &connected, report)?;
    let plan = connected.plan(options);
    let carried = carry::carried(
        options,
        previous.as_ref(),
        (&plan, &skipped, &connected.listed),
        report,
    );
    let mut summary = Summary {
        dry_run: options.dry_run,
        set: None,
        dumps: Vec::new(),
        carried,
        planned: Vec::new(),
        skipped,
    };
    if options.dry_run || plan.is_empty() {
        summary.planned = plan;
        return Ok(summary);
    }
    let staging = Staging::create(&options.dir)?;
    for planned in &plan {
        let entry = dump_one(
            planned,
            &staging.path,
            connected.pg.as_mut(),
            connected.my.as_mut(),
        )?;
        check_shrink(options, &entry, previous.as_ref(), report)?;
        said(&entry, report);
        summary.dumps.push(entry);
    }
    if let Some(previous) = &previous {
        carry::link(previous, &summary.carried, &staging.path)?;
    }
    let mut dumps = summary.dumps.clone();
    dumps.extend(summary.carried.iter().cloned());
    let manifest = Manifest {
        version: 1,
        created: staging.created.clone(),
        host: pysk_common::cli::local_fqdn(),
        dumps: carry::ordered(dumps),
    };
    summary.set = Some(staging.commit(&manifest)?);
    Ok(summary)
}

/// The servers connected and what they hold.
#[derive(Default)]
struct Connected<'a> {
    pg: Option<pg::Server<'a>>,
    my: Option<mysql::Server>,
    /// The databases of each, to dump.
    pg_dbs: Vec<String>,
    my_dbs: Vec<String>,
    /// Every database of each, to carry over.
    listed: Listed,
    /// PostgreSQL's databases that take no connections.
    closed: Vec<String>,
}

impl<'a> Connected<'a> {
    /// Connects to each of `servers` not yet connected and lists its
    /// databases.
    fn add(&mut self, options: &'a Options, servers: Servers) -> Result<(), BackupError> {
        if servers.pg && self.pg.is_none() {
            let server = pg::Server::new(&options.pg, options.lock_wait)?;
            let (open, closed) = server.databases()?;
            self.listed.pg = Some(open.iter().chain(&closed).cloned().collect());
            (self.pg_dbs, self.closed) = (open, closed);
            self.pg = Some(server);
        }
        if servers.mysql && self.my.is_none() {
            let target = pysk_db::mysql::connect::Target {
                socket: options.mysql_socket.clone(),
                timeout: options.pg.connect_timeout,
            };
            let mut server = mysql::Server::connect(&target, options.lock_wait)?;
            self.my_dbs = server.databases()?;
            self.listed.mysql = Some(self.my_dbs.clone());
            self.my = Some(server);
        }
        Ok(())
    }

    /// Whether a server connected holds `name` (to dump).
    fn holds(&self, name: &String) -> bool {
        self.pg_dbs.contains(name) || self.my_dbs.contains(name)
    }

    /// The dumps to make, in order: each server's globals or grants, then
    /// its databases.
    fn plan(&self, options: &Options) -> Vec<Planned> {
        let mut plan = Vec::new();
        if self.pg.is_some() {
            plan.extend(planned(options, pg::SERVER, "globals", &self.pg_dbs));
        }
        if self.my.is_some() {
            plan.extend(planned(options, mysql::SERVER, "grants", &self.my_dbs));
        }
        plan
    }
}

/// The servers to dump, connected, and what is skipped. Under `--only`,
/// first only the servers the last good set says hold those databases
/// (both when one is new to it), so that a server the selection leaves
/// nothing to dump is not needed; every other server too when one of the
/// names is not found there.
fn connect<'a>(
    options: &'a Options,
    previous: Option<&Manifest>,
) -> Result<(Connected<'a>, Vec<Skipped>), BackupError> {
    let (servers_first, mut skipped) = servers(options, previous, needed(options, previous))?;
    let mut connected = Connected::default();
    connected.add(options, servers_first)?;
    if !options.only.iter().all(|n| connected.holds(n)) {
        let every = Servers {
            pg: true,
            mysql: true,
        };
        let (all, again) = servers(options, previous, every)?;
        connected.add(options, all)?;
        skipped = again;
    }
    skipped.extend(connected.closed.iter().map(|database| Skipped {
        server: pg::SERVER,
        database: Some(database.clone()),
        reason: "it takes no connections (datallowconn is false)".into(),
    }));
    Ok((connected, skipped))
}

/// Under `--only`, the servers the last good set has a dump of one of its
/// databases on; both when it has none of one of them (a new database).
fn needed(options: &Options, previous: Option<&Manifest>) -> Servers {
    let had = |server: &str, name: &String| {
        previous.is_some_and(|m| {
            m.dumps
                .iter()
                .any(|d| d.server == server && d.database.as_ref() == Some(name))
        })
    };
    let only = &options.only;
    let unknown = only
        .iter()
        .any(|n| !had(pg::SERVER, n) && !had(mysql::SERVER, n));
    Servers {
        pg: only.is_empty() || unknown || only.iter().any(|n| had(pg::SERVER, n)),
        mysql: only.is_empty() || unknown || only.iter().any(|n| had(mysql::SERVER, n)),
    }
}

/// Which servers a run dumps.
#[derive(Debug, Clone, Copy)]
struct Servers {
    pg: bool,
    mysql: bool,
}

/// The servers to dump: those asked for (their socket must exist), or
/// every one `needed` whose socket exists — a server the last good set
/// had dumps of and whose socket is gone fails the run (unless
/// `--force`), as a crashed server must not make a silently smaller
/// backup. A server not needed is left out, its dumps carried over.
fn servers(
    options: &Options,
    previous: Option<&Manifest>,
    needed: Servers,
) -> Result<(Servers, Vec<Skipped>), BackupError> {
    let asked = options.postgres || options.mysql;
    let mut skipped = Vec::new();
    let mut pick = |server: &'static str, wanted: bool, socket: &Path, needed: bool| {
        if !asked && !needed {
            return Ok(false);
        }
        let there = socket.exists();
        let had = previous.is_some_and(|m| m.dumps.iter().any(|d| d.server == server));
        match (asked, wanted, there) {
            (true, true, true) | (false, _, true) => Ok(true),
            (true, true, false) => Err(BackupError::Unavailable {
                what: socket.display().to_string(),
                reason: "no such socket: is the server running?".into(),
            }),
            (true, false, _) => Ok(false),
            (false, _, false) if had && !options.force => Err(gone(server, socket)),
            (false, _, false) => {
                let dropped = match had {
                    true => "; its dumps of the last good set dropped (--force)",
                    false => "",
                };
                skipped.push(Skipped {
                    server,
                    database: None,
                    reason: format!("no socket {}{dropped}", socket.display()),
                });
                Ok(false)
            }
        }
    };
    let pg = pick(
        pg::SERVER,
        options.postgres,
        &options.pg.socket(),
        needed.pg,
    )?;
    let mysql = pick(
        mysql::SERVER,
        options.mysql,
        &options.mysql_socket,
        needed.mysql,
    )?;
    Ok((Servers { pg, mysql }, skipped))
}

/// A server the last good set had dumps of whose socket is gone.
fn gone(server: &str, socket: &Path) -> BackupError {
    BackupError::Failed {
        step: format!("the dump of {}", display(server)),
        reason: format!(
            "its socket {} is gone, but the last good dump set has its dumps \
             (--force drops them; --postgres or --mysql carries them over)",
            socket.display()
        ),
    }
}

/// `--only` must name databases that are there (and take connections);
/// `--exclude` naming none is warned about.
fn check_only(
    options: &Options,
    connected: &Connected<'_>,
    report: &Reporter,
) -> Result<(), BackupError> {
    let listed = &connected.listed;
    let on = |server: &str, name: &String| listed.of(server).is_some_and(|l| l.contains(name));
    let known = |name: &String| on(pg::SERVER, name) || on(mysql::SERVER, name);
    if let Some(name) = options.only.iter().find(|n| !connected.holds(n)) {
        let why = match known(name) {
            true => "it takes no connections (datallowconn is false)",
            false => "no such database on the servers dumped",
        };
        return Err(BackupError::Name(format!("--only {name}: {why}")));
    }
    for name in options.exclude.iter().filter(|n| !known(n)) {
        report.warn(format_args!("--exclude {name}: no such database"));
    }
    Ok(())
}

/// A server's dumps: its globals or grants, then each database chosen;
/// none when `--only` leaves none of its databases.
fn planned(
    options: &Options,
    server: &'static str,
    first: &'static str,
    databases: &[String],
) -> Vec<Planned> {
    let chosen: Vec<&String> = databases
        .iter()
        .filter(|d| options.only.is_empty() || options.only.contains(d))
        .filter(|d| !options.exclude.contains(d))
        .collect();
    if !options.only.is_empty() && chosen.is_empty() {
        return Vec::new();
    }
    let mut plan = vec![Planned {
        server,
        kind: first,
        database: None,
    }];
    plan.extend(chosen.into_iter().map(|d| Planned {
        server,
        kind: "database",
        database: Some(d.clone()),
    }));
    plan
}

/// Makes one planned dump in the staging directory `set`.
fn dump_one(
    planned: &Planned,
    set: &Path,
    pg: Option<&mut pg::Server<'_>>,
    my: Option<&mut mysql::Server>,
) -> Result<Entry, BackupError> {
    set::make_dir(&set.join(planned.server))?;
    let missing = || {
        BackupError::from(pysk_common::Error::Internal(format!(
            "{planned:?}: no server"
        )))
    };
    match (planned.server, planned.database.as_deref()) {
        (pg::SERVER, None) => pg.ok_or_else(missing)?.globals(set),
        (pg::SERVER, Some(db)) => pg.ok_or_else(missing)?.database(db, set),
        (_, None) => my.ok_or_else(missing)?.grants(set),
        (_, Some(db)) => my.ok_or_else(missing)?.database(db, set),
    }
}

/// A dump smaller than `backup_shrink_percent` of the same dump in the
/// last good set fails the run, unless `--force` (then a warning).
fn check_shrink(
    options: &Options,
    entry: &Entry,
    previous: Option<&Previous>,
    report: &Reporter,
) -> Result<(), BackupError> {
    let dumps = previous.iter().flat_map(|p| &p.manifest.dumps);
    let Some(before) = dumps.into_iter().find(|d| d.same_dump(entry)) else {
        return Ok(());
    };
    if u128::from(entry.bytes) * 100
        >= u128::from(before.bytes) * u128::from(options.shrink_percent)
    {
        return Ok(());
    }
    let what = format!(
        "{} bytes, less than {} % of the last good dump's {} bytes",
        entry.bytes, options.shrink_percent, before.bytes
    );
    if options.force {
        report.warn(format_args!("{}: {what}; kept (--force)", step(entry)));
        return Ok(());
    }
    Err(BackupError::Failed {
        step: step(entry),
        reason: format!("{what} (backup_shrink_percent); keep it with --force"),
    })
}

/// A dump in words: "the dump of PostgreSQL database shop".
fn step(entry: &Entry) -> String {
    format!(
        "the dump of {}",
        named(&entry.server, &entry.kind, entry.database.as_deref())
    )
}

/// What a dump holds, in words: "PostgreSQL database shop", "MariaDB
/// grants".
fn named(server: &str, kind: &str, database: Option<&str>) -> String {
    let server = display(server);
    match database {
        Some(db) => format!("{server} database {db}"),
        None => format!("{server} {kind}"),
    }
}

/// A server's name in messages.
fn display(server: &str) -> &str {
    match server {
        pg::SERVER => "PostgreSQL",
        mysql::SERVER => "MariaDB",
        other => other,
    }
}

/// A line per dump with `-v`; the non-transactional tables unless `-q`
/// (a lasting property of those tables, not trouble of this run: the
/// manifest and `--json` keep them as `myisam`).
fn said(entry: &Entry, report: &Reporter) {
    let rows: u64 = entry.tables.values().sum();
    report.verbose(format_args!(
        "{}: {} ({} bytes, {} tables, {rows} rows)",
        step(entry),
        entry.file,
        entry.bytes,
        entry.tables.len()
    ));
    if !entry.myisam.is_empty() {
        report.info(format_args!(
            "{}: not transactional, so not consistent with the rest of the dump: {}",
            step(entry),
            entry.myisam.join(", ")
        ));
    }
}

/// Prints the summary: `--json` on stdout; else a dry run's plan on
/// stdout, a real run's result on stderr (hidden by `-q`).
pub fn show(
    summary: &Summary,
    json: bool,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(), BackupError> {
    if json {
        pysk_common::report::print_json(summary)?;
        return Ok(());
    }
    for skipped in &summary.skipped {
        let what = match &skipped.database {
            Some(db) => format!("{} database {db}", display(skipped.server)),
            None => display(skipped.server).to_owned(),
        };
        report.info(format_args!("{what}: skipped, {}", skipped.reason));
    }
    let stdout = |e| BackupError::from(pysk_common::Error::Stdout(e));
    for p in &summary.planned {
        let what = named(p.server, p.kind, p.database.as_deref());
        writeln!(out, "would dump {what}").map_err(stdout)?;
    }
    for c in &summary.carried {
        let what = named(&c.server, &c.kind, c.database.as_deref());
        let from = c.from.as_deref().unwrap_or_default();
        match summary.dry_run {
            true => writeln!(out, "would carry over {what} from set {from}").map_err(stdout)?,
            false => report.info(format_args!("carried over from set {from}: {what}")),
        }
    }
    match &summary.set {
        Some(set) => report.info(format_args!(
            "{}: {} dumps, {} bytes, {} carried over",
            set.display(),
            summary.dumps.len(),
            summary.dumps.iter().map(|d| d.bytes).sum::<u64>(),
            summary.carried.len()
        )),
        None if !summary.dry_run => report.info("no database server to dump; nothing written"),
        None => {}
    }
    Ok(())
}
