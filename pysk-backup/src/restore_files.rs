//! `pysk-backup restore PATH --to DIR [--time T]`: a file or directory of
//! the backup restored to `DIR/PATH`, as it lies in the source tree. DIR
//! must not exist or be empty (65 otherwise), so nothing is overwritten.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::engine;
use crate::error::BackupError;

/// What `restore` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine.
    pub engine: engine::Config,
    /// The lock file.
    pub lock: PathBuf,
    /// How long to wait for the lock.
    pub wait: Duration,
    /// The file or directory, relative to the source.
    pub path: PathBuf,
    /// The backup as it was at this time.
    pub time: Option<String>,
    /// The directory restored into.
    pub to: PathBuf,
}

/// Restores the path.
pub fn run(
    opts: &Options,
    report: &Reporter,
    _out: &mut dyn Write,
) -> Result<Outcome, BackupError> {
    let inside = engine::inside_path(&opts.path)?;
    let existed = empty_or_missing(&opts.to)?;
    let _lock = Lock::acquire(&opts.lock, opts.wait)?;
    report.verbose(format_args!(
        "restoring {} from {} ({}) into {}",
        inside.display(),
        opts.engine.target,
        opts.time.as_deref().unwrap_or("the newest backup"),
        opts.to.display()
    ));
    let restored = engine::open(&opts.engine)
        .and_then(|engine| engine.restore(&inside, opts.time.as_deref(), &opts.to));
    if let Err(e) = restored {
        undo(&opts.to, existed, report);
        return Err(e);
    }
    report.info(format_args!("restored {}", opts.to.join(&inside).display()));
    Ok(Outcome::Success)
}

/// After a failed restore, `dir` as it was: removed when the restore
/// made it, emptied when it was there (and empty, as it had to be).
/// Nothing of the backup is lost; what is left is said.
fn undo(dir: &Path, existed: bool, report: &Reporter) {
    let removed = match existed {
        false => match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        },
        true => fs::read_dir(dir).and_then(|entries| {
            entries
                .flatten()
                .try_for_each(|entry| match entry.file_type() {
                    Ok(kind) if kind.is_dir() => fs::remove_dir_all(entry.path()),
                    _ => fs::remove_file(entry.path()),
                })
        }),
    };
    if let Err(e) = removed {
        let cause = pysk_common::error::cause(&e);
        report.warn(format_args!(
            "{}: what the failed restore left there could not be removed: {cause}",
            dir.display()
        ));
    }
}

/// Refuses a target directory that holds anything (or is no directory);
/// whether it is there.
fn empty_or_missing(dir: &Path) -> Result<bool, BackupError> {
    let refuse = |why: &str| Err(BackupError::Name(format!("--to {}: {why}", dir.display())));
    match fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(true),
        Ok(false) => refuse("not empty"),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotADirectory => refuse("not a directory"),
        Err(source) => Err(pysk_common::Error::Read {
            path: dir.to_owned(),
            source,
        }
        .into()),
    }
}
