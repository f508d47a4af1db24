//! MariaDB's dumps, as root over the socket by `unix_socket` (no password
//! exists, so none is passed): every account's grants (`SHOW CREATE USER`
//! and `SHOW GRANTS`, as SQL) and each database (`mariadb-dump
//! --single-transaction --routines --events --triggers`, without
//! `--databases`: no `CREATE DATABASE` or `USE`, so a dump restores into
//! any name). Both compressed with flate2 as they are written; a
//! database's dump counts only when the dumper exited 0 with nothing on
//! stderr, its last line is `-- Dump completed on …`, and the gzip file
//! reads back whole (to its end, CRC and length checked). Rows are counted
//! just before the dump in a consistent snapshot of our own (an
//! estimate); non-transactional tables (MyISAM, Aria, …) are named, as
//! `--single-transaction` does not make their dump consistent.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use mysql::Conn;
use mysql::prelude::Queryable;

use pysk_common::error::{cause, write_err};
use pysk_db::mysql::connect::{self, Target, why};
use pysk_db::names::mysql_identifier;

use super::file::DumpFile;
use super::set::{Entry, file_name};
use super::{db_error, judge};
use crate::child::Tail;
use crate::child::program;
use crate::error::BackupError;

/// The server's name in the manifest and the set's directory.
pub const SERVER: &str = "mariadb";

/// The system's own databases, never dumped (the grants stand for
/// `mysql`).
const SYSTEM: [&str; 4] = ["information_schema", "performance_schema", "sys", "mysql"];

/// How MariaDB shows a directory of its data directory whose name is not
/// one of its encoded database names.
const LEGACY_NAME: &str = "#mysql50#";

/// How a complete dump's last line starts.
const COMPLETED: &str = "-- Dump completed on";

/// A MariaDB server to dump, connected.
pub struct Server {
    target: Target,
    conn: Conn,
}

impl Server {
    /// Connects as root; our session waits at most `lock_wait` for a lock.
    pub fn connect(target: &Target, lock_wait: Duration) -> Result<Server, BackupError> {
        let mut conn = connect::connect(target).map_err(db_error)?;
        let sql = format!(
            "SET SESSION lock_wait_timeout = {}",
            lock_wait.as_secs().max(1)
        );
        conn.query_drop(sql).map_err(|e| unavailable(target, &e))?;
        Ok(Server {
            target: target.clone(),
            conn,
        })
    }

    /// Every database but the system's. Names starting `#mysql50#` are
    /// left out too: they are directories of the data directory that are
    /// no database of this server's format (such as `lost+found` on a
    /// mount point, shown as `#mysql50#lost+found`), which mariadb-dump
    /// cannot dump.
    pub fn databases(&mut self) -> Result<Vec<String>, BackupError> {
        let names: Vec<String> = self
            .conn
            .query("SHOW DATABASES")
            .map_err(|e| unavailable(&self.target, &e))?;
        Ok(names
            .into_iter()
            .filter(|n| !SYSTEM.contains(&n.as_str()) && !n.starts_with(LEGACY_NAME))
            .collect())
    }

    /// Every account's and role's grants into `set/mariadb/grants.sql.gz`.
    pub fn grants(&mut self, set: &Path) -> Result<Entry, BackupError> {
        let failed = |reason: String| BackupError::Failed {
            step: "the dump of MariaDB grants".into(),
            reason,
        };
        let sql = self.grants_sql().map_err(|e| failed(why(&e)))?;
        let file = format!("{SERVER}/grants.sql.gz");
        let path = set.join(&file);
        let mut gz = GzEncoder::new(DumpFile::create(&path)?, Compression::default());
        gz.write_all(sql.as_bytes()).map_err(write_err(&path))?;
        let written = finish(gz, &path, failed)?;
        Ok(Entry::written(SERVER, "grants", None, file, written))
    }

    /// The statements that make every account and role again: roles and
    /// accounts created (`IF NOT EXISTS`, so those a fresh server has are
    /// kept), then every grant, roles' first.
    fn grants_sql(&mut self) -> Result<String, mysql::Error> {
        let accounts: Vec<(String, String, String)> = self.conn.query(
            "SELECT User, Host, is_role FROM mysql.user ORDER BY is_role DESC, User, Host",
        )?;
        let mut creates = String::new();
        let mut grants = String::new();
        for (user, host, is_role) in &accounts {
            let name = match is_role.as_str() {
                "Y" => mysql_identifier(user),
                _ => format!("{}@{}", mysql_identifier(user), mysql_identifier(host)),
            };
            if is_role == "Y" {
                if user != "PUBLIC" {
                    creates.push_str(&format!("CREATE ROLE IF NOT EXISTS {name};\n"));
                }
            } else {
                let create: String = self
                    .conn
                    .query_first(format!("SHOW CREATE USER {name}"))?
                    .unwrap_or_default();
                let create = match create.strip_prefix("CREATE USER ") {
                    Some(rest) => format!("CREATE USER IF NOT EXISTS {rest}"),
                    None => create,
                };
                creates.push_str(&format!("{create};\n"));
            }
            let shown: Vec<String> = self.conn.query(format!("SHOW GRANTS FOR {name}"))?;
            for grant in shown {
                grants.push_str(&format!("{grant};\n"));
            }
        }
        Ok(format!("{creates}{grants}"))
    }

    /// The dump of `database` into `set/mariadb/<name>.sql.gz`, its rows
    /// counted just before.
    pub fn database(&mut self, database: &str, set: &Path) -> Result<Entry, BackupError> {
        let step = format!("the dump of MariaDB database {database}");
        let failed = |reason: String| BackupError::Failed {
            step: step.clone(),
            reason,
        };
        let (tables, myisam) = self
            .count(database)
            .map_err(|e| failed(format!("counting its rows: {}", why(&e))))?;
        let options = self
            .options(database)
            .map_err(|e| failed(format!("reading its character set: {}", why(&e))))?;
        // A database called `grants` must not take the grants' file.
        let stem = match file_name(database, "") {
            name if name == "grants" => "%67rants".to_owned(),
            name => name,
        };
        let file = format!("{SERVER}/{stem}.sql.gz");
        let path = set.join(&file);
        let mut gz = GzEncoder::new(DumpFile::create(&path)?, Compression::default());
        let mut dumper = program("mariadb-dump", None)
            .args(dump_args(&self.target.socket, database))
            .spawn()?;
        let mut tail = Tail::default();
        let copied = dumper.copy(&mut gz, None, &mut tail);
        judge(copied, dumper, &path, failed)?;
        completed(&tail).map_err(&failed)?;
        let written = finish(gz, &path, failed)?;
        Ok(Entry {
            tables,
            rows: "estimate".into(),
            myisam,
            options,
            ..Entry::written(SERVER, "database", Some(database), file, written)
        })
    }

    /// The database's default character set and collation (a dump
    /// without `--databases` holds neither).
    fn options(&mut self, database: &str) -> Result<BTreeMap<String, String>, mysql::Error> {
        let found: Option<(String, String)> = self.conn.exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )?;
        Ok(found
            .map(|(set, collation)| {
                BTreeMap::from([
                    ("character_set".to_owned(), set),
                    ("collation".to_owned(), collation),
                ])
            })
            .unwrap_or_default())
    }

    /// Every base table's rows in a consistent snapshot; the
    /// non-transactional tables among them.
    fn count(
        &mut self,
        database: &str,
    ) -> Result<(BTreeMap<String, u64>, Vec<String>), mysql::Error> {
        self.conn
            .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")?;
        let (tables, myisam) = count_tables(&mut self.conn, database)?;
        self.conn.query_drop("COMMIT")?;
        Ok((tables, myisam))
    }
}

/// `mariadb-dump`'s arguments for `database` over `socket`: one
/// consistent transaction, routines, events and triggers, no
/// `CREATE DATABASE`.
fn dump_args(socket: &Path, database: &str) -> [String; 11] {
    [
        "--no-defaults".to_owned(),
        format!("--socket={}", socket.display()),
        "--user=root".into(),
        "--default-character-set=utf8mb4".into(),
        "--single-transaction".into(),
        "--routines".into(),
        "--events".into(),
        "--triggers".into(),
        "--max-allowed-packet=1G".into(),
        "--".into(),
        database.to_owned(),
    ]
}

/// A dump is whole only when its last line is `-- Dump completed on …`
/// (mariadb-dump writes it last, after the data).
fn completed(tail: &Tail) -> Result<(), String> {
    match tail.last_line().starts_with(COMPLETED) {
        true => Ok(()),
        false => Err(format!(
            "its last line is not \"{COMPLETED} …\": the dump is incomplete"
        )),
    }
}

/// Every base table of `database` with its rows, and the
/// non-transactional ones among them: what the manifest records at the
/// dump and what a restore is compared with, so both sides count alike.
pub fn count_tables(
    conn: &mut Conn,
    database: &str,
) -> Result<(BTreeMap<String, u64>, Vec<String>), mysql::Error> {
    let listed: Vec<(String, Option<String>)> = conn.exec(
        "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )?;
    let mut tables = BTreeMap::new();
    let mut myisam = Vec::new();
    for (table, engine) in listed {
        let sql = format!(
            "SELECT COUNT(*) FROM {}.{}",
            mysql_identifier(database),
            mysql_identifier(&table)
        );
        let rows: u64 = conn.query_first(sql)?.unwrap_or(0);
        if !engine
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("InnoDB"))
        {
            myisam.push(table.clone());
        }
        tables.insert(table, rows);
    }
    Ok((tables, myisam))
}

/// Ends the gzip file, syncs it, and reads it back whole: every member
/// decompressed to its end, CRC and length checked. Its size and SHA-256;
/// a failed write is the file's (73), a failed read-back `failed`.
fn finish(
    gz: GzEncoder<DumpFile>,
    path: &Path,
    failed: impl Fn(String) -> BackupError,
) -> Result<(u64, String), BackupError> {
    let out = gz.finish().map_err(write_err(path))?;
    let (bytes, sha256) = out.finish()?;
    let unread = |e: io::Error| {
        failed(format!(
            "reading it back: {}: {}",
            path.display(),
            cause(&e)
        ))
    };
    read_back(path).map_err(unread)?;
    Ok((bytes, sha256))
}

/// Reads the gzip file at `path` whole: every member decompressed to its
/// end, CRC and length checked (a cut or corrupt file fails).
fn read_back(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    io::copy(
        &mut MultiGzDecoder::new(BufReader::new(file)),
        &mut io::sink(),
    )?;
    Ok(())
}

/// A statement of ours the server refused: it is there but unusable.
fn unavailable(target: &Target, e: &mysql::Error) -> BackupError {
    BackupError::Unavailable {
        what: target.name(),
        reason: why(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_gzip_file_does_not_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blog.sql.gz");
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&b"INSERT INTO posts VALUES (1);\n".repeat(1000))
            .expect("compress");
        let whole = gz.finish().expect("finish");
        std::fs::write(&path, &whole).expect("write");
        read_back(&path).expect("the whole file reads back");
        for cut in [whole.len() - 4, whole.len() / 2, 10] {
            std::fs::write(&path, &whole[..cut]).expect("write");
            let e = read_back(&path).expect_err("a cut file");
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput
                ),
                "{cut}: {e:?}"
            );
        }
    }
}
