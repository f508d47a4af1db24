//! `pysk-logs`: web server access logs, from mail and spool files to
//! clean, time-sorted logs per virtual host, the reverse-DNS cache, and
//! AWStats' configurations and statistics.
//!
//! - `split` ([`split`]): parses raw logs in the Pysk formats
//!   ([`format`]), sorts them by time per virtual host with bounded memory
//!   ([`sorter`]) and commits the outputs as one crash-safe batch
//!   ([`spool`]).
//! - `merge` ([`merge`]): a streaming k-way merge of time-sorted logs, for
//!   AWStats' `LogFile` pipe, with archiving of what was read.
//! - `resolve` ([`resolve`]): the reverse-DNS cache AWStats reads
//!   ([`dnscache`]), built by concurrent lookups.
//! - `fetch` ([`fetch`]): logs that servers mailed, from an IMAP mailbox
//!   into the spool's inbox.
//! - `awstats` ([`awstats`]): one AWStats configuration per virtual host,
//!   and AWStats run for those with pending logs.
//! - `run` ([`job`]): the nightly job, the stages above in order.
//! - `config`: the effective switches.
//!
//! The command line is in [`cli`], the switches and the resolution of
//! every option in [`settings`]; this file only dispatches: it parses,
//! resolves, calls the module and prints what it returns.

pub mod awstats;
pub mod cli;
pub mod dnscache;
pub mod error;
pub mod failpoint;
pub mod fetch;
pub mod format;
pub mod inbox;
pub mod input;
pub mod job;
pub mod lines;
pub mod merge;
pub mod output;
pub mod resolve;
pub mod settings;
pub mod sorter;
pub mod split;
pub mod spool;
pub mod time;
pub mod vhosts;

use std::io::{self, Write};

use pysk_common::exit::Outcome;
use pysk_common::report::{Reporter, print_json};
use pysk_common::settings::Settings;

use cli::{AwstatsArgs, Cli, Command, FetchArgs, MergeArgs, ResolveArgs, RunArgs, SplitArgs};
pub use error::LogsError;
use settings::SWITCHES;
use spool::Spool;

/// Parses the command line and runs the subcommand.
pub fn try_main() -> Result<Outcome, LogsError> {
    let Cli { common, command } = pysk_common::cli::parse::<Cli>(SWITCHES);
    let report = common.reporter(cli::NAME);
    let settings = common.settings(SWITCHES, &report)?;
    match command {
        Command::Config => {
            common.print_config(&settings, &mut io::stdout().lock())?;
            Ok(Outcome::Success)
        }
        Command::Split(args) => split(&settings, &args, &report),
        Command::Merge(args) => merge(&settings, &args, &report),
        Command::Resolve(args) => resolve(&settings, &args, &report),
        Command::Fetch(args) => fetch(&settings, &args, &report),
        Command::Awstats(args) => awstats(&settings, &args, &report),
        Command::Run(args) => run(&settings, &args, &report),
    }
}

/// `split`: the summary on stderr, or as JSON on stdout.
fn split(settings: &Settings, args: &SplitArgs, report: &Reporter) -> Result<Outcome, LogsError> {
    let (dir, wait) = settings::spool(settings, &args.spool)?;
    let options = settings::split(settings, &dir, args)?;
    let (_spool, _lock) = Spool::open_locked(&dir, wait)?;
    let (summary, outcome) = split::run(&options, report)?;
    if args.json.json {
        print_json(&summary)?;
    } else if summary.files > 0 {
        split::describe(&summary)
            .into_iter()
            .for_each(|l| report.info(l));
    }
    Ok(outcome)
}

/// `merge`: the data on stdout, the summary on stderr with `-v`.
fn merge(settings: &Settings, args: &MergeArgs, report: &Reporter) -> Result<Outcome, LogsError> {
    let options = settings::merge(settings, args)?;
    let mut out = output::ThreadedWriter::stdout().map_err(pysk_common::Error::Stdout)?;
    let (summary, outcome) = merge::run(&options, &mut out, report)?;
    report.verbose(merge::describe(&summary, options.files.len()));
    Ok(outcome)
}

/// `resolve`, under the cache's own lock.
fn resolve(
    settings: &Settings,
    args: &ResolveArgs,
    report: &Reporter,
) -> Result<Outcome, LogsError> {
    let options = settings::resolve(settings, args)?;
    let (summary, outcome) = resolve::run(&options, report)?;
    if args.json.json {
        print_json(&summary)?;
    } else {
        report.info(resolve::describe(&summary));
    }
    Ok(outcome)
}

/// `fetch`, under the spool's lock.
fn fetch(settings: &Settings, args: &FetchArgs, report: &Reporter) -> Result<Outcome, LogsError> {
    let (dir, wait) = settings::spool(settings, &args.spool)?;
    let options = settings::fetch(settings, &dir, args)?;
    let (_spool, _lock) = Spool::open_locked(&dir, wait)?;
    let (summary, outcome) = fetch::run(&options, report)?;
    if args.json.json {
        print_json(&summary)?;
    } else {
        report.info(fetch::describe(&summary));
    }
    Ok(outcome)
}

/// `awstats`, under the spool's lock; `--dry-run` prints the plan (or,
/// with `--json`, the document the real run would print) and creates
/// nothing, not even the spool or its lock file.
fn awstats(
    settings: &Settings,
    args: &AwstatsArgs,
    report: &Reporter,
) -> Result<Outcome, LogsError> {
    let (dir, wait) = settings::spool(settings, &args.spool)?;
    let options = settings::awstats(settings, &dir, args)?;
    if args.dry_run.dry_run {
        let _lock = Spool::new(&dir).lock_existing(wait)?;
        let plan = awstats::plan(&options, report)?;
        if args.json.json {
            print_json(&plan.summary())?;
        } else {
            let mut out = io::stdout().lock();
            out.write_all(plan.show(&options).as_bytes())
                .and_then(|()| out.flush())
                .map_err(pysk_common::Error::Stdout)?;
        }
        return Ok(Outcome::Success);
    }
    let (_spool, _lock) = Spool::open_locked(&dir, wait)?;
    let (summary, outcome) = awstats::run(&options, report)?;
    if args.json.json {
        print_json(&summary)?;
    } else {
        report.info(awstats::describe(&summary));
    }
    Ok(outcome)
}

/// `run`, the nightly job, under the spool's lock.
fn run(settings: &Settings, args: &RunArgs, report: &Reporter) -> Result<Outcome, LogsError> {
    let (dir, wait) = settings::spool(settings, &args.spool)?;
    let options = settings::run(settings, &dir, args)?;
    let (_spool, _lock) = Spool::open_locked(&dir, wait)?;
    let (summary, outcome) = job::run(options, report, args.json.json);
    if args.json.json {
        print_json(&summary)?;
    }
    Ok(outcome)
}
