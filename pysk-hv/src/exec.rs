//! `exec`: one command on every host picked, each host's result told
//! apart.
//!
//! The hosts come from [`crate::targets`]; each gets the same remote command
//! ([`ssh::remote_command`]) through its own ssh ([`fanout`]). Output
//! comes as `host: line` while it runs, or grouped after it
//! (`--gather`), or straight into files as it comes (`--outdir`), or
//! inside the `--json` document (kept up to [`fanout::KEEP`] a stream).
//! stdin, when it is not a terminal, is read once into a private file
//! that every host's ssh opens for itself, so that each host gets all of
//! it. The run ends with a line per host that was not ok and
//! the counts, records each host's class in `last-run.json` for
//! `--rerun`, and exits 0 only when every host was ok.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use pysk_common::exit::Outcome;
use pysk_common::inventory::Host;
use pysk_common::report::{self, Reporter};
use serde::Serialize;

use crate::classify::Class;
use crate::error::HvError;
use crate::fanout::{self, Job};
use crate::run::Run;
use crate::ssh;
use crate::summary::{self, Plan, PlannedHost};

/// The options of `exec`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts, ssh, fanout, timeout, state, `--json`, `--dry-run`.
    pub run: Run,
    /// The command's words (shell text).
    pub command: Vec<String>,
    /// `--gather`.
    pub gather: bool,
    /// `--outdir`.
    pub outdir: Option<PathBuf>,
}

/// Runs `exec`; the remote output on `out` (stdout) and stderr.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, HvError> {
    let run = &options.run;
    let Some(prepared) = crate::run::prepare(run, report)? else {
        return Ok(Outcome::Success);
    };
    let remote = ssh::remote_command(&options.command, run.timeout);
    if run.dry_run {
        return dry_run(run, &prepared.hosts, &remote, out);
    }
    let private = prepared.private.path();
    let stdin = spool_stdin(private)?;
    let mut jobs = jobs(run, &prepared.hosts, private, &remote)?;
    if let Some(dir) = &options.outdir {
        to_outdir(dir, &mut jobs)?;
    }
    let keep = run.json || options.outdir.is_some();
    let limits = run.limits(stdin.as_deref(), !keep && !options.gather, !keep);
    let outcomes = fanout::run(&jobs, limits, report, out)?;
    if options.gather && !run.json {
        summary::gather(&outcomes, out).map_err(pysk_common::Error::Stdout)?;
    }
    let output = options.outdir.is_none();
    conclude(run, &outcomes, report, || {
        summary::summary(&outcomes, output)
    })
}

/// After the hosts of any run: the summary (with each host's output in
/// `--json`), the last run recorded, the outcome.
pub(crate) fn finish(
    run: &Run,
    outcomes: &[fanout::Outcome],
    report: &Reporter,
) -> Result<Outcome, HvError> {
    conclude(run, outcomes, report, || summary::summary(outcomes, true))
}

/// The summary lines, or with `--json` the `document` (a subcommand's
/// own, holding the summary), the last run recorded when the run
/// records ([`Run::record`]), exit 0 only when every host was ok.
pub(crate) fn conclude<T: Serialize>(
    run: &Run,
    outcomes: &[fanout::Outcome],
    report: &Reporter,
    document: impl FnOnce() -> T,
) -> Result<Outcome, HvError> {
    if run.json {
        report::print_json(&document())?;
    } else {
        let (warnings, info) = summary::lines(outcomes);
        for warning in warnings {
            report.warn(warning);
        }
        report.info(info);
    }
    // After the summary, so that a state directory that cannot be
    // written does not hide what happened; a --rerun updates the hosts it
    // ran and keeps the others' classes.
    if run.record {
        let merge = run.selection.rerun.is_some();
        summary::record(&run.state_dir, outcomes, merge)?;
    }
    Ok(if outcomes.iter().all(|o| o.class == Class::Ok) {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// Each host's ssh (see [`crate::run::jobs`]).
pub(crate) use crate::run::jobs;

/// `--dry-run`: each host's ssh command line on stdout (its log shown as
/// `LOGDIR/<host>.log`), or the plan as JSON; nothing is run.
pub(crate) fn dry_run(
    run: &Run,
    hosts: &[Host],
    remote: &str,
    out: &mut dyn Write,
) -> Result<Outcome, HvError> {
    let jobs = jobs(run, hosts, Path::new("LOGDIR"), remote)?;
    let planned: Vec<PlannedHost> = jobs
        .into_iter()
        .map(|job| PlannedHost {
            host: job.host,
            argv: job
                .argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        })
        .collect();
    if run.json {
        report::print_json(&Plan {
            dry_run: true,
            hosts: planned,
        })?;
        return Ok(Outcome::Success);
    }
    for host in planned {
        let words: Vec<String> = host.argv.iter().map(|a| shell_word(a)).collect();
        writeln!(out, "{}: {}", host.host, words.join(" ")).map_err(pysk_common::Error::Stdout)?;
    }
    out.flush().map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}

/// `word` as the shell would need it: as it is when it holds only
/// characters no shell treats specially, else quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        ssh::quote(word)
    }
}

/// stdin copied into `dir/stdin` (owner-only: it may hold secrets) when it is not a terminal, for every
/// host's ssh to open; `None` (each ssh reads /dev/null) on a terminal.
fn spool_stdin(dir: &Path) -> Result<Option<PathBuf>, HvError> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let path = dir.join("stdin");
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(pysk_common::error::write_err(&path))?;
    io::copy(&mut stdin.lock(), &mut file).map_err(pysk_common::error::write_err(&path))?;
    Ok(Some(path))
}

/// `--outdir`: each host's stdout and stderr go straight into
/// `<host>.out` and `<host>.err` (owner-only: output can hold secrets),
/// in `dir`, made owner-only when missing.
fn to_outdir(dir: &Path, jobs: &mut [Job]) -> Result<(), HvError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(pysk_common::error::write_err(dir))?;
    for job in jobs {
        job.stdout_to = Some(dir.join(format!("{}.out", job.host)));
        job.stderr_to = Some(dir.join(format!("{}.err", job.host)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_words_are_quoted_only_when_a_shell_needs_it() {
        assert_eq!(shell_word("ConnectTimeout=10"), "ConnectTimeout=10");
        assert_eq!(shell_word("LOGDIR/web1.log"), "LOGDIR/web1.log");
        assert_eq!(shell_word("sh -c 'true'"), "'sh -c '\\''true'\\'''");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
    }
}
