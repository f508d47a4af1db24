//! MariaDB's part of a restore, as root over the socket (`unix_socket`
//! authentication, no password): the grants and a database's dump
//! gunzipped and fed to the `mariadb` client, the database made first
//! with the character set and collation the manifest records (the dumps
//! hold no `CREATE DATABASE`, so they load under any name). A dump's own
//! `ALTER DATABASE \`<dumped name>\` CHARACTER SET …` lines (around a
//! routine, event or trigger made under another collation) are made to
//! name the database loaded into, so a copy under another name never
//! alters the original. Every base table counted as the dump counted it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use mysql::Conn;
use mysql::prelude::Queryable;

use std::time::Duration;

use pysk_db::mysql::connect::{self, Target, why};
use pysk_db::names::mysql_identifier;

use super::Counts;
use crate::child;
use crate::error::BackupError;

/// A MariaDB server reached over its socket.
#[derive(Debug, Clone)]
pub struct Server {
    /// The server's socket.
    pub socket: PathBuf,
    /// How long it may take to answer a connection (`db_connect_timeout`).
    pub timeout: Duration,
}

impl Server {
    /// A session as root.
    pub fn connect(&self) -> Result<Conn, BackupError> {
        connect::connect(&self.target()).map_err(crate::dump::db_error)
    }

    fn target(&self) -> Target {
        Target {
            socket: self.socket.clone(),
            timeout: self.timeout,
        }
    }

    /// Feeds the gzip file `file` to the `mariadb` client, in `database`
    /// when one is given (the dump having been made of `dumped`); any
    /// output on stderr fails it.
    pub fn load(
        &self,
        file: &Path,
        database: Option<&str>,
        dumped: Option<&str>,
    ) -> Result<(), String> {
        let input = File::open(file).map_err(|e| pysk_common::error::cause(&e))?;
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--socket={}", self.socket.display()),
            "--user=root".into(),
            "--default-character-set=utf8mb4".into(),
        ];
        if let Some(database) = database {
            args.push(format!("--database={database}"));
        }
        let cmd = child::program("mariadb", None).args(args);
        let sql = BufReader::new(MultiGzDecoder::new(BufReader::new(input)));
        let said = match (dumped, database) {
            (Some(from), Some(to)) if from != to => super::feed(cmd, Renamed::new(sql, from, to)),
            _ => super::feed(cmd, sql),
        }?;
        match said.trim().is_empty() {
            true => Ok(()),
            false => Err(format!("mariadb: {}", child::quote(&said))),
        }
    }

    /// Runs `sql` as root.
    fn execute(&self, sql: &str) -> Result<(), BackupError> {
        self.connect()?
            .query_drop(sql)
            .map_err(|e| BackupError::Failed {
                step: sql.to_owned(),
                reason: why(&e),
            })
    }

    /// Whether `database` exists.
    pub fn exists(&self, database: &str) -> Result<bool, BackupError> {
        let found: Option<String> = self
            .connect()?
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (database,),
            )
            .map_err(|e| BackupError::Unavailable {
                what: self.target().name(),
                reason: why(&e),
            })?;
        Ok(found.is_some())
    }

    /// Creates `database` with the dumped database's character set and
    /// collation (`options` of its manifest entry).
    pub fn create(
        &self,
        database: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(), BackupError> {
        let mut sql = format!("CREATE DATABASE {}", mysql_identifier(database));
        let word =
            |v: &String| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        for (key, clause) in [("character_set", "CHARACTER SET"), ("collation", "COLLATE")] {
            if let Some(value) = options.get(key).filter(|v| word(v)) {
                sql.push_str(&format!(" {clause} {value}"));
            }
        }
        self.execute(&sql)
    }

    /// Drops `database` (a restore that failed).
    pub fn drop_database(&self, database: &str) -> Result<(), BackupError> {
        self.execute(&format!("DROP DATABASE {}", mysql_identifier(database)))
    }

    /// Every base table of `database` with its rows.
    pub fn count(&self, database: &str) -> Result<Counts, String> {
        let mut conn = self.connect().map_err(|e| e.to_string())?;
        crate::dump::mysql::count_tables(&mut conn, database)
            .map(|(counts, _)| counts)
            .map_err(|e| why(&e))
    }
}

/// A dump with each `ALTER DATABASE <from>` line made to name `to`.
/// mariadb-dump writes that statement alone on a line, and no line of
/// data starts so (a row's text holds its line breaks escaped).
struct Renamed<R> {
    input: R,
    from: Vec<u8>,
    to: Vec<u8>,
    line: Vec<u8>,
    at: usize,
}

impl<R: BufRead> Renamed<R> {
    fn new(input: R, from: &str, to: &str) -> Renamed<R> {
        let statement = |name: &str| format!("ALTER DATABASE {} ", mysql_identifier(name));
        Renamed {
            input,
            from: statement(from).into_bytes(),
            to: statement(to).into_bytes(),
            line: Vec::new(),
            at: 0,
        }
    }
}

impl<R: BufRead> Read for Renamed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.line.len() {
            self.line.clear();
            self.at = 0;
            self.input.read_until(b'\n', &mut self.line)?;
            if let Some(rest) = self.line.strip_prefix(self.from.as_slice()) {
                self.line = [self.to.as_slice(), rest].concat();
            }
        }
        let n = buf.len().min(self.line.len() - self.at);
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_alter_database_lines_of_the_dumped_name_are_renamed() {
        let dump = "INSERT INTO t VALUES (1,'ALTER DATABASE `blog` x');\n\
                    ALTER DATABASE `blog` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;\n\
                    ALTER DATABASE `blog2` CHARACTER SET latin1 ;\n\
                    ALTER DATABASE `blog` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;";
        let mut out = String::new();
        Renamed::new(dump.as_bytes(), "blog", "b`copy")
            .read_to_string(&mut out)
            .expect("read");
        assert_eq!(
            out,
            "INSERT INTO t VALUES (1,'ALTER DATABASE `blog` x');\n\
             ALTER DATABASE `b``copy` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;\n\
             ALTER DATABASE `blog2` CHARACTER SET latin1 ;\n\
             ALTER DATABASE `b``copy` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;"
        );
    }
}
