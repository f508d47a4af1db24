//! `pysk-backup status`: what the target holds (from the engine's
//! machine-readable output), the last successful run
//! (`<state>/last-success.json`) and the last proven restore of each
//! database (`<state>/drills.json`, as the drill wrote it).
//! Under the lock when its file exists (`--wait`), as duplicity locks
//! its cache for every action.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::engine::{self, Status};
use crate::error::BackupError;

/// What `status` shows.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine.
    pub engine: engine::Config,
    /// The state directory.
    pub state_dir: PathBuf,
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
pub struct Summary {
    /// The target's backups.
    #[serde(flatten)]
    pub backup: Status,
    /// The stamp of the last successful run, as written.
    pub last_success: Option<serde_json::Value>,
    /// The last proven restores, as the drill wrote them.
    pub drills: Option<serde_json::Value>,
}

/// Shows the status.
pub fn run(
    opts: &Options,
    _report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, BackupError> {
    let _lock = Lock::existing(&opts.lock, opts.wait)?;
    let summary = Summary {
        backup: engine::open(&opts.engine)?.status()?,
        last_success: read_json(&opts.state_dir.join("last-success.json"))?,
        drills: read_json(&opts.state_dir.join("drills.json"))?,
    };
    if opts.json {
        report::print_json(&summary)?;
    } else {
        show(&summary, out).map_err(pysk_common::Error::Stdout)?;
    }
    Ok(Outcome::Success)
}

/// The summary as lines.
fn show(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let b = &s.backup;
    let or_none = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".to_owned());
    writeln!(out, "engine: {}", b.engine.name())?;
    writeln!(out, "target: {}", b.target)?;
    writeln!(out, "last full: {}", or_none(&b.last_full))?;
    if b.last_incremental.is_some() {
        writeln!(out, "last incremental: {}", or_none(&b.last_incremental))?;
    }
    for chain in &b.chains {
        let first = chain.sets.first().map(|s| s.time.as_str()).unwrap_or("");
        writeln!(
            out,
            "chain from {first}: {} sets{}",
            chain.sets.len(),
            if chain.complete { "" } else { ", incomplete" }
        )?;
    }
    if let Some(bytes) = b.bytes {
        writeln!(out, "size: {bytes} bytes")?;
    }
    let success = s
        .last_success
        .as_ref()
        .and_then(|v| v.get("time"))
        .and_then(|t| t.as_str());
    writeln!(out, "last success: {}", success.unwrap_or("none"))?;
    drills(s.drills.as_ref(), out)?;
    out.flush()
}

/// A line per database with its last proven restore, as the drill wrote
/// it.
fn drills(drills: Option<&serde_json::Value>, out: &mut dyn Write) -> std::io::Result<()> {
    let databases = drills
        .and_then(|d| d.get("databases"))
        .and_then(|d| d.as_object())
        .filter(|d| !d.is_empty());
    let Some(databases) = databases else {
        return writeln!(out, "restore proven: never (pysk-backup drill proves one)");
    };
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .map(|x| x.to_string().trim_matches('"').to_owned())
    };
    for (database, proven) in databases {
        writeln!(
            out,
            "restore proven: {database} at {} (dump set {}, {} tables)",
            text(proven, "proven").unwrap_or_default(),
            text(proven, "set").unwrap_or_default(),
            text(proven, "tables").unwrap_or_default()
        )?;
    }
    Ok(())
}

/// A JSON file of the state directory; `None` when it is not there.
fn read_json(path: &Path) -> Result<Option<serde_json::Value>, BackupError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(pysk_common::Error::Read {
                path: path.to_owned(),
                source,
            }
            .into());
        }
    };
    let value = serde_json::from_slice(&bytes).map_err(|e| pysk_common::Error::Read {
        path: path.to_owned(),
        source: std::io::Error::new(ErrorKind::InvalidData, e),
    })?;
    Ok(Some(value))
}
