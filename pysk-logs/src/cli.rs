//! The command line of `pysk-logs`: the clap definitions of every
//! subcommand and the parsers of their option values.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use pysk_common::cli::{CommonArgs, WaitArgs};
use pysk_common::switches;

/// The exit codes, for `--help`.
const EXIT_CODES: &str = "\
Exit codes: 0 ok, 1 some input unreadable (reported), 2 usage, 65 bad data,
66 input missing, 73/74 cannot write, 75 another split runs, 78 bad config.";

/// pysk-logs: web server access logs for AWStats, per virtual host and in time order
#[derive(Debug, Parser)]
#[command(name = "pysk-logs", version, after_help = switches::help(crate::SWITCHES, EXIT_CODES))]
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
FILEs are read and left in place.")]
    Split(SplitArgs),
    /// Merge time-sorted logs by time to stdout (AWStats' LogFile pipe)
    #[command(after_help = "\
Example (in awstats.example.org.conf):
  LogFile=\"pysk-logs merge --archive /var/spool/pysk/wwwlogs/processed /var/spool/pysk/wwwlogs/pending/example.org/*.log |\"")]
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
  DNSStaticCacheFile=\"/var/spool/pysk/wwwlogs/dnscache.txt\"")]
    Resolve(ResolveArgs),
    /// Fetch mailed logs from an IMAP mailbox into the spool's inbox
    #[command(after_help = "\
Example:
  pysk-logs fetch --imap-url imaps://logs@mail.example.org/INBOX \\
      --password-file /etc/pysk/secret/imap-logs

Takes the unseen messages whose Subject contains --subject-contains, oldest
first, saves every log they carry (text/plain bodies and parts, gzip
attachments) to <spool>/inbox/imap-<uidvalidity>-<uid>-<part>.log, and only
then marks them \\Seen (or moves them to --done-mailbox). imap:// switches to
TLS with STARTTLS when the server offers it; a password is sent without TLS
only to a loopback address or with --insecure-plaintext.")]
    Fetch(FetchArgs),
    /// The nightly job: fetch (when configured), split, resolve, awstats
    #[command(after_help = "\
Example (the whole nightly job, from cron):
  15 3 * * *  root  pysk-logs -q run

Each stage that fails is reported and the later stages still run where that
is safe; the exit code is 1 when anything failed. With nothing new, nothing
changes.")]
    Run(RunArgs),
    /// Write an AWStats configuration per virtual host and update AWStats
    #[command(after_help = "\
Example (nightly, after split and resolve):
  pysk-logs -q awstats --conf-dir /etc/awstats --data-dir /var/lib/awstats

Writes awstats.<vhost>.conf for every virtual host with a directory in
<spool>/pending/ or <spool>/processed/ (or in logs_vhosts), removes the ones
it wrote for virtual hosts that are gone, and runs awstats.pl -update for
every virtual host with pending logs.")]
    Awstats(AwstatsArgs),
    /// Print the effective switches in shell syntax
    #[command(after_help = "Example:\n  pysk-logs --host web1.example.org config")]
    Config,
}

/// The options of `split`.
#[derive(Debug, clap::Args)]
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
    /// Memory for sorting, e.g. 256M [switch: logs_memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<usize>,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Input files instead of the inbox (plain or gzip)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// The options of `merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// After a complete output, move each input gzip-compressed to DIR/<vhost>/
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Lines of lookahead per input for nearly sorted logs [switch: logs_reorder]
    #[arg(long, value_name = "N")]
    pub reorder: Option<usize>,
    /// Time-sorted combined-format logs (plain or gzip); ties go to the earlier one
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// The options of `resolve`.
#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// The cache file [switch: logs_dns_cache; default <spool>/dnscache.txt]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Name server to ask, IP or IP:PORT ([IPv6]:PORT); repeatable [default: those of /etc/resolv.conf]
    #[arg(long = "nameserver", value_name = "IP[:PORT]", value_parser = parse_nameserver)]
    pub nameservers: Vec<SocketAddr>,
    /// Queries in flight at most
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Seconds to wait for one answer
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_seconds)]
    pub timeout: f64,
    /// Attempts per address
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    pub attempts: u8,
    /// Days after which a name is looked up again
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub ttl: u64,
    /// Hours after which a failed lookup is tried again
    #[arg(long, value_name = "HOURS", default_value_t = 6)]
    pub negative_ttl: u64,
    /// Keep a name only if it resolves back to the address (like logresolve -c)
    #[arg(long)]
    pub confirm: bool,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// `--wait`, for the lock.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Logs or address lists (plain or gzip); - or none for stdin
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// The spool and the lock, for the subcommands that take the spool's lock.
#[derive(Debug, Clone, clap::Args)]
pub struct SpoolArgs {
    /// The spool directory [switch: logs_spool]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// `--wait`, for the lock.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The options of `fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// imap[s]://USER@HOST[:PORT]/MAILBOX [switch: logs_imap_url]
    #[arg(long, value_name = "URL")]
    pub imap_url: Option<String>,
    /// File holding the password, readable only by its owner [switch: logs_imap_password_file]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Only messages whose Subject contains TEXT [switch: logs_imap_subject; default access.log]
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
}

/// The options of `run`: everything comes from the switches.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// `--spool` and `--wait`.
    #[command(flatten)]
    pub spool: SpoolArgs,
}

/// The options of `awstats`.
#[derive(Debug, clap::Args)]
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
    /// The reverse-DNS cache [switch: logs_dns_cache; default <spool>/dnscache.txt]
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
}

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 when not given).
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?}: expected IP, IP:PORT or [IPv6]:PORT"))
}

/// Parses a positive number of seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!("{text:?}: expected seconds between 0 and 3600")),
    }
}

/// Parses a size like `256M`, `1G`, `512K` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?}: expected a size like 256M")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a size like 256M"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("{text:?}: at least 1M is needed"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2048k"), Ok(2 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("12").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn nameservers_take_an_optional_port() {
        assert_eq!(
            parse_nameserver("192.0.2.1"),
            Ok("192.0.2.1:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_nameserver("192.0.2.1:5353"),
            Ok("192.0.2.1:5353".parse().expect("addr"))
        );
        assert_eq!(
            parse_nameserver("::1"),
            Ok("[::1]:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_nameserver("[::1]:5353"),
            Ok("[::1]:5353".parse().expect("addr"))
        );
        assert!(parse_nameserver("ns1.example").is_err());
        assert!(parse_seconds("0").is_err());
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
    }
}
