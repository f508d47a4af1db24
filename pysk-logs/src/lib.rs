//! `pysk-logs`: web server access logs, from raw spool files to clean,
//! time-sorted logs per virtual host for AWStats.
//!
//! - `split` ([`split`]): parses raw logs in the Pysk formats
//!   ([`format`]), sorts them by time per virtual host with bounded memory
//!   ([`sorter`]) and commits the outputs as one crash-safe batch
//!   ([`spool`]).
//! - `merge` ([`merge`]): a streaming k-way merge of time-sorted logs, for
//!   AWStats' `LogFile` pipe, with archiving of what was read.
//! - `config`: the effective switches.

pub mod dnscache;
pub mod error;
pub mod format;
pub mod input;
pub mod lines;
pub mod merge;
pub mod output;
pub mod resolve;
pub mod sorter;
pub mod split;
pub mod spool;
pub mod time;

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use pysk_common::cli::{CommonArgs, WaitArgs};
use pysk_common::exit::Outcome;
use pysk_common::switches::{Spec, Switches};

pub use error::LogsError;

/// The switches `pysk-logs` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
    Spec {
        key: "logs_spool",
        default: "/var/spool/pysk/wwwlogs",
        help: "the log spool (inbox/, pending/, processed/, rejected/, tmp/)",
    },
    Spec {
        key: "logs_memory",
        default: "256M",
        help: "memory split may use for sorting (K, M, G suffixes)",
    },
    Spec {
        key: "logs_vhosts",
        default: "",
        help: "file listing the virtual hosts split accepts, one a line (empty: all)",
    },
    Spec {
        key: "logs_dns_cache",
        default: "",
        help: "the reverse-DNS cache resolve writes (empty: <logs_spool>/dnscache.txt)",
    },
    Spec {
        key: "logs_reorder",
        default: "1000",
        help: "lines of lookahead per input merge uses to order nearly sorted logs",
    },
];

const AFTER_HELP: &str = "\
Switches (in <config-dir>/serverconfig/default or /<fqdn>; options beat them):
  logs_spool=\"/var/spool/pysk/wwwlogs\"  the log spool
  logs_memory=\"256M\"                    memory split may use for sorting
  logs_vhosts=\"\"                        file of accepted virtual hosts (empty: all)
  logs_reorder=\"1000\"                   merge's lookahead per input
  logs_dns_cache=\"\"                     resolve's cache (empty: <logs_spool>/dnscache.txt)

Exit codes: 0 ok, 1 some input unreadable (reported), 2 usage, 65 bad data,
66 input missing, 73/74 cannot write, 75 another split runs, 78 bad config.";

/// pysk-logs: web server access logs for AWStats, per virtual host and in time order
#[derive(Debug, Parser)]
#[command(name = "pysk-logs", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Print the effective switches in shell syntax
    #[command(after_help = "Example:\n  pysk-logs --host web1.example.org config")]
    Config,
}

#[derive(Debug, clap::Args)]
struct SplitArgs {
    /// The spool directory [switch: logs_spool]
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Accept only the virtual hosts listed in FILE (- for stdin); others go to rejected/ [switch: logs_vhosts]
    #[arg(long, value_name = "FILE")]
    vhosts: Option<PathBuf>,
    /// Virtual host for lines in combined or common format
    #[arg(long, value_name = "NAME")]
    vhost: Option<String>,
    /// Memory for sorting, e.g. 256M [switch: logs_memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<usize>,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    wait: WaitArgs,
    /// Input files instead of the inbox (plain or gzip)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// After a complete output, move each input gzip-compressed to DIR/<vhost>/
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Lines of lookahead per input for nearly sorted logs [switch: logs_reorder]
    #[arg(long, value_name = "N")]
    reorder: Option<usize>,
    /// Time-sorted combined-format logs (plain or gzip); ties go to the earlier one
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ResolveArgs {
    /// The cache file [switch: logs_dns_cache; default <spool>/dnscache.txt]
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// Name server to ask, IP or IP:PORT ([IPv6]:PORT); repeatable [default: those of /etc/resolv.conf]
    #[arg(long = "nameserver", value_name = "IP[:PORT]", value_parser = parse_nameserver)]
    nameservers: Vec<std::net::SocketAddr>,
    /// Queries in flight at most
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Seconds to wait for one answer
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_seconds)]
    timeout: f64,
    /// Attempts per address
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    attempts: u8,
    /// Days after which a name is looked up again
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    ttl: u64,
    /// Hours after which a failed lookup is tried again
    #[arg(long, value_name = "HOURS", default_value_t = 6)]
    negative_ttl: u64,
    /// Keep a name only if it resolves back to the address (like logresolve -c)
    #[arg(long)]
    confirm: bool,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    wait: WaitArgs,
    /// Logs or address lists (plain or gzip); - or none for stdin
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 when not given).
fn parse_nameserver(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
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

/// Reads a `--vhosts` list: one name a line, `#` comments.
fn read_vhosts(path: &Path) -> Result<HashSet<String>, LogsError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        for line in io::stdin().lock().lines() {
            s.push_str(&line.map_err(error::input_err(path))?);
            s.push('\n');
        }
        s
    } else {
        std::fs::read_to_string(path).map_err(error::input_err(path))?
    };
    let mut set = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let normal = format::normalize_vhost(name.as_bytes()).ok_or_else(|| LogsError::Vhosts {
            path: path.to_owned(),
            line: i + 1,
            text: name.to_owned(),
        })?;
        set.insert(normal);
    }
    Ok(set)
}

/// Ends the run at once (as a crash would) when the environment variable
/// `PYSK_LOGS_FAILPOINT` names this point: how the tests kill a run inside
/// the windows of a batch commit that a timed kill rarely hits.
pub(crate) fn failpoint(name: &str) {
    if std::env::var_os("PYSK_LOGS_FAILPOINT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}

/// Parses the command line and runs the subcommand.
pub fn try_main() -> Result<Outcome, LogsError> {
    let cli = Cli::parse();
    let report = cli.common.reporter("pysk-logs");
    let stdout = io::stdout();
    match cli.command {
        Command::Config => {
            cli.common.print_config(SWITCHES, &mut stdout.lock())?;
            Ok(Outcome::Success)
        }
        Command::Split(args) => {
            let switches = cli.common.switches()?;
            let options = split_options(&args, &switches)?;
            let (summary, outcome) = split::run(&options, &report)?;
            if args.json {
                let mut out = stdout.lock();
                serde_json::to_writer_pretty(&mut out, &summary)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(out))
                    .map_err(LogsError::Stdout)?;
            } else if summary.files > 0 {
                for line in split::describe(&summary) {
                    report.info(line);
                }
            }
            Ok(outcome)
        }
        Command::Resolve(args) => {
            let switches = cli.common.switches()?;
            let cache = args.cache.clone().unwrap_or_else(|| {
                let configured = switches.string("logs_dns_cache", "");
                if configured.is_empty() {
                    switches
                        .path("logs_spool", "/var/spool/pysk/wwwlogs")
                        .join("dnscache.txt")
                } else {
                    PathBuf::from(configured)
                }
            });
            let options = resolve::Options {
                cache,
                nameservers: args.nameservers,
                concurrency: usize::from(args.concurrency),
                timeout: std::time::Duration::from_secs_f64(args.timeout),
                attempts: usize::from(args.attempts),
                ttl: std::time::Duration::from_secs(args.ttl.saturating_mul(86_400)),
                negative_ttl: std::time::Duration::from_secs(
                    args.negative_ttl.saturating_mul(3600),
                ),
                confirm: args.confirm,
                files: args.files,
                wait: args.wait.duration(),
            };
            let (summary, outcome) = resolve::run(&options, &report)?;
            if args.json {
                let mut out = stdout.lock();
                serde_json::to_writer_pretty(&mut out, &summary)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(out))
                    .map_err(LogsError::Stdout)?;
            } else {
                report.info(resolve::describe(&summary));
            }
            Ok(outcome)
        }
        Command::Merge(args) => {
            let switches = cli.common.switches()?;
            let reorder = match args.reorder {
                Some(n) => n,
                None => switches.parsed("logs_reorder", 1000usize)?,
            };
            let options = merge::Options {
                files: args.files,
                reorder,
                archive: args.archive,
            };
            // Straight to the file descriptor: no line buffering on the way.
            let fd = std::os::fd::AsFd::as_fd(&stdout)
                .try_clone_to_owned()
                .map_err(LogsError::Stdout)?;
            let mut out = output::ThreadedWriter::new(std::fs::File::from(fd));
            let (summary, outcome) = merge::run(&options, &mut out, &report)?;
            report.verbose(format!(
                "merged {} line(s) from {} file(s): {} late, {} unparsable, {} archived",
                summary.lines,
                options.files.len(),
                summary.late,
                summary.unparsable,
                summary.archived
            ));
            Ok(outcome)
        }
    }
}

/// Resolves `split`'s options against the switches.
fn split_options(args: &SplitArgs, switches: &Switches) -> Result<split::Options, LogsError> {
    let spool = args
        .spool
        .clone()
        .unwrap_or_else(|| switches.path("logs_spool", "/var/spool/pysk/wwwlogs"));
    let vhosts = args.vhosts.clone().or_else(|| {
        let p = switches.string("logs_vhosts", "");
        (!p.is_empty()).then(|| PathBuf::from(p))
    });
    let memory = match args.memory {
        Some(m) => m,
        None => parse_size(&switches.string("logs_memory", "256M")).map_err(|reason| {
            LogsError::Setting {
                name: "logs_memory".into(),
                reason,
            }
        })?,
    };
    let vhost = match &args.vhost {
        None => None,
        Some(v) => {
            Some(
                format::normalize_vhost(v.as_bytes()).ok_or_else(|| LogsError::Setting {
                    name: "--vhost".into(),
                    reason: format!("{v:?} is not a virtual host name"),
                })?,
            )
        }
    };
    Ok(split::Options {
        spool,
        vhosts: vhosts.as_deref().map(read_vhosts).transpose()?,
        vhost,
        memory,
        files: args.files.clone(),
        wait: args.wait.duration(),
    })
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
}
