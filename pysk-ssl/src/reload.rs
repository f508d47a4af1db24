//! `ssl_reload_command`, run after an install so that the servers load
//! the new set. A reload that fails is remembered (`DIR/.reload-pending`)
//! until one succeeds: `renew`, which finds the new certificate not due
//! the next day, tries it again, so a server is not left on the old
//! certificate because one reload failed.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
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
    let run = Command::new(program).args(words).output().map_err(|e| {
        err(format!(
            "cannot run: {}; the files are installed",
            cause(&e)
        ))
    })?;
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        return Err(err(format!(
            "{} ({}); the files are installed",
            run.status,
            stderr.trim()
        )));
    }
    clear(&mark)
}

/// Checks, before anything is installed, that the reload command's
/// program can be run: a typo in `ssl_reload_command` is found before the
/// files change, not after.
pub fn check(command: &str) -> Result<(), SslError> {
    let Some(program) = command.split_whitespace().next() else {
        return Ok(());
    };
    let runnable = |path: &Path| {
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        runnable(Path::new(program))
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| runnable(&dir.join(program)))
        })
    };
    if found {
        return Ok(());
    }
    Err(SslError::Reload {
        command: command.to_owned(),
        reason: format!("cannot run: no program {program} (nothing installed)"),
    })
}

/// Runs the reload again when an earlier one failed; nothing otherwise.
/// A dry run says it would, on `out` with the rest of its plan (unless
/// `quiet_plan`: the `--json` document says it).
pub fn retry(
    dir: &Path,
    command: &str,
    dry_run: bool,
    quiet_plan: bool,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(), SslError> {
    if !pending(dir).exists() {
        return Ok(());
    }
    if dry_run {
        if !quiet_plan {
            writeln!(
                out,
                "would run ssl_reload_command again: it failed after an earlier install"
            )
            .map_err(pysk_common::Error::Stdout)?;
        }
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
