//! `pysk-logs run`: the nightly job — fetch (when an IMAP mailbox is
//! configured), split, resolve, awstats — under one lock.
//!
//! A stage that fails is reported and the later stages still run, since
//! each of them only ever works on what earlier runs left complete: split
//! takes whatever is in the inbox, resolve and awstats whatever is pending.
//! The run ends with exit 1 when anything failed.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;

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

/// What a `run` did, as printed by `--json`: each stage's own summary
/// (absent when the stage did not run or failed), and the stages that
/// failed with their error.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// `fetch`'s summary; absent when no mailbox is configured.
    pub fetch: Option<fetch::Summary>,
    /// `split`'s summary.
    pub split: Option<split::Summary>,
    /// `resolve`'s summary; absent when no log was pending.
    pub resolve: Option<resolve::Summary>,
    /// `awstats`' summary.
    pub awstats: Option<awstats::Summary>,
    /// Stages that failed outright, in order.
    pub failed: Vec<Failure>,
}

/// A stage that failed outright.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The stage: `fetch`, `split`, `resolve` or `awstats`.
    pub stage: &'static str,
    /// The error, as it is printed on stderr.
    pub error: String,
}

/// How the stages report: the summary lines on stderr, unless `--json`
/// collects them into one document instead.
struct Stages<'r> {
    report: &'r Reporter,
    json: bool,
    partial: bool,
    summary: Summary,
}

impl Stages<'_> {
    /// Records how stage `name` ended; `describe` gives its summary lines.
    fn end<S>(
        &mut self,
        name: &'static str,
        result: Result<(S, Outcome), LogsError>,
        describe: impl Fn(&S) -> Vec<String>,
    ) -> Option<S> {
        match result {
            Ok((summary, outcome)) => {
                self.partial |= outcome == Outcome::Partial;
                if !self.json {
                    describe(&summary)
                        .into_iter()
                        .for_each(|l| self.report.info(l));
                }
                Some(summary)
            }
            Err(e) => {
                self.report.warn(format!("{name}: {e}"));
                self.partial = true;
                self.summary.failed.push(Failure {
                    stage: name,
                    error: e.to_string(),
                });
                None
            }
        }
    }
}

/// Runs the stages in order; the caller holds the spool's lock. With
/// `json`, the stages' summary lines are not printed: the caller prints
/// the returned summary instead.
pub fn run(options: Options, report: &Reporter, json: bool) -> (Summary, Outcome) {
    let mut stages = Stages {
        report,
        json,
        partial: false,
        summary: Summary::default(),
    };
    if let Some(fetch) = options.fetch {
        let result = fetch.and_then(|o| fetch::run(&o, report));
        stages.summary.fetch = stages.end("fetch", result, |s| vec![fetch::describe(s)]);
    }
    let result = split::run(&options.split, report);
    stages.summary.split = stages.end("split", result, |s| {
        if s.files > 0 {
            split::describe(s)
        } else {
            Vec::new()
        }
    });
    let pending = pending_logs(&options.split.spool);
    if !pending.is_empty() {
        let mut resolve = options.resolve;
        resolve.files = pending;
        let result = resolve::run(&resolve, report);
        stages.summary.resolve = stages.end("resolve", result, |s| vec![resolve::describe(s)]);
    }
    let result = awstats::run(&options.awstats, report);
    stages.summary.awstats = stages.end("awstats", result, |s| vec![awstats::describe(s)]);
    let outcome = if stages.partial {
        Outcome::Partial
    } else {
        Outcome::Success
    };
    (stages.summary, outcome)
}
