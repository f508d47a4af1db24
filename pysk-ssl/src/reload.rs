//! `ssl_reload_command`, run after an install so that the servers load
//! the new set. A reload that fails is remembered (`DIR/.reload-pending`)
//! until one succeeds: `renew`, which finds the new certificate not due
//! the next day, tries it again, so a server is not left on the old
//! certificate because one reload failed.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use pysk_common::error::{cause, write_err};
use pysk_common::report::Reporter;

use crate::error::SslError;

/// The mark of a reload that failed, in the certificate directory.
pub fn pending(dir: &Path) -> PathBuf {
    dir.join(".reload-pending")
}

/// Runs `command` (split at blanks, no shell); nothing when it is empty.
/// A command that cannot start or exits non-zero is an error with its
/// stderr, and stays marked pending until a run succeeds.
pub fn run(dir: &Path, command: &str) -> Result<(), SslError> {
    let mark = pending(dir);
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else {
        return clear(&mark);
    };
    fs::write(&mark, b"").map_err(write_err(&mark))?;
    let err = |reason: String| SslError::Reload {
        command: command.to_owned(),
        reason,
    };
    let run = Command::new(program)
        .args(words)
        .output()
        .map_err(|e| err(format!("cannot run: {}", cause(&e))))?;
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        return Err(err(format!("{} ({})", run.status, stderr.trim())));
    }
    clear(&mark)
}

/// Runs the reload again when an earlier one failed; nothing otherwise.
/// For a dry run, says it would.
pub fn retry(dir: &Path, command: &str, dry_run: bool, report: &Reporter) -> Result<(), SslError> {
    if !pending(dir).exists() {
        return Ok(());
    }
    if dry_run {
        report.info(format_args!(
            "would run ssl_reload_command again: it failed after an earlier install"
        ));
        return Ok(());
    }
    report.info(format_args!(
        "running ssl_reload_command again: it failed after an earlier install"
    ));
    run(dir, command)
}

/// Removes the mark; a missing one is fine.
fn clear(mark: &Path) -> Result<(), SslError> {
    match fs::remove_file(mark) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(write_err(mark)(e).into()),
        _ => Ok(()),
    }
}
