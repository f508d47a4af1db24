//! MariaDB's part of a restore, as root over the socket (`unix_socket`
//! authentication, no password): the grants and a database's dump
//! gunzipped and fed to the `mariadb` client, the database made first
//! (the dumps hold no `CREATE DATABASE`, so they load under any name);
//! every base table counted as the dump counted it.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use mysql::Conn;
use mysql::prelude::Queryable;

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
}

impl Server {
    /// A session as root.
    pub fn connect(&self) -> Result<Conn, BackupError> {
        connect::connect(&self.target()).map_err(crate::dump::db_error)
    }

    fn target(&self) -> Target {
        Target {
            socket: self.socket.clone(),
        }
    }

    /// Feeds the gzip file `file` to the `mariadb` client, in `database`
    /// when one is given; any output on stderr fails it.
    pub fn load(&self, file: &Path, database: Option<&str>) -> Result<(), String> {
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
        let cmd = child::managed("mariadb", args, None);
        let said = super::feed(cmd, MultiGzDecoder::new(BufReader::new(input)))?;
        match said.trim().is_empty() {
            true => Ok(()),
            false => Err(format!("mariadb: {}", super::quote(&said))),
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

    /// Creates `database`.
    pub fn create(&self, database: &str) -> Result<(), BackupError> {
        self.execute(&format!("CREATE DATABASE {}", mysql_identifier(database)))
    }

    /// Drops `database` (a restore that failed).
    pub fn drop_database(&self, database: &str) -> Result<(), BackupError> {
        self.execute(&format!("DROP DATABASE {}", mysql_identifier(database)))
    }

    /// Every base table of `database` with its rows.
    pub fn count(&self, database: &str) -> Result<Counts, String> {
        let mut conn = self.connect().map_err(|e| e.to_string())?;
        let tables: Vec<String> = conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (database,),
            )
            .map_err(|e| why(&e))?;
        let mut counts = Counts::new();
        for table in tables {
            let sql = format!(
                "SELECT COUNT(*) FROM {}.{}",
                mysql_identifier(database),
                mysql_identifier(&table)
            );
            let rows: u64 = conn.query_first(sql).map_err(|e| why(&e))?.unwrap_or(0);
            counts.insert(table, rows);
        }
        Ok(counts)
    }
}
