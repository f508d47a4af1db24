//! PostgreSQL's part of a restore: the globals by `psql`, a database made
//! (from `template0`, as `pg_restore --create` would) and its dump loaded
//! by `pg_restore --exit-on-error`, each client run as the superuser's
//! system account (peer authentication over the socket); every user
//! table counted as the dump counted it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::unistd::User;

use pysk_db::names::pg_identifier;
use pysk_db::pg::connect::{self, Target, why};

use super::Counts;
use crate::child::{self, Child};
use crate::dump::pg;
use crate::error::BackupError;

/// Where Debian installs each PostgreSQL version's programs.
const PG_LIB: &str = "/usr/lib/postgresql";

/// The kind of server a dump is loaded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Into {
    /// The production server (`restore-db`).
    Production,
    /// A drill's throw-away server.
    Throwaway,
}

/// A PostgreSQL server and how its clients reach it.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its socket and superuser.
    pub target: Target,
    /// The superuser's system account, which the clients run as.
    pub account: User,
}

impl Server {
    /// The server at `target`, its superuser's system account looked up.
    pub fn new(target: Target) -> Result<Server, BackupError> {
        let account = pg::account(&target)?;
        Ok(Server { target, account })
    }

    /// `program` of the newest PostgreSQL, run as the superuser's account
    /// with the connection options and `args`.
    fn client(&self, program: &str, args: &[String]) -> Child {
        child::program(&program_path(program), Some(&self.account))
            .args(pg::connection(&self.target))
            .args(args)
    }

    /// Runs the globals (roles, tablespaces) `input` gives with `psql`.
    /// The one error allowed is the superuser's own role, which every
    /// cluster has.
    pub fn globals(&self, input: impl Read) -> Result<(), String> {
        let args = ["-X", "-q", "--dbname=postgres", "--file=-"].map(str::to_owned);
        let said = super::feed(self.client("psql", &args), input)?;
        let known = format!("ERROR:  role \"{}\" already exists", self.target.superuser);
        let other: Vec<&str> = said
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.ends_with(&known))
            .collect();
        match other.is_empty() {
            true => Ok(()),
            false => Err(format!("psql: {}", child::quote(&other.join("\n")))),
        }
    }

    /// Loads the `pg_dump -Fc` archive `file` into `database` (which
    /// must exist), stopping at the first error: into production in one
    /// transaction; into a throw-away server without tablespaces (its
    /// tables in its own directory, never in a production tablespace's).
    pub fn load(&self, database: &str, file: &Path, into: Into) -> Result<(), String> {
        let input = File::open(file).map_err(|e| pysk_common::error::cause(&e))?;
        let mut args = vec![
            format!("--dbname=dbname={}", pg::conninfo_value(database)),
            "--exit-on-error".to_owned(),
        ];
        args.push(match into {
            Into::Production => "--single-transaction".into(),
            Into::Throwaway => "--no-tablespaces".into(),
        });
        let said = super::feed(self.client("pg_restore", &args), input)?;
        match said.trim().is_empty() {
            true => Ok(()),
            false => Err(format!("pg_restore: {}", child::quote(&said))),
        }
    }

    /// Runs `sql` in database `postgres` as the superuser.
    fn execute(&self, sql: &str) -> Result<(), BackupError> {
        let mut client =
            connect::connect(&self.target, "postgres").map_err(crate::dump::db_error)?;
        client.batch_execute(sql).map_err(|e| BackupError::Failed {
            step: sql.to_owned(),
            reason: why(&e),
        })
    }

    /// Whether `database` exists.
    pub fn exists(&self, database: &str) -> Result<bool, BackupError> {
        let mut client =
            connect::connect(&self.target, "postgres").map_err(crate::dump::db_error)?;
        let sql = "SELECT 1 FROM pg_database WHERE datname = $1";
        let rows = client
            .query(sql, &[&database])
            .map_err(|e| BackupError::Unavailable {
                what: self.target.socket().display().to_string(),
                reason: why(&e),
            })?;
        Ok(!rows.is_empty())
    }

    /// Creates `database` from `template0` as the dumped database was
    /// made (`options` of its manifest entry): its encoding and locale,
    /// and its owner when that role exists here (else the superuser).
    pub fn create(
        &self,
        database: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(), BackupError> {
        let mut sql = format!(
            "CREATE DATABASE {} TEMPLATE template0",
            pg_identifier(database)
        );
        let clauses = [
            ("encoding", "ENCODING"),
            ("collate", "LC_COLLATE"),
            ("ctype", "LC_CTYPE"),
        ];
        for (key, clause) in clauses {
            if let Some(value) = options.get(key) {
                sql.push_str(&format!(" {clause} {}", pg_literal(value)));
            }
        }
        if options.get("locale_provider").map(String::as_str) == Some("i") {
            sql.push_str(" LOCALE_PROVIDER icu");
            if let Some(locale) = options.get("icu_locale") {
                sql.push_str(&format!(" ICU_LOCALE {}", pg_literal(locale)));
            }
        }
        if let Some(owner) = options.get("owner")
            && self.role_exists(owner)?
        {
            sql.push_str(&format!(" OWNER {}", pg_identifier(owner)));
        }
        self.execute(&sql)
    }

    /// Whether the role `name` exists.
    fn role_exists(&self, name: &str) -> Result<bool, BackupError> {
        let mut client =
            connect::connect(&self.target, "postgres").map_err(crate::dump::db_error)?;
        let sql = "SELECT 1 FROM pg_roles WHERE rolname = $1";
        let rows = client
            .query(sql, &[&name])
            .map_err(|e| BackupError::Unavailable {
                what: self.target.socket().display().to_string(),
                reason: why(&e),
            })?;
        Ok(!rows.is_empty())
    }

    /// Drops `database` (a restore that failed).
    pub fn drop_database(&self, database: &str) -> Result<(), BackupError> {
        self.execute(&format!("DROP DATABASE {}", pg_identifier(database)))
    }

    /// Every user table of `database` with its rows, keyed `schema.table`
    /// as the dump's manifest keys them.
    pub fn count(&self, database: &str) -> Result<Counts, String> {
        let mut client = connect::connect(&self.target, database).map_err(|e| e.to_string())?;
        pg::count_tables(&mut client).map_err(|e| why(&e))
    }
}

/// The `bin` directory of the newest PostgreSQL below
/// `/usr/lib/postgresql` (Debian keeps `initdb` and `postgres` there,
/// off `PATH`).
pub fn bin_dir() -> Option<PathBuf> {
    let version = |name: &str| -> Option<Vec<u32>> {
        name.split('.').map(|part| part.parse().ok()).collect()
    };
    fs::read_dir(PG_LIB)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = version(&e.file_name().into_string().ok()?)?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// `program` of the newest PostgreSQL when there is one, else as `PATH`
/// finds it.
pub fn program_path(program: &str) -> String {
    bin_dir()
        .map(|bin| bin.join(program))
        .filter(|p| p.is_file())
        .map_or_else(|| program.to_owned(), |p| p.display().to_string())
}

/// A string literal (`standard_conforming_strings` on: a backslash is
/// itself), a quote doubled.
fn pg_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
