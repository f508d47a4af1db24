//! The command line of `pysk-logs`: the clap definitions of every
//! subcommand. Options that a switch can override are taken as text and
//! parsed by [`crate::settings`], so that both origins share one parser and
//! one wording of errors.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use pysk_common::cli::{CommonArgs, DryRunArgs, JsonArgs, WaitArgs};
use pysk_common::{exit, settings};

use crate::settings::SWITCHES;

/// The tool's name, written once: clap's, the reporter's, `main`'s.
pub const NAME: &str = env!("CARGO_PKG_NAME");

/// Every exit code `pysk-logs` can return, for `--help`.
const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "ok"),
    (
        exit::PARTIAL,
        "finished, but something failed and was reported (an unreadable input, a failed stage)",
    ),
    (exit::USAGE, "bad command line"),
    (exit::DATAERR, "bad data (a --vhosts list, a corrupt input)"),
    (exit::NOINPUT, "an input is missing"),
    (
        exit::UNAVAILABLE,
        "a server (IMAP) is unreachable or refused us",
    ),
    (exit::SOFTWARE, "internal error (please report it)"),
    (exit::CANTCREAT, "cannot create an output"),
    (exit::IOERR, "I/O error"),
    (exit::TEMPFAIL, "another run holds the lock"),
    (
        exit::NOPERM,
        "permission denied (a file, a password file readable by others)",
    ),
    (exit::CONFIG, "bad configuration (a switch)"),
];

/// pysk-logs: web server access logs for AWStats, per virtual host and in time order
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
    /// Split raw logs into one time-sorted combined log per virtual host
    #[command(after_help = "\
Example (nightly, from cron; silent unless something is wrong):
  pysk-logs -q split --spool /var/spool/pysk/wwwlogs --vhosts /etc/pysk/vhosts

With no FILE every file in <spool>/inbox/ is processed and removed once its
lines are safely in <spool>/pending/<vhost>/ or <spool>/rejected/. Explicit
FILEs are read and left in place. An inbox file is taken only when no process
has it open for writing and its last write is --inbox-settle seconds ago
(one renamed into place is taken at once, unless renamed in the same clock
tick of the file system as its last write); one written to while it was read
is left, none of its lines taken, for the next run. Dot-files are skipped as
still in delivery; a directory, FIFO, socket or symbolic link in the inbox is
reported, left in place, and the exit code is 1, as for a file that cannot be
renamed once read. A file open for writing and unchanged for over an hour is
a warning.

There is no --dry-run: split only moves data through the tool's own spool
(inbox/ to pending/ and rejected/), changes no configuration, and a run
killed at any point is finished or undone by the next.")]
    Split(SplitArgs),
    /// Merge time-sorted logs by time to stdout (AWStats' LogFile pipe)
    #[command(after_help = "\
Example (in awstats.example.org.conf):
  LogFile=\"pysk-logs merge --archive /var/spool/pysk/wwwlogs/processed /var/spool/pysk/wwwlogs/pending/example.org/*.log |\"

There is no --dry-run: merge's product is the data on stdout, and
--archive moves what was read into the tool's own archive (processed/),
only after the whole output was written; no configuration changes.")]
    Merge(MergeArgs),
    /// Build the reverse-DNS cache AWStats reads (DNSStaticCacheFile)
    #[command(after_help = "\
Example (nightly, after split; silent unless something is wrong):
  pysk-logs -q resolve --cache /var/spool/pysk/wwwlogs/dnscache.txt \\
      /var/spool/pysk/wwwlogs/pending/*/*.log

Addresses come from log lines (any format split reads) or address lists,
one a line; with no FILE or -, from stdin. Only addresses without a fresh
cache entry are looked up. In awstats.<vhost>.conf:
  DNSLookup=2
  DNSStaticCacheFile=\"/var/spool/pysk/wwwlogs/dnscache.txt\"

There is no --dry-run: resolve's product is the cache, the tool's own data
(rewritten atomically, merged with what it held), not configuration.")]
    Resolve(ResolveArgs),
    /// Fetch mailed logs from an IMAP mailbox into the spool's inbox
    #[command(after_help = "\
Example:
  pysk-logs fetch --imap-url imaps://logs@mail.example.org/INBOX \\
      --password-file /etc/pysk/secret/imap-logs

Takes the unseen messages whose Subject contains --subject-contains, oldest
first, saves every log they carry (text/plain bodies, attachments of any type
with log lines, compressed or not; a body without one beside them is a cover
note, left out with a warning) to <spool>/inbox/imap-<uidvalidity>-<uid>-<part>.log, and only
then marks them \\Seen (or moves them to --done-mailbox). imap:// switches to
TLS with STARTTLS when the server offers it; a password is sent without TLS
only to a loopback address or with --insecure-plaintext.

There is no --dry-run: fetch consumes the mailbox like a queue, moving its
logs into the tool's own spool; it changes no configuration.")]
    Fetch(FetchArgs),
    /// The nightly job: fetch (when configured), split, resolve, awstats
    #[command(after_help = "\
Example (the whole nightly job, from cron):
  15 3 * * *  root  pysk-logs -q run

Each stage that fails is reported and the later stages still run where that
is safe; the exit code is 1 when anything failed. With nothing new, nothing
changes. There is no --dry-run: what awstats would change depends on what
split has not yet done; `pysk-logs awstats --dry-run` shows it for the logs
already pending.")]
    Run(RunArgs),
    /// Write an AWStats configuration per virtual host and update AWStats
    #[command(after_help = "\
Example (nightly, after split and resolve):
  pysk-logs -q awstats --conf-dir /etc/awstats --data-dir /var/lib/awstats

Writes awstats.<vhost>.conf for every virtual host with a directory in
<spool>/pending/ or <spool>/processed/ (or in logs_vhosts), removes the ones
it wrote for virtual hosts that are gone, and runs awstats.pl -update for
every virtual host with pending logs. --dry-run prints the unified diff of
each configuration it would write or remove and the awstats.pl commands it
would run (with --json: the document the real run would print, with
\"dry_run\": true); it creates nothing, no spool directory and no lock
file, and waits for the spool's lock only when that file exists.")]
    Awstats(AwstatsArgs),
    /// Print the effective switches (defaults included) in shell syntax
    #[command(after_help = "\
Example:
  pysk-logs --host web1.example.org config > /tmp/switches.sh

Each line says where its value came from (file and line, or the built-in
default); bash reads the output back to the same values.")]
    Config,
}

/// The options of `split`.
#[derive(Debug, Default, clap::Args)]
pub struct SplitArgs {
    /// `--spool` and `--wait`.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Accept only the virtual hosts listed in FILE (- for stdin); others go to rejected/ [switch: logs_vhosts]
    #[arg(long, value_name = "FILE")]
    pub vhosts: Option<PathBuf>,
    /// Virtual host for lines in combined or common format
    #[arg(long, value_name = "NAME")]
    pub vhost: Option<String>,
    /// Memory for sorting, e.g. 256M (at least 1M) [switch: logs_memory]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Seconds since its last write before an inbox file is taken [switch: logs_inbox_settle]
    #[arg(long, value_name = "SECS")]
    pub inbox_settle: Option<String>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// Input files instead of the inbox (plain, gzip, bzip2, xz or zstd)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// The options of `merge`.
#[derive(Debug, Default, clap::Args)]
pub struct MergeArgs {
    /// After a complete output, move each input gzip-compressed to DIR/<vhost>/
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Lines of lookahead per input for nearly sorted logs [switch: logs_reorder]
    #[arg(long, value_name = "N")]
    pub reorder: Option<String>,
    /// Time-sorted combined-format logs (plain, gzip, bzip2, xz or zstd); ties go to the earlier one
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// The options of `resolve`.
#[derive(Debug, Default, clap::Args)]
pub struct ResolveArgs {
    /// The cache file [default: <spool>/dnscache.txt] [switch: logs_dns_cache]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Name server to ask, IP or IP:PORT ([IPv6]:PORT); repeatable [default: those of /etc/resolv.conf] [switch: logs_dns_nameserver]
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// Queries in flight at most [switch: logs_dns_concurrency]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<String>,
    /// Seconds to wait for one answer at most: the ceiling of the timeout learned from the run's answers [switch: logs_dns_timeout]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<String>,
    /// Attempts per address [switch: logs_dns_attempts]
    #[arg(long, value_name = "N")]
    pub attempts: Option<String>,
    /// Days after which a name is looked up again [switch: logs_dns_ttl]
    #[arg(long, value_name = "DAYS")]
    pub ttl: Option<String>,
    /// Hours after which a failed lookup is tried again [switch: logs_dns_negative_ttl]
    #[arg(long, value_name = "HOURS")]
    pub negative_ttl: Option<String>,
    /// Keep a name only if it resolves back to the address (like logresolve -c) [switch: logs_dns_confirm]
    #[arg(long)]
    pub confirm: bool,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
    /// `--wait`, for the cache's lock.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Logs or address lists (plain, gzip, bzip2, xz or zstd); - or none for stdin
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// The spool and the lock, for the subcommands that take the spool's lock.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SpoolArgs {
    /// The spool directory [switch: logs_spool]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// `--wait`, for the lock.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `fetch`.
#[derive(Debug, Default, clap::Args)]
pub struct FetchArgs {
    /// imap[s]://USER@HOST[:PORT]/MAILBOX [switch: logs_imap_url]
    #[arg(long, value_name = "URL")]
    pub imap_url: Option<String>,
    /// File holding the password, readable only by its owner [switch: logs_imap_password_file]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Only messages whose Subject contains TEXT [switch: logs_imap_subject]
    #[arg(long, value_name = "TEXT")]
    pub subject_contains: Option<String>,
    /// Move fetched messages to this mailbox instead of marking them seen [switch: logs_imap_done_mailbox]
    #[arg(long, value_name = "NAME")]
    pub done_mailbox: Option<String>,
    /// Trust this CA certificate (PEM) instead of the system's [switch: logs_imap_ca_file]
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Allow a password without TLS to a host that is not loopback [switch: logs_imap_insecure_plaintext]
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// `--spool` and `--wait`.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `run`: everything else comes from the switches.
#[derive(Debug, Default, clap::Args)]
pub struct RunArgs {
    /// `--spool` and `--wait`.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Seconds since its last write before split takes an inbox file [switch: logs_inbox_settle]
    #[arg(long, value_name = "SECS")]
    pub inbox_settle: Option<String>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// The options of `awstats`.
#[derive(Debug, Default, clap::Args)]
pub struct AwstatsArgs {
    /// `--spool` and `--wait`.
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Where the awstats.<vhost>.conf files go [switch: logs_awstats_conf_dir]
    #[arg(long, value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// AWStats' DirData [switch: logs_awstats_data_dir]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The reverse-DNS cache [default: <spool>/dnscache.txt] [switch: logs_dns_cache]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// `--dry-run`.
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_code_and_switch() {
        let help = Cli::command().render_long_help().to_string();
        for code in ["69", "70", "75", "77", "78"] {
            assert!(help.contains(&format!("  {code}  ")), "{code}: {help}");
        }
        for spec in SWITCHES {
            assert!(help.contains(spec.key), "{}", spec.key);
        }
    }

    #[test]
    fn awstats_dry_run_takes_json() {
        let cli = Cli::try_parse_from([NAME, "awstats", "--dry-run", "--json"]).expect("parses");
        let Command::Awstats(args) = cli.command else {
            panic!("awstats")
        };
        assert!(args.dry_run.dry_run && args.json.json);
    }

    #[test]
    fn every_option_a_switch_beats_names_its_switch() {
        let command = Cli::command();
        for spec in SWITCHES {
            let Some(option) = spec.option.and_then(|o| o.strip_prefix("--")) else {
                continue;
            };
            if option == "wait" {
                // Its help comes from `pysk_common::cli::parse`.
                continue;
            }
            let helps: Vec<String> = command
                .get_subcommands()
                .flat_map(|sub| sub.get_arguments())
                .filter(|a| a.get_long() == Some(option))
                .map(|a| a.get_help().map(ToString::to_string).unwrap_or_default())
                .collect();
            assert!(!helps.is_empty(), "--{option}");
            for help in helps {
                assert!(
                    help.ends_with(&format!("[switch: {}]", spec.key)),
                    "--{option}: {help}"
                );
            }
        }
    }
}
