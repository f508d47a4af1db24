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
pub mod fetch;
pub mod format;
pub mod input;
pub mod job;
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
use std::time::Duration;

use clap::Parser;

use pysk_common::exit::Outcome;
use pysk_common::switches::{Spec, Switches};

pub use cli::Cli;
use cli::{AwstatsArgs, Command, FetchArgs, SplitArgs, SpoolArgs, parse_size};
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
        key: "logs_awstats_data_group",
        default: "",
        help: "group awstats gives DirData, e.g. www-data (empty: left as it is)",
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
        key: "logs_dns_nameserver",
        default: "",
        help: "resolve's name servers, IP[:PORT] separated by spaces (empty: /etc/resolv.conf)",
    },
    Spec {
        key: "logs_imap_url",
        default: "",
        help: "fetch's mailbox, imap[s]://USER@HOST[:PORT]/MAILBOX (empty: run does not fetch)",
    },
    Spec {
        key: "logs_imap_password_file",
        default: "",
        help: "file holding the IMAP password, readable only by its owner",
    },
    Spec {
        key: "logs_imap_subject",
        default: "access.log",
        help: "text the Subject of a log mail contains",
    },
    Spec {
        key: "logs_imap_done_mailbox",
        default: "",
        help: "move fetched mail there instead of marking it seen",
    },
    Spec {
        key: "logs_imap_ca_file",
        default: "",
        help: "CA certificate (PEM) the IMAP server's certificate is checked against",
    },
    Spec {
        key: "logs_imap_insecure_plaintext",
        default: "no",
        help: "allow the IMAP password without TLS to a host that is not loopback",
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
    let Cli { common, command } = Cli::parse();
    let report = common.reporter("pysk-logs");
    if let Command::Config = command {
        common.print_config(SWITCHES, &mut io::stdout().lock())?;
        return Ok(Outcome::Success);
    }
    let switches = common.switches()?;
    match command {
        // Printed above, before the switches are read for a subcommand.
        Command::Config => Ok(Outcome::Success),
        Command::Split(args) => {
            let (spool, _lock) = locked_spool(&args.spool, &switches)?;
            let options = split_options(&spool, Some(&args), &switches)?;
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
        Command::Merge(args) => {
            let options = merge::Options {
                reorder: match args.reorder {
                    Some(n) => n,
                    None => switches.parsed("logs_reorder", 1000usize)?,
                },
                files: args.files,
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
        Command::Resolve(args) => {
            let options = resolve_options(Some(&args), &switches)?;
            let (summary, outcome) = resolve::run(&options, &report)?;
            if args.json {
                print_json(&summary)?;
            } else {
                report.info(resolve::describe(&summary));
            }
            Ok(outcome)
        }
        Command::Fetch(args) => {
            let (spool, _lock) = locked_spool(&args.spool, &switches)?;
            let options = fetch_options(&spool, Some(&args), &switches)?.ok_or_else(|| {
                LogsError::Setting {
                    name: "--imap-url".into(),
                    reason: "no mailbox given (option --imap-url or switch logs_imap_url)".into(),
                }
            })??;
            let (summary, outcome) = fetch::run(&options, &report)?;
            report.info(fetch::describe(&summary));
            Ok(outcome)
        }
        Command::Awstats(args) => {
            let (spool, _lock) = locked_spool(&args.spool, &switches)?;
            let options = awstats_options(&spool, Some(&args), &switches)?;
            let (summary, outcome) = awstats::run(&options, &report)?;
            report.info(awstats::describe(&summary));
            Ok(outcome)
        }
        Command::Run(args) => {
            let (spool, _lock) = locked_spool(&args.spool, &switches)?;
            let options = job::Options {
                fetch: fetch_options(&spool, None, &switches)?,
                split: split_options(&spool, None, &switches)?,
                resolve: resolve_options(None, &switches)?,
                awstats: awstats_options(&spool, None, &switches)?,
            };
            Ok(job::run(options, &report))
        }
    }
}

/// The spool (`--spool`, else the switch), its directories made, its lock
/// taken.
fn locked_spool(
    args: &SpoolArgs,
    switches: &Switches,
) -> Result<(PathBuf, pysk_common::lock::Lock), LogsError> {
    let dir = args
        .spool
        .clone()
        .unwrap_or_else(|| switches.path("logs_spool", "/var/spool/pysk/wwwlogs"));
    let spool = spool::Spool::new(&dir);
    spool.prepare()?;
    let lock = spool.lock(args.wait.duration())?;
    Ok((dir, lock))
}

/// The DNS cache: the switch, else `<logs_spool>/dnscache.txt`.
fn dns_cache(switches: &Switches) -> PathBuf {
    let configured = switches.string("logs_dns_cache", "");
    if configured.is_empty() {
        switches
            .path("logs_spool", "/var/spool/pysk/wwwlogs")
            .join("dnscache.txt")
    } else {
        PathBuf::from(configured)
    }
}

/// A switch naming a file, `None` when empty.
fn optional_path(switches: &Switches, key: &str) -> Option<PathBuf> {
    Some(switches.string(key, ""))
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Resolves `split`'s options; `None` (for `run`) takes the switches alone.
fn split_options(
    spool: &Path,
    args: Option<&SplitArgs>,
    switches: &Switches,
) -> Result<split::Options, LogsError> {
    let vhosts = args
        .and_then(|a| a.vhosts.clone())
        .or_else(|| optional_path(switches, "logs_vhosts"));
    let memory = match args.and_then(|a| a.memory) {
        Some(m) => m,
        None => parse_size(&switches.string("logs_memory", "256M")).map_err(|reason| {
            LogsError::Setting {
                name: "logs_memory".into(),
                reason,
            }
        })?,
    };
    let vhost = match args.and_then(|a| a.vhost.as_deref()) {
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
        spool: spool.to_owned(),
        vhosts: vhosts.as_deref().map(read_vhosts).transpose()?,
        vhost,
        memory,
        files: args.map(|a| a.files.clone()).unwrap_or_default(),
    })
}

/// Resolves `resolve`'s options; `None` (for `run`) takes every default.
fn resolve_options(
    args: Option<&cli::ResolveArgs>,
    switches: &Switches,
) -> Result<resolve::Options, LogsError> {
    let nameservers = match args {
        Some(a) if !a.nameservers.is_empty() => a.nameservers.clone(),
        _ => switches
            .string("logs_dns_nameserver", "")
            .split_ascii_whitespace()
            .map(|ns| {
                cli::parse_nameserver(ns).map_err(|reason| LogsError::Setting {
                    name: "logs_dns_nameserver".into(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let (concurrency, timeout, attempts, ttl_days, negative_hours, confirm) = match args {
        Some(a) => (
            usize::from(a.concurrency),
            a.timeout,
            usize::from(a.attempts),
            a.ttl,
            a.negative_ttl,
            a.confirm,
        ),
        None => (256, 2.0, 2, 7, 6, false),
    };
    Ok(resolve::Options {
        cache: args
            .and_then(|a| a.cache.clone())
            .unwrap_or_else(|| dns_cache(switches)),
        nameservers,
        concurrency,
        timeout: Duration::from_secs_f64(timeout),
        attempts,
        ttl: Duration::from_secs(ttl_days.saturating_mul(86_400)),
        negative_ttl: Duration::from_secs(negative_hours.saturating_mul(3600)),
        confirm,
        files: args.map(|a| a.files.clone()).unwrap_or_default(),
        wait: args.map_or(Duration::ZERO, |a| a.wait.duration()),
    })
}

/// Resolves `fetch`'s options: `None` when no mailbox is configured; the
/// inner error when one is but its settings are not usable (an exposed
/// password file, say), which `run` reports as a failed stage.
fn fetch_options(
    spool: &Path,
    args: Option<&FetchArgs>,
    switches: &Switches,
) -> Result<Option<Result<fetch::Options, LogsError>>, LogsError> {
    let url = args
        .and_then(|a| a.imap_url.clone())
        .unwrap_or_else(|| switches.string("logs_imap_url", ""));
    if url.is_empty() {
        return Ok(None);
    }
    let insecure = args.is_some_and(|a| a.insecure_plaintext)
        || switches.flag("logs_imap_insecure_plaintext", false)?;
    let subject = args
        .and_then(|a| a.subject_contains.clone())
        .unwrap_or_else(|| switches.string("logs_imap_subject", "access.log"));
    let done = args
        .and_then(|a| a.done_mailbox.clone())
        .or_else(|| Some(switches.string("logs_imap_done_mailbox", "")).filter(|v| !v.is_empty()));
    let ca_file = args
        .and_then(|a| a.ca_file.clone())
        .or_else(|| optional_path(switches, "logs_imap_ca_file"));
    let password_file = args
        .and_then(|a| a.password_file.clone())
        .or_else(|| optional_path(switches, "logs_imap_password_file"));
    let options = (|| {
        let url: fetch::ImapUrl = url.parse().map_err(|reason| LogsError::Setting {
            name: "logs_imap_url".into(),
            reason,
        })?;
        let password_file = password_file.ok_or_else(|| LogsError::Setting {
            name: "--password-file".into(),
            reason: "an IMAP mailbox needs a password file (switch logs_imap_password_file)".into(),
        })?;
        Ok(fetch::Options {
            url,
            password: pysk_common::secret::read_file(&password_file)?,
            subject_contains: subject,
            done_mailbox: done,
            ca_file,
            insecure_plaintext: insecure,
            inbox: spool.join("inbox"),
        })
    })();
    Ok(Some(options))
}

/// Resolves `awstats`' options; `None` (for `run`) takes the switches alone.
fn awstats_options(
    spool: &Path,
    args: Option<&AwstatsArgs>,
    switches: &Switches,
) -> Result<awstats::Options, LogsError> {
    let mode_text = switches.string("logs_awstats_data_mode", "0755");
    let data_mode = u32::from_str_radix(&mode_text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| LogsError::Setting {
            name: "logs_awstats_data_mode".into(),
            reason: format!("{mode_text:?} is not an octal mode like 0750"),
        })?;
    let vhosts = match optional_path(switches, "logs_vhosts") {
        None => None,
        Some(p) => {
            let mut list: Vec<String> = read_vhosts(&p)?.into_iter().collect();
            list.sort();
            Some(list)
        }
    };
    Ok(awstats::Options {
        spool: spool.to_owned(),
        conf_dir: args
            .and_then(|a| a.conf_dir.clone())
            .unwrap_or_else(|| switches.path("logs_awstats_conf_dir", "/etc/awstats")),
        data_dir: args
            .and_then(|a| a.data_dir.clone())
            .unwrap_or_else(|| switches.path("logs_awstats_data_dir", "/var/lib/awstats")),
        data_mode,
        data_group: Some(switches.string("logs_awstats_data_group", "")).filter(|g| !g.is_empty()),
        dns_cache: args
            .and_then(|a| a.cache.clone())
            .unwrap_or_else(|| dns_cache(switches)),
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
