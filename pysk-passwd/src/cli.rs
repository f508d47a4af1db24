//! The command line of `pysk-passwd`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use pysk_common::cli::CommonArgs;
use pysk_common::switches;

/// The exit codes, for `--help`.
const EXIT_CODES: &str = "\
Exit codes: 0 ok, 1 check found drift or a home needs attention (reported),
2 usage, 65 database rejected (nothing written), 66 a file missing,
73/74 cannot write, 75 the account files are locked by another program,
77 permission denied, 78 bad config.";

/// pysk-passwd: the control panel's users in passwd, group and shadow
#[derive(Debug, Parser)]
#[command(name = "pysk-passwd", version, after_help = switches::help(crate::SWITCHES, EXIT_CODES))]
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
    /// Make passwd, group, shadow, gshadow, the chroot list and the homes
    /// match the user database
    #[command(after_help = "\
Example (from cron; silent unless something changed or needs attention):
  panel-export-users | pysk-passwd -q sync --users -
  pysk-passwd sync --users users.json --dry-run   # what it would change

A database with any problem is rejected whole: each problem is listed and
nothing is written (exit 65).")]
    Sync(SyncArgs),
    /// Exit 0 when the files match the database, 1 with the differences
    #[command(after_help = "\
Example (monitoring):
  pysk-passwd check --users /var/lib/panel/users.json || echo drift")]
    Check(CheckArgs),
    /// Write the users' name:hash lines for the panel's web login
    #[command(after_help = "\
Example:
  pysk-passwd htpasswd --users users.json --output /etc/apache2/panel.htpasswd

Locked users (hash starting with ! or *) and FTP accounts are left out.")]
    Htpasswd(HtpasswdArgs),
    /// Print the effective switches (defaults included) in shell syntax
    Config,
}

/// Where the database and the files are.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The user database (JSON version 1), or - for stdin
    #[arg(long, value_name = "FILE")]
    pub users: PathBuf,
    /// Operate on DIR/etc and DIR/home instead of the live system
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// The options of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Database and root.
    #[command(flatten)]
    pub target: Target,
    /// Print what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Accept a database that removes more than half of the managed
    /// accounts (and more than five)
    #[arg(long)]
    pub force: bool,
    /// Wait this long for the account files' locks, then exit 75
    /// [switch: passwd_lock_timeout]
    #[arg(long, value_name = "SECS")]
    pub lock_timeout: Option<u64>,
}

/// The options of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Database and root.
    #[command(flatten)]
    pub target: Target,
}

/// The options of `htpasswd`.
#[derive(Debug, clap::Args)]
pub struct HtpasswdArgs {
    /// The user database (JSON version 1), or - for stdin
    #[arg(long, value_name = "FILE")]
    pub users: PathBuf,
    /// Write here (atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}
