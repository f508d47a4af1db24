//! `pysk-backup status`: what the target holds (from the engine's
//! machine-readable output), the last successful run
//! (`<state>/last-success.json`) and, for each database of the current
//! dump set, its last proven restore (`<state>/drills.json`, as the drill
//! wrote it): whether that was of the dump `current` holds, or never. A
//! proof of a database the current set no longer holds is not shown.
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

use crate::dump::set::{self, Manifest};
use crate::engine::{self, Kind, Status};
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
    /// The set `current` names (`None`: no dump set here).
    pub current_set: Option<String>,
    /// Each database of the current set with its last proven restore.
    pub proofs: Vec<Proof>,
}

/// A database of the current dump set and its last proven restore.
#[derive(Debug, Serialize)]
pub struct Proof {
    /// `server/database`, as `drills.json` keys it.
    pub database: String,
    /// When its restore was last proven (`None`: never).
    pub proven: Option<String>,
    /// The set that restore was of.
    pub set: Option<String>,
    /// Its tables then.
    pub tables: Option<u64>,
    /// Whether that set's dump is the one `current` holds (the same set,
    /// or the set `current` carries the dump over from).
    pub current: bool,
}

/// Shows the status.
pub fn run(opts: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, BackupError> {
    let _lock = Lock::existing(&opts.lock, opts.wait)?;
    let drills = read_json(&opts.state_dir.join("drills.json"))?;
    let current = current(&opts.engine.dump_dir, report);
    let summary = Summary {
        backup: engine::open(&opts.engine)?.status()?,
        last_success: read_json(&opts.state_dir.join("last-success.json"))?,
        proofs: current
            .as_ref()
            .map(|(name, m)| proofs(name, m, drills.as_ref()))
            .unwrap_or_default(),
        current_set: current.map(|(name, _)| name),
        drills,
    };
    if opts.json {
        report::print_json(&summary)?;
    } else {
        show(&summary, out).map_err(pysk_common::Error::Stdout)?;
    }
    Ok(Outcome::Success)
}

/// The set `current` names in `dump_dir` and its manifest; `None` when
/// there is none, or (warned about) when it cannot be read.
fn current(dump_dir: &Path, report: &Reporter) -> Option<(String, Manifest)> {
    let dir = set::current_set(dump_dir)?;
    let name = dir.file_name()?.to_string_lossy().into_owned();
    match Manifest::read(&dir) {
        Ok(manifest) => Some((name, manifest)),
        Err(e) => {
            report.warn(format_args!("the current dump set: {e}"));
            None
        }
    }
}

/// Each database of the set `name` with its proof in `drills`.
fn proofs(name: &str, manifest: &Manifest, drills: Option<&serde_json::Value>) -> Vec<Proof> {
    let databases = manifest.dumps.iter().filter_map(|d| {
        let db = d.database.as_ref()?;
        Some((format!("{}/{db}", d.server), d.from.as_deref()))
    });
    databases
        .map(|(key, from)| {
            let proof = drills.and_then(|d| d.get("databases")?.get(&key));
            let text = |field: &str| Some(proof?.get(field)?.as_str()?.to_owned());
            let set = text("set");
            Proof {
                current: set.as_deref().is_some_and(|s| s == name || Some(s) == from),
                proven: text("proven"),
                tables: proof.and_then(|p| p.get("tables")?.as_u64()),
                set,
                database: key,
            }
        })
        .collect()
}

/// The summary as lines.
fn show(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let b = &s.backup;
    writeln!(out, "engine: {}", b.engine.name())?;
    writeln!(out, "target: {}", b.target)?;
    backups(b, out)?;
    let success = s
        .last_success
        .as_ref()
        .and_then(|v| v.get("time"))
        .and_then(|t| t.as_str());
    writeln!(out, "last success: {}", success.unwrap_or("none"))?;
    match &s.current_set {
        Some(current) => restores(current, &s.proofs, out)?,
        None => drills(s.drills.as_ref(), out)?,
    }
    out.flush()
}

/// What the target holds, in the engine's own terms: duplicity's full
/// and incremental backups and chains, restic's snapshots.
fn backups(b: &Status, out: &mut dyn Write) -> std::io::Result<()> {
    let or_none = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".to_owned());
    if b.engine == Kind::Restic {
        let count: usize = b.chains.iter().map(|c| c.sets.len()).sum();
        writeln!(out, "last snapshot: {}", or_none(&b.last_full))?;
        writeln!(out, "snapshots: {count}")?;
        if let Some(bytes) = b.bytes {
            writeln!(out, "size: {bytes} bytes")?;
        }
        return Ok(());
    }
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
    Ok(())
}

/// A line per database of the current set `current`: its last proven
/// restore (and a line more when that was of an older dump), or never.
fn restores(current: &str, proofs: &[Proof], out: &mut dyn Write) -> std::io::Result<()> {
    for p in proofs {
        let (Some(at), Some(set)) = (&p.proven, &p.set) else {
            writeln!(
                out,
                "restore never proven: {} (pysk-backup drill proves it)",
                p.database
            )?;
            continue;
        };
        let tables = p.tables.map(|t| t.to_string()).unwrap_or_default();
        writeln!(
            out,
            "restore proven: {} at {at} (dump set {set}, {tables} tables)",
            p.database
        )?;
        if !p.current {
            writeln!(
                out,
                "restore proof older than current: {} proven on set {set}; current is {current}",
                p.database
            )?;
        }
    }
    Ok(())
}

/// Without a dump set here: a line per database with its last proven
/// restore, as the drill wrote it.
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
