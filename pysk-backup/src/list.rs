//! `pysk-backup list`: the files of the backup (the newest, or as at
//! `--time`), one path a line on stdout, or the `--json` document.

use std::io::Write;

use serde::Serialize;

use pysk_common::exit::Outcome;
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
