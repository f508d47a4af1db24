//! `pysk-backup run`: the nightly job, under one lock (its own; the dump
//! step runs under it, [`dump::locked`]). Notify `start`; a new dump set
//! ([`dump`]); the engine's backup of the source, the set with it; a
//! check of that backup; only then retention and cleanup; the
//! last-success stamp; notify `success`. Any failed step notifies
//! `failure`, ends the run with its error (exit 1 for a failed dump or
//! step or a damaged backup), uploads nothing after it and prunes
//! nothing; a failed dump leaves the last good set as `current`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use pysk_common::atomic::{self, Options as FileOptions};
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::dump;
use crate::engine::{self, Backed, Kind, Pruned};
use crate::error::BackupError;

/// The longest a notify command may take before it is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// What `run` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine.
    pub engine: engine::Config,
    /// The dump step (its lock is ours).
    pub dump: dump::Options,
    /// The lock file.
    pub lock: PathBuf,
    /// How long to wait for the lock.
    pub wait: Duration,
    /// `backup_notify_command`, split at blanks (no shell); empty: none.
    pub notify: Vec<String>,
    /// Say what would be done; do nothing.
    pub dry_run: bool,
    /// Print the `--json` document.
    pub json: bool,
}

/// The `--json` document of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The dump step: the new set (or, dry, the dumps it would make).
    pub dump: dump::Summary,
    /// The engine.
    pub engine: Kind,
    /// The target.
    pub target: String,
    /// The backup made (none in a dry run).
    pub backup: Option<Backed>,
    /// What retention removed (none in a dry run).
    pub pruned: Option<Pruned>,
    /// The paths left out.
    pub excludes: Vec<PathBuf>,
}

/// The stamp `<state>/last-success.json`.
#[derive(Debug, Serialize)]
struct Stamp<'a> {
    time: String,
    engine: Kind,
    backup: &'a Backed,
}

/// Runs the job.
pub fn run(opts: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, BackupError> {
    // A contradictory selection is a usage error before anything starts.
    opts.dump.check()?;
    if opts.dry_run {
        return dry_run(opts, report, out);
    }
    let _lock = Lock::acquire(&opts.lock, opts.wait)?;
    notify(opts, "start", report);
    let done = steps(opts, report).and_then(|summary| {
        stamp(opts, summary.backup.as_ref())?;
        Ok(summary)
    });
    match done {
        Ok(summary) => {
            notify(opts, "success", report);
            print(opts, &summary, report)?;
            Ok(Outcome::Success)
        }
        Err(e) => {
            notify(opts, "failure", report);
            Err(e)
        }
    }
}

/// The steps in order; the first that fails ends the run.
fn steps(opts: &Options, report: &Reporter) -> Result<Summary, BackupError> {
    let engine = engine::open(&opts.engine)?;
    engine.prepare()?;
    // Before anything is backed up: a failed dump ends the run here, so
    // it is never uploaded and the last good set stays `current`.
    let dumped = dump::locked(&opts.dump, report)?;
    let backed = engine.backup()?;
    unreadable(opts, &backed, report)?;
    report.verbose(format_args!("backed up: {} {}", backed.kind, backed.id));
    engine.check(&backed)?;
    report.verbose("the new backup is on the target, whole");
    let pruned = engine.prune()?;
    engine.cleanup()?;
    Ok(Summary {
        dry_run: false,
        dump: dumped,
        engine: opts.engine.kind,
        target: opts.engine.target.clone(),
        backup: Some(backed),
        pruned: Some(pruned),
        excludes: engine::excludes(&opts.engine),
    })
}

/// The policy on files the engine could not read: a failure of the run
/// (nothing pruned) when one is in the dump directory, as the dumps must
/// be in the backup; a warning naming a few otherwise (a live system has
/// sockets and files that vanish mid-run).
fn unreadable(opts: &Options, backed: &Backed, report: &Reporter) -> Result<(), BackupError> {
    let paths = &backed.unreadable_paths;
    let few = |list: &[&PathBuf]| {
        let shown: Vec<String> = list
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        shown.join(", ")
    };
    let dumps: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| p.starts_with(&opts.engine.dump_dir))
        .collect();
    if !dumps.is_empty() {
        return Err(BackupError::Failed {
            step: "the backup".to_owned(),
            reason: format!("the dump set could not be read: {}", few(&dumps)),
        });
    }
    if backed.unreadable > 0 {
        let all: Vec<&PathBuf> = paths.iter().collect();
        report.warn(format_args!(
            "{} files could not be read and are not in the backup: {}",
            backed.unreadable,
            few(&all)
        ));
    }
    Ok(())
}

/// What a run would do: the same checks of the passphrase file, the
/// dumps it would make, nothing made (no lock file, no directory).
fn dry_run(opts: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, BackupError> {
    let _lock = Lock::existing(&opts.lock, opts.wait)?;
    pysk_common::secret::read_file(&opts.engine.passphrase_file)?;
    let dry = dump::Options {
        dry_run: true,
        ..opts.dump.clone()
    };
    let summary = Summary {
        dry_run: true,
        dump: dump::locked(&dry, report)?,
        engine: opts.engine.kind,
        target: opts.engine.target.clone(),
        backup: None,
        pruned: None,
        excludes: engine::excludes(&opts.engine),
    };
    if opts.json {
        report::print_json(&summary)?;
        return Ok(Outcome::Success);
    }
    dump::show(&summary.dump, false, report, out)?;
    plan(opts, &summary, out).map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}

/// The dry run's lines.
fn plan(opts: &Options, summary: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let c = &opts.engine;
    writeln!(
        out,
        "back up {} to {} with {}",
        c.source.display(),
        c.target,
        c.kind.name()
    )?;
    for path in &summary.excludes {
        writeln!(out, "  leaving out {}", path.display())?;
    }
    writeln!(out, "check the new backup")?;
    match c.kind {
        Kind::Duplicity => writeln!(
            out,
            "prune: keep the newest {} full chains; cleanup",
            c.keep_full
        )?,
        Kind::Restic => writeln!(
            out,
            "prune: keep {} daily, {} weekly, {} monthly snapshots",
            c.keep_daily, c.keep_weekly, c.keep_monthly
        )?,
    }
    writeln!(
        out,
        "stamp {}",
        c.state_dir.join("last-success.json").display()
    )?;
    out.flush()
}

/// The run's summary: the `--json` document, or lines on stderr.
fn print(opts: &Options, summary: &Summary, report: &Reporter) -> Result<(), BackupError> {
    if opts.json {
        return Ok(report::print_json(summary)?);
    }
    dump::show(&summary.dump, false, report, &mut std::io::sink())?;
    if let Some(b) = &summary.backup {
        report.info(format_args!(
            "{} backup {} to {}: {} files, {} bytes, {} bytes added",
            b.kind, b.id, summary.target, b.files, b.bytes, b.added
        ));
    }
    for set in summary.pruned.iter().flat_map(|p| &p.removed) {
        report.info(format_args!("pruned: {} {}", set.kind, set.time));
    }
    Ok(())
}

/// Writes `<state>/last-success.json` atomically.
fn stamp(opts: &Options, backed: Option<&Backed>) -> Result<(), BackupError> {
    let Some(backup) = backed else { return Ok(()) };
    let text = report::json(&Stamp {
        time: now_rfc3339(),
        engine: opts.engine.kind,
        backup,
    })?;
    let path = opts.engine.state_dir.join("last-success.json");
    let options = FileOptions {
        mode: Some(0o644),
        ..FileOptions::default()
    };
    atomic::replace(&path, format!("{text}\n").as_bytes(), options)?;
    Ok(())
}

/// The time now, `2026-11-29T23:50:00Z`.
pub fn now_rfc3339() -> String {
    let secs = pysk_common::date::unix_now();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = pysk_common::date::civil_from_days(days);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Runs the notify command (no shell) with `event` last, in a process
/// group of its own that is killed whole after [`NOTIFY_TIMEOUT`]; its
/// failure is a warning, never the run's.
fn notify(opts: &Options, event: &str, report: &Reporter) {
    let Some((program, args)) = opts.notify.split_first() else {
        return;
    };
    let spawned = crate::child::command(program)
        .args(args)
        .arg(event)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Its own process group, so a timeout kills what it started too
        // (a curl of a shell-script notifier), not the command alone.
        .process_group(0)
        .spawn();
    let why = match spawned {
        Ok(child) => wait_bounded(child),
        Err(e) => Some(pysk_common::error::cause(&e)),
    };
    if let Some(why) = why {
        report.warn(format_args!(
            "backup_notify_command {program} {event}: {why}"
        ));
    }
}

/// Waits at most [`NOTIFY_TIMEOUT`] for `child`; why it failed, if it
/// did.
fn wait_bounded(mut child: std::process::Child) -> Option<String> {
    let deadline = Instant::now() + NOTIFY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return None,
            Ok(Some(status)) => return Some(format!("ended with {status}")),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let group = nix::unistd::Pid::from_raw(child.id().cast_signed());
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Some(format!("killed after {} seconds", NOTIFY_TIMEOUT.as_secs()));
            }
            Err(e) => return Some(pysk_common::error::cause(&e)),
        }
    }
}
