//! MariaDB: reached as root through its Unix socket by `unix_socket`
//! authentication ([`connect`]), so that no password exists at all;
//! [`hash`] makes the account hashes on the client; [`setup`] removes the
//! insecure defaults of a fresh install; [`create`] makes a database with
//! its account(s); [`password`] sets an account's password; [`drop`]
//! removes a database and its account; [`check`] checks (or optimizes,
//! repairs, analyzes) every table.

pub mod check;
pub mod connect;
pub mod create;
pub mod drop;
pub mod hash;
pub mod password;
pub mod setup;
