//! What every pysk tool shares, and nothing more.
//!
//! Each concern lives in one module:
//!
//! - [`exit`]: the sysexits codes, the [`exit::ToolError`] trait each tool's
//!   error enum implements, and [`exit::run`], which turns a tool's outcome
//!   into a message on stderr and an exit code (a closed stdout pipe is a
//!   quiet, successful end).
//! - [`settings`]: the one settings layer: a tool's [`settings::Spec`]
//!   list, and typed getters where the command line beats the switch, which
//!   beats the built-in default; every bad value named where it came from.
//! - [`switches`]: the shell-compatible `serverconfig` files, merged
//!   `default` ← `<fqdn>`, and the configuration push's exclude lists.
//! - [`inventory`]: the `/etc/pysk/hosts` list of managed servers.
//! - [`hostname`]: the one rule for host names and domain-name labels.
//! - [`net`]: plain text only to loopback, unless asked for.
//! - [`tls`]: the trust anchors of every TLS client.
//! - [`marker`]: only files carrying the tool's marker are rewritten.
//! - [`atomic`]: replacing a file so it is always either old or new, never
//!   torn.
//! - [`lock`]: one run of a mutating subcommand at a time (`flock`).
//! - [`secret`]: passwords read from files that only their owner can read.
//! - [`cli`]: the options every tool shares and the `config` subcommand.
//! - [`date`]: the clock, and UTC calendar arithmetic.
//! - [`failpoint`]: crash points for the kill tests.
//! - [`diff`]: unified diffs for `--dry-run` and drift reports.
//! - [`report`]: diagnostics on stderr, honouring `--quiet` and `--verbose`,
//!   and the `--json` document printer.
//! - [`error`]: the error enum for everything this crate does, and for the
//!   failures every tool shares (read, write, stdout, a bad setting).

pub mod atomic;
pub mod cli;
pub mod date;
pub mod diff;
pub mod error;
pub mod exit;
pub mod failpoint;
pub mod hostname;
pub mod inventory;
pub mod lock;
pub mod marker;
pub mod net;
pub mod report;
pub mod secret;
pub mod settings;
pub mod switches;
pub mod tls;

pub use error::Error;
