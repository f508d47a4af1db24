//! `pysk-backup list`: the files of the backup (the newest, or as at
//! `--time`), one path a line on stdout, or the `--json` document.
//! Under the lock when its file exists (`--wait`), as duplicity locks
//! its cache for every action.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::engine::{self, Entry};
use crate::error::BackupError;

/// What `list` shows.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine.
    pub engine: engine::Config,
    /// The backup as it was at this time.
    pub time: Option<String>,
    /// The lock file: taken only if it exists (a run holds it while
    /// duplicity locks its cache), creating nothing.
    pub lock: PathBuf,
    /// How long to wait for the lock.
    pub wait: Duration,
    /// Print the `--json` document.
    pub json: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The backup's files, paths relative to the source.
    pub files: Vec<Entry>,
}

/// Lists the files.
pub fn run(
    opts: &Options,
    _report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, BackupError> {
    let _lock = Lock::existing(&opts.lock, opts.wait)?;
    let files = engine::open(&opts.engine)?.list(opts.time.as_deref())?;
    if opts.json {
        report::print_json(&Listing { files })?;
        return Ok(Outcome::Success);
    }
    for file in &files {
        writeln!(out, "{}", file.path).map_err(pysk_common::Error::Stdout)?;
    }
    out.flush().map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}
