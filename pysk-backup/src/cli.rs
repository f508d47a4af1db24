//! The command line of `pysk-backup`.

use std::path::PathBuf;

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
    (
        exit::PARTIAL,
        "a step failed (a dump, its check, the backup, a drill) or the backup is damaged: \
         named; the last good dump set and backup are kept, nothing is pruned",
    ),
    (exit::USAGE, "usage: a bad option"),
    (
        exit::DATAERR,
        "a database that is not there, or a restore target that is not empty; nothing changed",
    ),
    (exit::NOINPUT, "an input file is missing"),
    (
        exit::UNAVAILABLE,
        "a database server, the backup target or a program (duplicity, restic, pg_dump, \
         mariadb-dump) cannot be reached or run",
    ),
    (exit::SOFTWARE, "internal error (please report it)"),
    (exit::CANTCREAT, "a file or directory cannot be written"),
    (
        exit::IOERR,
        "an I/O error (writing stdout failed, a disk error)",
    ),
    (
        exit::TEMPFAIL,
        "another run holds the lock, or another program the engine's repository; nothing changed",
    ),
    (
        exit::NOPERM,
        "the passphrase file may be read by others (run chmod 600 on it), or its passphrase \
         does not open the backup",
    ),
    (exit::CONFIG, "bad configuration: a switch"),
];

/// pysk-backup: validated database dumps, encrypted incremental backups,
/// restores that are proven
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
    /// Dump every database, each checked before it counts
    #[command(after_help = "\
Examples:
  pysk-backup dump
  pysk-backup dump --postgres --only shop --dir /srv/dumps

PostgreSQL: the roles and tablespaces (pg_dumpall --globals-only), then
each database with pg_dump -Fc, run as the postgres account (no password
exists), read back whole by pg_restore while it is written; the row count
of every table taken in the dump's own snapshot. MariaDB: every account's
grants, then each database with mariadb-dump --single-transaction,
compressed, its last line checked. A dump smaller than
backup_shrink_percent of the last good one fails unless --force. The new
set replaces the last good one only when every dump succeeded. What
--only, --postgres or --mysql leave out is carried over from the last
good set (hard links, marked \"carried\" in the manifest).")]
    Dump(DumpArgs),
    /// Dump, back up, check the backup, prune: the nightly job
    #[command(after_help = "\
Example (cron, nightly):
  pysk-backup -q run

The dumps (as `dump` makes them, under the run's lock), then the
engine's backup of backup_source with the dump set, then a check of the
new backup; only then retention. Any failed step stops the run with exit
1 and prunes nothing; a failed dump is never uploaded. backup_notify_command runs
with start, success or failure as its last argument.")]
    Run(RunArgs),
    /// Check the backup's integrity
    #[command(after_help = "\
Example (cron, weekly):
  pysk-backup -q verify

Exit 1 only when the backup itself is damaged, missing or unreadable.
--compare-data also lists the files changed since (information: a live
system always changes).")]
    Verify(VerifyArgs),
    /// Last full backup, last incremental or snapshot, chains, size, and
    /// the last proven restore of each database
    Status(StatusArgs),
    /// The files of a backup
    List(ListArgs),
    /// Restore a file or directory from the backup into a directory
    #[command(after_help = "\
Examples:
  pysk-backup restore etc/nginx --time 3D --to /root/restored        (duplicity)
  pysk-backup restore etc/nginx --time 4f2a9c1e --to /root/restored  (restic)

Nothing is created when nothing is restored.")]
    Restore(RestoreArgs),
    /// Restore one database's dump from the backup into its server
    #[command(after_help = "\
Examples:
  pysk-backup restore-db shop --as shop_yesterday --time 1D        (duplicity)
  pysk-backup restore-db shop --as shop_yesterday --time 4f2a9c1e  (restic)")]
    RestoreDb(RestoreDbArgs),
    /// Restore the newest dumps into throw-away servers and compare every
    /// table's rows with what was recorded
    #[command(after_help = "\
Example (cron, weekly):
  pysk-backup -q drill --from-backup

A fresh PostgreSQL and MariaDB in a temporary directory, never the
production servers; globals first. A database whose restore fails or
whose row counts differ fails the drill (exit 1).")]
    Drill(DrillArgs),
    /// Print the effective switches (defaults included) in shell syntax
    Config,
}

/// Which servers and databases a dump takes.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Dump PostgreSQL (default: every server running here)
    #[arg(long)]
    pub postgres: bool,
    /// Dump MariaDB (default: every server running here)
    #[arg(long)]
    pub mysql: bool,
    /// Only these databases (repeatable)
    #[arg(long, value_name = "DB")]
    pub only: Vec<String>,
    /// Not these databases (repeatable)
    #[arg(long, value_name = "DB")]
    pub exclude: Vec<String>,
    /// Keep a dump that shrank below backup_shrink_percent of the last
    /// good one, and drop the dumps of a server whose socket is gone
    #[arg(long)]
    pub force: bool,
}

/// The options of `dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// What to dump.
    #[command(flatten)]
    pub selection: Selection,
    /// Where the dump sets live [default: backup_dump_dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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

/// The options of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// What to dump.
    #[command(flatten)]
    pub selection: Selection,
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

/// The options of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Also compare the backup with the files as they are now
    #[arg(long)]
    pub compare_data: bool,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The backup as it was at this time. duplicity: now, an interval
    /// (3D, 1h30m; s m h D W M Y ago), an RFC 3339 time, a date
    /// (2026-11-28, 2026/11/28, 11/28/2026) or epoch seconds; restic: a
    /// snapshot ID (8 to 64 hex digits, as status lists them) or latest
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The file or directory, relative to backup_source
    pub path: PathBuf,
    /// The backup as it was at this time. duplicity: now, an interval
    /// (3D, 1h30m; s m h D W M Y ago), an RFC 3339 time, a date
    /// (2026-11-28, 2026/11/28, 11/28/2026) or epoch seconds; restic: a
    /// snapshot ID (8 to 64 hex digits, as status lists them) or latest
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// A directory to restore into; it must not exist or be empty
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `restore-db`.
#[derive(Debug, clap::Args)]
pub struct RestoreDbArgs {
    /// The database, as it was dumped
    pub name: String,
    /// The backup as it was at this time. duplicity: now, an interval
    /// (3D, 1h30m; s m h D W M Y ago), an RFC 3339 time, a date
    /// (2026-11-28, 2026/11/28, 11/28/2026) or epoch seconds; restic: a
    /// snapshot ID (8 to 64 hex digits, as status lists them) or latest
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Restore under this name; it must not exist
    #[arg(long = "as", value_name = "NEWNAME")]
    pub as_name: Option<String>,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `drill`.
#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// Restore the dump set as stored in the newest backup, not the
    /// local one
    #[arg(long)]
    pub from_backup: bool,
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
        assert!(
            help.contains("backup_wait=\"0\"  [option --wait]"),
            "{help}"
        );
        assert_eq!(Cli::command().get_name(), NAME);
    }
}
