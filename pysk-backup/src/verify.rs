//! `pysk-backup verify`: the backup's integrity, under the lock. Exit 1
//! only when the backup itself is damaged, missing or unreadable;
//! `--compare-data` also lists the files changed since, as information.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use pysk_common::atomic::{self, Options as FileOptions};
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};

use crate::engine::{self, Kind};
use crate::error::BackupError;

/// What `verify` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine.
    pub engine: engine::Config,
    /// The lock file.
    pub lock: PathBuf,
    /// How long to wait for the lock.
    pub wait: Duration,
    /// Also compare the backup with the files as they are now.
    pub compare_data: bool,
    /// Print the `--json` document.
    pub json: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The engine.
    pub engine: Kind,
    /// The target.
    pub target: String,
    /// Whether the data was compared with the source.
    pub compare_data: bool,
    /// The files changed since the backup (with `--compare-data`).
    pub changed: Vec<String>,
}

/// Verifies the backup; a damaged one is an error (exit 1).
pub fn run(
    opts: &Options,
    report: &Reporter,
    _out: &mut dyn Write,
) -> Result<Outcome, BackupError> {
    let _lock = Lock::acquire(&opts.lock, opts.wait)?;
    report.verbose(format_args!(
        "verifying {} with {}: {}",
        opts.engine.target,
        opts.engine.kind.name(),
        checked(opts.engine.kind, opts.compare_data)
    ));
    let verified = engine::open(&opts.engine)?.verify(opts.compare_data)?;
    if let Some(backup) = &verified.proven {
        record(&opts.engine, backup)?;
        report.verbose(format_args!(
            "proven: {backup}, kept by retention until a newer backup is proven"
        ));
    }
    let summary = Summary {
        engine: opts.engine.kind,
        target: opts.engine.target.clone(),
        compare_data: opts.compare_data,
        changed: verified.changed,
    };
    if opts.json {
        report::print_json(&summary)?;
    } else {
        report.info(format_args!("{}: the backup is intact", summary.target));
        for file in &summary.changed {
            report.info(format_args!("changed since: {file}"));
        }
    }
    Ok(Outcome::Success)
}

/// What a verify checks, in words.
fn checked(kind: Kind, compare_data: bool) -> &'static str {
    match (kind, compare_data) {
        (Kind::Duplicity, false) => {
            "every volume of the newest chain read, decrypted and checked against its manifest"
        }
        (Kind::Duplicity, true) => {
            "every volume of the newest chain read, decrypted and checked against its manifest, \
             and its files compared with backup_source"
        }
        (Kind::Restic, false) => {
            "the repository's structure, then every pack read and checked (check --read-data)"
        }
        (Kind::Restic, true) => {
            "the repository's structure, then every pack read and checked (check --read-data), \
             and backup_source compared with the newest snapshot"
        }
    }
}

/// Writes `<state>/verified.json` atomically: retention keeps this
/// backup until a newer one is proven (`verify` and `drill
/// --from-backup` prove one).
pub fn record(config: &engine::Config, backup: &str) -> Result<(), BackupError> {
    let text = report::json(&engine::Proven {
        time: crate::run::now_rfc3339(),
        engine: config.kind.name().to_owned(),
        backup: backup.to_owned(),
    })?;
    let options = FileOptions {
        mode: Some(0o644),
        ..FileOptions::default()
    };
    let path = engine::proven_path(config);
    atomic::replace(&path, format!("{text}\n").as_bytes(), options)?;
    Ok(())
}
