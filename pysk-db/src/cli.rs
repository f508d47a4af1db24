//! The command line of `pysk-db`.

use clap::{Parser, Subcommand};

use pysk_common::cli::{CommonArgs, DryRunArgs, JsonArgs, WaitArgs};
use pysk_common::exit;
use pysk_common::settings;

use crate::settings::SWITCHES;

/// The tool's name, written once: clap, the reporter and `main` use it.
pub const NAME: &str = env!("CARGO_PKG_NAME");

/// Every exit code the tool can return, and what it means here.
const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "ok"),
    (exit::USAGE, "usage: a bad option"),
    (
        exit::DATAERR,
        "a database or account name the name rule refuses; nothing changed",
    ),
    (
        exit::UNAVAILABLE,
        "a server cannot be reached or refused a statement (named by its socket)",
    ),
    (exit::SOFTWARE, "internal error (please report it)"),
    (
        exit::CANTCREAT,
        "the state directory or its lock file cannot be written",
    ),
    (
        exit::TEMPFAIL,
        "another run holds the lock; nothing changed",
    ),
    (exit::IOERR, "an I/O error (stdout closed, a disk error)"),
    (exit::CONFIG, "bad configuration: a switch"),
];

/// pysk-db: PostgreSQL and MariaDB setup and upkeep
#[derive(Debug, Parser)]
#[command(version, after_help = settings::help(SWITCHES, &exit::help(EXIT_CODES)))]
pub struct Cli {
    /// The options every pysk tool shares.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// PostgreSQL, reached as its superuser through the Unix socket
    #[command(subcommand)]
    Pg(PgCommand),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-db --host db1.example.org config > /tmp/switches.sh")]
    Config,
}

/// The PostgreSQL subcommands.
#[derive(Debug, Subcommand)]
pub enum PgCommand {
    /// Take back what a fresh cluster grants everyone
    #[command(after_help = "\
Example:
  pysk-db pg setup --dry-run

PUBLIC keeps only CONNECT on template1 (every new database is its copy),
and loses CREATE on the schema public of every database that still grants
it (PostgreSQL 14 and older). A second run changes nothing and says so.")]
    Setup(SetupArgs),
}

/// The options of a `setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_help_lists_every_exit_code() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for (code, _) in EXIT_CODES {
            assert!(help.contains(&format!("\n  {code:>2}  ")), "{code}");
        }
        assert!(help.contains("db_wait=\"0\"  [option --wait]"), "{help}");
        assert_eq!(Cli::command().get_name(), NAME);
    }
}
