//! The command line of `pysk-passwd`.

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
    (
        exit::OK,
        "ok: the files match the database (now, or already)",
    ),
    (
        exit::PARTIAL,
        "check found differences, or a home directory needs attention (reported)",
    ),
    (exit::USAGE, "usage: a bad option"),
    (
        exit::DATAERR,
        "the user database was rejected or would remove too many accounts; nothing written",
    ),
    (
        exit::NOINPUT,
        "an input is missing (the database, passwd, group, shadow)",
    ),
    (exit::SOFTWARE, "internal error (please report it)"),
    (exit::CANTCREAT, "a file cannot be written"),
    (
        exit::IOERR,
        "an I/O error (writing stdout failed, a disk error)",
    ),
    (
        exit::TEMPFAIL,
        "the account files are locked by another program; nothing written",
    ),
    (exit::NOPERM, "permission denied"),
    (
        exit::CONFIG,
        "bad configuration: a switch, account files that disagree with one, or an \
         interrupted sync's record that cannot be carried out",
    ),
];

/// pysk-passwd: the control panel's users in passwd, group and shadow
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
    /// Make passwd, group, shadow, gshadow, the chroot list and the homes
    /// match the user database
    #[command(after_help = "\
Example (from cron; -q: silent unless something needs attention):
  panel-export-users | pysk-passwd -q sync --users -
  pysk-passwd sync --users users.json --dry-run   # what it would change

What a sync changed is reported on stderr, one line per entry (hidden by
-q); --dry-run prints the diffs on stdout instead and creates nothing, not
even a lock file (it waits for the locks that are held). A database with
any problem is rejected whole: each problem is listed and nothing is
written (exit 65). The changed files are staged and synced before any is
renamed (a full disk leaves every file old); a sync interrupted between
the renames is finished by the next sync or check. A link or other
trouble below one user's home skips that user's directories with one
warning (exit 1); everyone else is synced.")]
    Sync(SyncArgs),
    /// Exit 0 when the files match the database, 1 with the differences
    #[command(after_help = "\
The differences are printed on stdout (diffs; names only for shadow and
gshadow), or with --json as one document.

Example (monitoring):
  pysk-passwd check --users /var/lib/panel/users.json >/dev/null || echo drift")]
    Check(CheckArgs),
    /// Write the users' name:hash lines for the panel's web login
    #[command(after_help = "\
Example:
  pysk-passwd htpasswd --users users.json --output /etc/apache2/panel.htpasswd

Locked users (hash starting with ! or *) and FTP accounts are left out.
With --output, what changed is reported per user on stderr (names only);
--dry-run prints that on stdout and writes nothing; --json prints the
summary as one document instead (names only).")]
    Htpasswd(HtpasswdArgs),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-passwd --host web1.example.org config > /tmp/switches.sh

Each line says where its value came from (file and line, or the built-in
default); bash reads the output back to the same values.")]
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
// `--lock-timeout` was `--wait`'s name until 0.1: kept, hidden, for the
// scripts that use it.
#[command(mut_arg("wait", |a| a.alias("lock-timeout")))]
pub struct SyncArgs {
    /// Database and root.
    #[command(flatten)]
    pub target: Target,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// Accept a database that removes more than half of the managed
    /// accounts (and more than five)
    #[arg(long)]
    pub force: bool,
    /// `--wait`.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Database and root.
    #[command(flatten)]
    pub target: Target,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `htpasswd`: without `--output` the lines are the data
/// on stdout, so `--dry-run` and `--json` need one.
#[derive(Debug, clap::Args)]
#[command(mut_arg("dry_run", |a| a.requires("output")))]
#[command(mut_arg("json", |a| a.requires("output")))]
pub struct HtpasswdArgs {
    /// The user database (JSON version 1), or - for stdin
    #[arg(long, value_name = "FILE")]
    pub users: PathBuf,
    /// Write here (atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// `--dry-run` (with `--output`).
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json` (with `--output`).
    #[command(flatten)]
    pub json: JsonArgs,
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
            help.contains("passwd_wait=\"15\"  [option --wait]"),
            "{help}"
        );
        assert_eq!(Cli::command().get_name(), NAME);
    }

    #[test]
    fn lock_timeout_is_a_hidden_alias_of_wait() {
        let cli =
            Cli::try_parse_from(["pysk-passwd", "sync", "--users", "-", "--lock-timeout", "4"])
                .expect("the old spelling parses");
        let Command::Sync(args) = cli.command else {
            panic!("not sync")
        };
        assert_eq!(args.wait.wait.as_deref(), Some("4"));
        let mut cmd = Cli::command();
        let sync = cmd.find_subcommand_mut("sync").expect("sync");
        let help = sync.render_long_help().to_string();
        assert!(
            help.contains("--wait") && !help.contains("lock-timeout"),
            "{help}"
        );
    }

    #[test]
    fn htpasswd_dry_run_and_json_need_an_output() {
        for flag in ["--dry-run", "--json"] {
            let line = ["pysk-passwd", "htpasswd", "--users", "-", flag];
            assert!(Cli::try_parse_from(line).is_err(), "{flag}");
        }
        let line = ["pysk-passwd", "htpasswd", "--users", "-", "--output", "x"];
        let mut line = line.to_vec();
        line.extend(["--dry-run", "--json"]);
        assert!(Cli::try_parse_from(line).is_ok());
    }
}
