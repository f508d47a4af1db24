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
    empty_or_missing(&opts.to)?;
    let _lock = Lock::acquire(&opts.lock, opts.wait)?;
    engine::open(&opts.engine)?.restore(&inside, opts.time.as_deref(), &opts.to)?;
    report.info(format_args!("restored {}", opts.to.join(&inside).display()));
    Ok(Outcome::Success)
}

/// Refuses a target directory that holds anything (or is no directory).
fn empty_or_missing(dir: &Path) -> Result<(), BackupError> {
    let refuse = |why: &str| Err(BackupError::Name(format!("--to {}: {why}", dir.display())));
    match fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => refuse("not empty"),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotADirectory => refuse("not a directory"),
        Err(source) => Err(pysk_common::Error::Read {
            path: dir.to_owned(),
            source,
        }
        .into()),
    }
}
