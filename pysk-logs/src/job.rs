//! `pysk-logs run`: the nightly job — fetch (when an IMAP mailbox is
//! configured), split, resolve, awstats — under one lock.
//!
//! A stage that fails is reported and the later stages still run, since
//! each of them only ever works on what earlier runs left complete: split
//! takes whatever is in the inbox, resolve and awstats whatever is pending.
//! The run ends with exit 1 when anything failed.

use std::fs;
use std::path::PathBuf;

use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::error::LogsError;
use crate::{awstats, fetch, resolve, split};

/// The stages' options, resolved from the switches.
pub struct Options {
    /// `fetch`, when a mailbox is configured; an error here (an unreadable
    /// password file, say) fails that stage only.
    pub fetch: Option<Result<fetch::Options, LogsError>>,
    /// `split`.
    pub split: split::Options,
    /// `resolve`; its inputs are the pending logs, found when it runs.
    pub resolve: resolve::Options,
    /// `awstats`.
    pub awstats: awstats::Options,
}

/// The pending logs, for resolve.
fn pending_logs(spool: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(vhosts) = fs::read_dir(spool.join("pending")) else {
        return out;
    };
    for vhost in vhosts.filter_map(Result::ok) {
        if let Ok(files) = fs::read_dir(vhost.path()) {
            out.extend(
                files
                    .filter_map(Result::ok)
                    .map(|f| f.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log")),
            );
        }
    }
    out.sort();
    out
}

/// Runs the stages in order; the caller holds the spool's lock.
pub fn run(options: Options, report: &Reporter) -> Outcome {
    let mut failed = false;
    let mut stage = |name: &str, result: Result<Outcome, LogsError>| match result {
        Ok(Outcome::Success) => {}
        Ok(Outcome::Partial) => failed = true,
        Err(e) => {
            report.warn(format!("{name}: {e}"));
            failed = true;
        }
    };

    if let Some(fetch) = options.fetch {
        stage(
            "fetch",
            fetch.and_then(|o| {
                let (s, outcome) = fetch::run(&o, report)?;
                report.info(fetch::describe(&s));
                Ok(outcome)
            }),
        );
    }
    stage(
        "split",
        split::run(&options.split, report).map(|(s, outcome)| {
            if s.files > 0 {
                for line in split::describe(&s) {
                    report.info(line);
                }
            }
            outcome
        }),
    );
    let pending = pending_logs(&options.split.spool);
    if !pending.is_empty() {
        let mut resolve = options.resolve;
        resolve.files = pending;
        stage(
            "resolve",
            resolve::run(&resolve, report).map(|(s, outcome)| {
                report.info(resolve::describe(&s));
                outcome
            }),
        );
    }
    stage(
        "awstats",
        awstats::run(&options.awstats, report).map(|(s, outcome)| {
            report.info(awstats::describe(&s));
            outcome
        }),
    );
    if failed {
        Outcome::Partial
    } else {
        Outcome::Success
    }
}
