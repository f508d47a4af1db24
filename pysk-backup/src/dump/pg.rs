//! PostgreSQL's dumps: the globals (`pg_dumpall --globals-only`: roles and
//! tablespaces) and each database (`pg_dump -Fc`), run as the superuser's
//! system account (peer authentication over the socket, no password).
//!
//! A database's dump: a session of ours (the same account, for the connect
//! only) opens a repeatable-read transaction, exports its snapshot and
//! counts every user table in it; `pg_dump --snapshot` dumps that very
//! snapshot while the session keeps it open. This process reads
//! pg_dump's output, writes it to the 0600 file and feeds the same bytes
//! to `pg_restore -f /dev/null`, which reads the whole archive back (a cut
//! or corrupt one fails it); both programs' exit status and stderr are
//! checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nix::unistd::User;
use postgres::Client;

use pysk_db::names::pg_identifier;
use pysk_db::pg::connect::{self, Target, why};

use super::file::DumpFile;
use super::set::{Entry, file_name};
use super::{db_error, judge};
use crate::child::Tail;
use crate::child::program;
use crate::error::BackupError;

/// The server's name in the manifest and the set's directory.
pub const SERVER: &str = "postgresql";

/// The last line of `pg_dumpall`'s output.
const DUMPALL_END: &str = "-- PostgreSQL database cluster dump complete\n--";

/// A PostgreSQL server to dump.
#[derive(Debug)]
pub struct Server<'a> {
    /// Where and as whom.
    pub target: &'a Target,
    /// The account the programs run as.
    pub account: User,
    /// How long pg_dump and our session wait for a table's lock.
    pub lock_wait: Duration,
}

impl<'a> Server<'a> {
    /// The server at `target`, its superuser's system account looked up.
    pub fn new(target: &'a Target, lock_wait: Duration) -> Result<Server<'a>, BackupError> {
        Ok(Server {
            target,
            account: account(target)?,
            lock_wait,
        })
    }

    /// Every database but the templates: those that take connections, to
    /// dump, and those that do not (`datallowconn` false), which pg_dump
    /// cannot dump and the run names as skipped.
    pub fn databases(&self) -> Result<(Vec<String>, Vec<String>), BackupError> {
        let mut client = connect::connect(self.target, "postgres").map_err(db_error)?;
        let sql = "SELECT datname, datallowconn FROM pg_database \
                   WHERE datname NOT IN ('template0', 'template1') ORDER BY datname";
        let rows = client
            .query(sql, &[])
            .map_err(|e| self.refused("listing the databases", &e))?;
        let (mut open, mut closed) = (Vec::new(), Vec::new());
        for row in rows {
            match row.get::<_, bool>(1) {
                true => open.push(row.get(0)),
                false => closed.push(row.get(0)),
            }
        }
        Ok((open, closed))
    }

    /// `pg_dumpall --globals-only` into `set/postgresql/globals.sql`.
    pub fn globals(&self, set: &Path) -> Result<Entry, BackupError> {
        let file = format!("{SERVER}/globals.sql");
        let mut out = DumpFile::create(&set.join(&file))?;
        let mut args = connection(self.target);
        args.push("--globals-only".into());
        let mut dumper = program("pg_dumpall", Some(&self.account))
            .args(args)
            .spawn()?;
        let mut tail = Tail::default();
        let copied = dumper.copy(&mut out, None, &mut tail);
        let failed = |reason| BackupError::Failed {
            step: "the dump of PostgreSQL globals".into(),
            reason,
        };
        judge(copied, dumper, out.path(), failed)?;
        if !tail.ends_with(DUMPALL_END) {
            return Err(failed(format!(
                "its output does not end with \"{}\"",
                DUMPALL_END.replace('\n', " ")
            )));
        }
        Ok(Entry::written(SERVER, "globals", None, file, out.finish()?))
    }

    /// `pg_dump -Fc` of `database` into `set/postgresql/<name>.dump`, read
    /// back by pg_restore as it is written, its tables counted in its own
    /// snapshot.
    pub fn database(&self, database: &str, set: &Path) -> Result<Entry, BackupError> {
        let step = format!("the dump of PostgreSQL database {database}");
        let failed = |reason: String| BackupError::Failed {
            step: step.clone(),
            reason,
        };
        let mut session = connect::connect(self.target, database).map_err(db_error)?;
        let (snapshot, tables) = self
            .snapshot(&mut session)
            .map_err(|e| failed(format!("counting its rows: {}", why(&e))))?;
        let options = options(&mut session)
            .map_err(|e| failed(format!("reading its encoding: {}", why(&e))))?;
        let file = format!("{SERVER}/{}", file_name(database, ".dump"));
        let mut out = DumpFile::create(&set.join(&file))?;
        let mut args = connection(self.target);
        args.extend([
            "--format=custom".into(),
            format!("--snapshot={snapshot}"),
            format!("--lock-wait-timeout={}", self.lock_wait.as_millis()),
            format!("--dbname=dbname={}", conninfo_value(database)),
        ]);
        let mut dumper = program("pg_dump", Some(&self.account)).args(args).spawn()?;
        let mut checker = program("pg_restore", Some(&self.account))
            .arg("--file=/dev/null")
            .piped_input()
            .no_output()
            .spawn()?;
        let feed = checker.child.stdin.take();
        let copied = dumper.copy(&mut out, feed, &mut Tail::default());
        let checked = checker.finish();
        judge(copied, dumper, out.path(), failed)?;
        checked.map_err(|e| failed(format!("reading the dump back: {e}")))?;
        session
            .batch_execute("COMMIT")
            .map_err(|e| failed(format!("ending its snapshot: {}", why(&e))))?;
        Ok(Entry {
            tables,
            options,
            ..Entry::written(SERVER, "database", Some(database), file, out.finish()?)
        })
    }

    /// Opens the session's repeatable-read transaction, exports its
    /// snapshot and counts every user table in it.
    fn snapshot(
        &self,
        session: &mut Client,
    ) -> Result<(String, BTreeMap<String, u64>), postgres::Error> {
        session.batch_execute(&format!(
            "SET application_name = 'pysk-backup'; SET lock_timeout = {}; \
             BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            self.lock_wait.as_millis()
        ))?;
        let snapshot: String = session
            .query_one("SELECT pg_export_snapshot()", &[])?
            .get(0);
        let tables = count_tables(session)?;
        Ok((snapshot, tables))
    }

    fn refused(&self, what: &str, e: &postgres::Error) -> BackupError {
        BackupError::Unavailable {
            what: self.target.socket().display().to_string(),
            reason: format!("{what}: {}", why(e)),
        }
    }
}

/// Every user table of the session's database with its rows, keyed
/// `schema.table`: what the manifest records at the dump and what a
/// restore is compared with, so both sides count alike.
pub fn count_tables(client: &mut Client) -> Result<BTreeMap<String, u64>, postgres::Error> {
    let list = "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' \
         AND n.nspname NOT LIKE 'pg\\_%' \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
             AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1, 2";
    let mut tables = BTreeMap::new();
    for row in client.query(list, &[])? {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            pg_identifier(&schema),
            pg_identifier(&table)
        );
        let count: i64 = client.query_one(sql.as_str(), &[])?.get(0);
        tables.insert(
            format!("{schema}.{table}"),
            u64::try_from(count).unwrap_or(0),
        );
    }
    Ok(tables)
}

/// The database's encoding, locale and owner, as `CREATE DATABASE` takes
/// them (the columns this server's version has).
fn options(session: &mut Client) -> Result<BTreeMap<String, String>, postgres::Error> {
    let sql = "SELECT pg_encoding_to_char(d.encoding), pg_get_userbyid(d.datdba), \
               row_to_json(d)::text FROM pg_database d WHERE d.datname = current_database()";
    let row = session.query_one(sql, &[])?;
    let (encoding, owner, json): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let columns: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&json).unwrap_or_default();
    let mut options = BTreeMap::from([
        ("encoding".to_owned(), encoding),
        ("owner".to_owned(), owner),
    ]);
    let wanted = [
        ("datcollate", "collate"),
        ("datctype", "ctype"),
        ("datlocprovider", "locale_provider"),
        ("daticulocale", "icu_locale"),
        ("datlocale", "icu_locale"),
    ];
    for (column, key) in wanted {
        if let Some(serde_json::Value::String(value)) = columns.get(column) {
            options.insert(key.to_owned(), value.clone());
        }
    }
    Ok(options)
}

/// The system account of `target`'s superuser, which PostgreSQL's
/// programs run as (peer authentication over the socket).
pub fn account(target: &Target) -> Result<User, BackupError> {
    User::from_name(&target.superuser)
        .ok()
        .flatten()
        .ok_or_else(|| BackupError::Unavailable {
            what: target.socket().display().to_string(),
            reason: format!("no system account {}", target.superuser),
        })
}

/// PostgreSQL's programs' options connecting to `target`.
pub fn connection(target: &Target) -> Vec<String> {
    vec![
        "--no-password".into(),
        format!("--host={}", target.socket_dir.display()),
        format!("--port={}", target.port),
        format!("--username={}", target.superuser),
    ]
}

/// A value in a libpq connection string: in single quotes, `\` and `'`
/// escaped with a backslash.
pub fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}
