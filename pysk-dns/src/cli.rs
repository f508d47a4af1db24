//! The command line of `pysk-dns`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use pysk_common::cli::{CommonArgs, DryRunArgs, JsonArgs, WaitArgs};
use pysk_common::{exit, settings};

use crate::settings::SWITCHES;

/// The tool's name, written once: clap, the reporter and `main` use it.
pub const NAME: &str = env!("CARGO_PKG_NAME");

/// Every exit code `pysk-dns` can return, for `--help`.
const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "ok"),
    (exit::PARTIAL, "a server or zone needs attention (reported)"),
    (exit::USAGE, "usage: a bad option or option value"),
    (exit::DATAERR, "damaged state (a snapshot or serials.json)"),
    (
        exit::NOINPUT,
        "input missing (no serial for the zone, a missing file)",
    ),
    (exit::UNAVAILABLE, "the reload command failed"),
    (exit::SOFTWARE, "internal fault (please report it)"),
    (exit::CANTCREAT, "cannot create a file"),
    (exit::IOERR, "I/O error"),
    (
        exit::TEMPFAIL,
        "another fetch or build holds the lock; try again or use --wait",
    ),
    (
        exit::NOPERM,
        "permission denied, or a password file readable by others",
    ),
    (
        exit::CONFIG,
        "bad configuration (switches, inventory, CA file)",
    ),
];

/// The epilogue of `--help`: the switches, then the exit codes.
fn after_help() -> String {
    settings::help(SWITCHES, &exit::help(EXIT_CODES))
}

/// pysk-dns: every managed server's DNS records, merged into zones for BIND
#[derive(Debug, Parser)]
#[command(version, after_help = after_help())]
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
    /// Fetch every server's records document into its snapshot
    #[command(after_help = "\
Example (from cron, before build; silent unless a server needs attention):
  pysk-dns -q fetch --hosts /etc/pysk/hosts

A server that cannot be reached, serves an invalid document, or would drop
more than half of its zones keeps its last good snapshot; the run says so,
with the snapshot's age, and exits 1.")]
    Fetch(FetchArgs),
    /// Build zone files and the named.conf include from the snapshots
    #[command(after_help = "\
Example (after fetch; reloads BIND only when a zone changed):
  pysk-dns -q build --reload
  pysk-dns build --dry-run | less     # the diff of every file it would write
  pysk-dns build --dry-run --json     # what it would write, as the --json document")]
    Build(BuildArgs),
    /// Print a zone's current SOA serial
    #[command(after_help = "Example:\n  pysk-dns serial example.org")]
    Serial(SerialArgs),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-dns --host ns1.example.org config > /tmp/switches.sh

Each line says where its value came from (file and line, or the built-in
default); bash reads the output back to the same values.")]
    Config,
}

/// Where the inventory and the state are.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The inventory of managed servers [default: <config-dir>/hosts]
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Snapshots and serials [switch: dns_state_dir]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// `--wait`, for the lock.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Inventory, state directory and lock.
    #[command(flatten)]
    pub state: StateArgs,
    /// CA certificates (PEM) to trust [switch: dns_ca_file]
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The HTTP basic auth password, in a file only its owner can read
    /// [switch: dns_api_password_file]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Allow plain http to hosts other than loopback
    /// [switch: dns_insecure_plaintext]
    // `--insecure-http`, the old spelling, still works (hidden) for one release.
    #[arg(long, alias = "insecure-http")]
    pub insecure_plaintext: bool,
    /// Accept documents that drop more than half of a server's zones
    #[arg(long)]
    pub force: bool,
    /// `--json`, for the summary.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Inventory, state directory and lock.
    #[command(flatten)]
    pub state: StateArgs,
    /// Where the db.<zone> files go [switch: dns_zone_dir]
    #[arg(long, value_name = "DIR")]
    pub zone_dir: Option<PathBuf>,
    /// The named.conf include to write [switch: dns_include]
    #[arg(long, value_name = "FILE")]
    pub include: Option<PathBuf>,
    /// `--dry-run`: the unified diff of every file that would change (with
    /// `--json`: the summary the build would give instead).
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// After a change, run the reload command and check the served serials
    #[arg(long, conflicts_with = "dry_run")]
    pub reload: bool,
    /// `--json`, for the summary.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `serial`.
#[derive(Debug, clap::Args)]
pub struct SerialArgs {
    /// The zone
    pub zone: String,
    /// Snapshots and serials [switch: dns_state_dir]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}
