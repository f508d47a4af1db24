//! MariaDB: reached as root through its Unix socket by `unix_socket`
//! authentication ([`connect`]), so that no password exists at all;
//! [`hash`] makes the account hashes on the client; [`setup`] removes the
//! insecure defaults of a fresh install; [`create`] makes a database with
//! its account(s); [`password`] sets an account's password; [`drop`]
//! removes a database and its account; [`check`] checks (or optimizes,
//! repairs, analyzes) every table. What they share about the server's
//! own databases and accounts, and how a grant names a database, is here.

pub mod check;
pub mod connect;
pub mod create;
pub mod drop;
pub mod hash;
pub mod password;
pub mod setup;

use crate::error::DbError;

/// Databases the server needs; never made, dropped or handed to an
/// account, and left out of `check` and `list`.
pub const SYSTEM_DATABASES: [&str; 4] =
    ["mysql", "information_schema", "performance_schema", "sys"];

/// Accounts the server needs (root reaches it by `unix_socket`, `mysql`
/// runs upgrades, `mariadb.sys` owns the system views, `PUBLIC` is the
/// role of everyone); never made, given a password or dropped.
pub const SYSTEM_ACCOUNTS: [&str; 4] = ["root", "mysql", "mariadb.sys", "PUBLIC"];

/// `user` unless it is one of [`SYSTEM_ACCOUNTS`] (in any case): refused
/// before any connection, so that root keeps its `unix_socket` login.
pub fn not_a_system_account(user: &str) -> Result<&str, DbError> {
    if SYSTEM_ACCOUNTS.iter().any(|s| s.eq_ignore_ascii_case(user)) {
        return Err(DbError::Conflict(format!(
            "{user} is an account the server needs"
        )));
    }
    Ok(user)
}

/// `database` unless it is one of [`SYSTEM_DATABASES`]: refused before
/// any connection.
pub fn not_a_system_database(database: &str) -> Result<&str, DbError> {
    if SYSTEM_DATABASES.contains(&database) {
        return Err(DbError::Conflict(format!(
            "{database} is a system database of the server"
        )));
    }
    Ok(database)
}

/// A database name as a grant names it (and `mysql.db` stores it): `_`
/// and `%` are wildcards there, so they are escaped to mean this database
/// only.
pub fn grant_pattern(database: &str) -> String {
    database
        .replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}
