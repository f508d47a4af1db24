//! What every pysk tool shares, and nothing more.
//!
//! Each concern lives in one module:
//!
//! - [`exit`]: the sysexits codes, the [`exit::ToolError`] trait each tool's
//!   error enum implements, and [`exit::run`], which turns a tool's outcome
//!   into a message on stderr and an exit code (a closed stdout pipe is a
//!   quiet, successful end).
//! - [`switches`]: the shell-compatible `serverconfig` files, merged
//!   `default` ← `<fqdn>`, with typed getters that carry built-in defaults.
//! - [`inventory`]: the `/etc/pysk/hosts` list of managed servers.
//! - [`atomic`]: replacing a file so it is always either old or new, never
//!   torn.
//! - [`lock`]: one run of a mutating subcommand at a time (`flock`).
//! - [`secret`]: passwords read from files that only their owner can read.
//! - [`cli`]: the options every tool shares and the `config` subcommand.
//! - [`date`]: UTC calendar arithmetic for timestamps and serials.
//! - [`diff`]: unified diffs for `--dry-run` and drift reports.
//! - [`report`]: diagnostics on stderr, honouring `--quiet` and `--verbose`.
//! - [`error`]: the error enum for everything this crate does.

pub mod atomic;
pub mod cli;
pub mod date;
pub mod diff;
pub mod error;
pub mod exit;
pub mod inventory;
pub mod lock;
pub mod report;
pub mod secret;
pub mod switches;

pub use error::Error;
