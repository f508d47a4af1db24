//! `pysk-logs`: web server access logs, from raw spool files to clean,
//! time-sorted logs per virtual host for AWStats.
//!
//! - `split` ([`split`]): parses raw logs in the Pysk formats
//!   ([`format`]), sorts them by time per virtual host with bounded memory
//!   ([`sorter`]) and commits the outputs as one crash-safe batch
//!   ([`spool`]).
//! - `merge` ([`merge`]): a streaming k-way merge of time-sorted logs, for
//!   AWStats' `LogFile` pipe, with archiving of what was read.
//! - `resolve` ([`resolve`]): the reverse-DNS cache AWStats reads
//!   ([`dnscache`]), built by concurrent lookups.
//! - `config`: the effective switches.
//!
//! The command line is in [`cli`]; this file dispatches it.

pub mod awstats;
pub mod cli;
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

use clap::Parser;

use pysk_common::exit::Outcome;
use pysk_common::switches::{Spec, Switches};

pub use cli::Cli;
use cli::{AwstatsArgs, Command, SplitArgs, parse_size};
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
        key: "logs_awstats_conf_dir",
        default: "/etc/awstats",
        help: "where awstats writes awstats.<vhost>.conf",
    },
    Spec {
        key: "logs_awstats_data_dir",
        default: "/var/lib/awstats",
        help: "AWStats' DirData",
    },
    Spec {
        key: "logs_awstats_data_mode",
        default: "0755",
        help: "permission bits awstats sets on DirData (octal)",
    },
    Spec {
        key: "logs_awstats_include",
        default: "/etc/awstats/awstats.conf.local",
        help: "site-wide AWStats settings, included when the file exists",
    },
    Spec {
        key: "logs_awstats_pl",
        default: "/usr/lib/cgi-bin/awstats.pl",
        help: "the AWStats program",
    },
    Spec {
        key: "logs_reorder",
        default: "1000",
        help: "lines of lookahead per input merge uses to order nearly sorted logs",
    },
];

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
    match cli.command {
        Command::Config => {
            cli.common
                .print_config(SWITCHES, &mut io::stdout().lock())?;
            Ok(Outcome::Success)
        }
        Command::Split(args) => {
            let switches = cli.common.switches()?;
            let options = split_options(&args, &switches)?;
            let spool = spool::Spool::new(&options.spool);
            spool.prepare()?;
            let _lock = spool.lock(args.wait.duration())?;
            let (summary, outcome) = split::run(&options, &report)?;
            if args.json {
                print_json(&summary)?;
            } else if summary.files > 0 {
                for line in split::describe(&summary) {
                    report.info(line);
                }
            }
            Ok(outcome)
        }
        Command::Awstats(args) => {
            let switches = cli.common.switches()?;
            let options = awstats_options(&args, &switches)?;
            let spool = spool::Spool::new(&options.spool);
            spool.prepare()?;
            let _lock = spool.lock(args.wait.duration())?;
            let (summary, outcome) = awstats::run(&options, &report)?;
            report.info(format!(
                "awstats: {} configuration(s) written, {} removed, {} vhost(s) updated, {} failed",
                summary.written.len(),
                summary.removed.len(),
                summary.updated.len(),
                summary.failed.len()
            ));
            Ok(outcome)
        }
        Command::Resolve(args) => {
            let switches = cli.common.switches()?;
            let cache = args.cache.clone().unwrap_or_else(|| dns_cache(&switches));
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
                print_json(&summary)?;
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
            let fd = std::os::fd::AsFd::as_fd(&io::stdout())
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

/// The spool: `--spool`, else the switch.
fn spool_dir(spool: Option<&PathBuf>, switches: &Switches) -> PathBuf {
    spool
        .cloned()
        .unwrap_or_else(|| switches.path("logs_spool", "/var/spool/pysk/wwwlogs"))
}

/// The DNS cache: the switch, else `<spool>/dnscache.txt`.
fn dns_cache(switches: &Switches) -> PathBuf {
    let configured = switches.string("logs_dns_cache", "");
    if configured.is_empty() {
        spool_dir(None, switches).join("dnscache.txt")
    } else {
        PathBuf::from(configured)
    }
}

/// Resolves `awstats`' options against the switches.
fn awstats_options(args: &AwstatsArgs, switches: &Switches) -> Result<awstats::Options, LogsError> {
    let mode_text = switches.string("logs_awstats_data_mode", "0755");
    let data_mode = u32::from_str_radix(&mode_text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| LogsError::Setting {
            name: "logs_awstats_data_mode".into(),
            reason: format!("{mode_text:?} is not an octal mode like 0750"),
        })?;
    let vhosts = {
        let p = switches.string("logs_vhosts", "");
        if p.is_empty() {
            None
        } else {
            let mut list: Vec<String> = read_vhosts(Path::new(&p))?.into_iter().collect();
            list.sort();
            Some(list)
        }
    };
    Ok(awstats::Options {
        spool: spool_dir(args.spool.as_ref(), switches),
        conf_dir: args
            .conf_dir
            .clone()
            .unwrap_or_else(|| switches.path("logs_awstats_conf_dir", "/etc/awstats")),
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| switches.path("logs_awstats_data_dir", "/var/lib/awstats")),
        data_mode,
        dns_cache: args.cache.clone().unwrap_or_else(|| dns_cache(switches)),
        include: switches.path("logs_awstats_include", "/etc/awstats/awstats.conf.local"),
        awstats_pl: switches.path("logs_awstats_pl", "/usr/lib/cgi-bin/awstats.pl"),
        pysk_logs: std::env::current_exe().map_err(|e| LogsError::Setting {
            name: "pysk-logs".into(),
            reason: format!("cannot find its own path: {e}"),
        })?,
        vhosts,
    })
}

/// Prints a run's summary as JSON on stdout (`--json`).
fn print_json(summary: &impl serde::Serialize) -> Result<(), LogsError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, summary)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .map_err(LogsError::Stdout)
}

/// Resolves `split`'s options against the switches.
fn split_options(args: &SplitArgs, switches: &Switches) -> Result<split::Options, LogsError> {
    let spool = spool_dir(args.spool.as_ref(), switches);
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
    })
}
