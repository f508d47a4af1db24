//! The spool and its batches.
//!
//! ```text
//! <spool>/inbox/              raw logs as they arrive (plain or gzip;
//!                             taken by the protocol of `crate::inbox`)
//! <spool>/pending/<vhost>/    split output, waiting for AWStats
//! <spool>/processed/<vhost>/  what `merge --archive` archived
//! <spool>/rejected/           lines (and whole unreadable files) set aside
//! <spool>/tmp/                runs, outputs in the making, batch manifests
//! <spool>/.lock               held by split, fetch, awstats and run
//! ```
//!
//! A split run is one batch, committed the way a database commits: every
//! output is first written and `fsync`ed in `tmp/`; then a manifest listing
//! each move (output into `pending/` or `rejected/`, unreadable input into
//! `rejected/`) and each inbox file to remove is written atomically — the
//! commit point; then the moves and removals are done and the manifest is
//! removed. A run that dies before the commit point leaves the inbox as it
//! was (its leftovers in `tmp/` are cleared by the next run); one that dies
//! after it has its batch finished by the next run, which replays the
//! manifest. Either way no line is lost and none is written twice.

use rayon::prelude::*;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LogsError;
use pysk_common::atomic;
use pysk_common::error::{read_err, write_err};

/// The spool's directories.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// One rename a batch makes, relative to the spool root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// From (relative to the spool).
    pub from: String,
    /// To (relative to the spool).
    pub to: String,
}

/// What a batch does when it commits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 1.
    pub version: u32,
    /// Renames, done in order.
    pub moves: Vec<Move>,
    /// Inbox files to remove once the moves are durable.
    pub remove: Vec<String>,
}

impl Spool {
    /// The spool at `root`; [`Spool::prepare`] creates its directories.
    pub fn new(root: &Path) -> Spool {
        Spool {
            root: root.to_owned(),
        }
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `inbox/`.
    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }

    /// `tmp/`.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Takes the spool's lock, `<spool>/.lock`: one run of `split`,
    /// `fetch`, `awstats` or `run` at a time (`merge` does not need it;
    /// `resolve` locks its cache instead).
    pub fn lock(&self, wait: std::time::Duration) -> Result<pysk_common::lock::Lock, LogsError> {
        Ok(pysk_common::lock::Lock::acquire(
            &self.root.join(".lock"),
            wait,
        )?)
    }

    /// The spool's lock for a dry run, which creates nothing: taken like
    /// [`Spool::lock`] (waiting up to `wait` for another run) when
    /// `<spool>/.lock` exists; `None` when it does not, for then no run
    /// has begun in this spool and the dry run plans against what is
    /// there.
    pub fn lock_existing(
        &self,
        wait: std::time::Duration,
    ) -> Result<Option<pysk_common::lock::Lock>, LogsError> {
        Ok(pysk_common::lock::Lock::existing(
            &self.root.join(".lock"),
            wait,
        )?)
    }

    /// The spool at `root` with its directories made and its lock taken,
    /// waiting up to `wait` for another run: how split, fetch, awstats and
    /// run begin. The spool stays locked while the returned lock lives.
    pub fn open_locked(
        root: &Path,
        wait: std::time::Duration,
    ) -> Result<(Spool, pysk_common::lock::Lock), LogsError> {
        let spool = Spool::new(root);
        spool.prepare()?;
        let lock = spool.lock(wait)?;
        Ok((spool, lock))
    }

    /// Creates the spool's directories where missing.
    pub fn prepare(&self) -> Result<(), LogsError> {
        for dir in ["inbox", "pending", "processed", "rejected", "tmp"] {
            let path = self.root.join(dir);
            fs::create_dir_all(&path).map_err(write_err(&path))?;
        }
        Ok(())
    }

    /// `path` relative to the spool root, as a manifest stores it; `None`
    /// when it is outside the spool or not UTF-8.
    pub fn relative(&self, path: &Path) -> Option<String> {
        path.strip_prefix(&self.root)
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_owned)
    }

    /// A name `<dir>/<stamp>-<n><suffix>` that no file has yet and that no
    /// move in `taken` targets.
    pub fn fresh_name(&self, dir: &str, stamp: u64, suffix: &str, taken: &[Move]) -> String {
        (0u64..)
            .map(|n| format!("{dir}/{stamp}-{n}{suffix}"))
            .find(|name| !self.root.join(name).exists() && taken.iter().all(|m| &m.to != name))
            .unwrap_or_default()
    }

    /// Makes `manifest` the committed state of a batch: writes it
    /// atomically, then carries it out.
    pub fn commit(&self, manifest: &Manifest) -> Result<(), LogsError> {
        let path = self
            .tmp()
            .join(format!("batch-{}.manifest", std::process::id()));
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| LogsError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        atomic::replace(&path, &text, atomic::Options::default())?;
        crate::failpoint::reached("after-commit");
        self.apply(manifest)?;
        fs::remove_file(&path).map_err(write_err(&path))?;
        let tmp = self.tmp();
        Ok(atomic::sync_dir(&tmp).map_err(write_err(tmp))?)
    }

    /// Carries out a committed manifest; safe to repeat after a crash
    /// anywhere inside it.
    fn apply(&self, manifest: &Manifest) -> Result<(), LogsError> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for m in &manifest.moves {
            let (from, to) = (self.root.join(&m.from), self.root.join(&m.to));
            let dir = to
                .parent()
                .map(Path::to_owned)
                .unwrap_or_else(|| self.root.clone());
            fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            match fs::rename(&from, &to) {
                Ok(()) => {}
                // Done before the crash we are recovering from.
                Err(e) if e.kind() == io::ErrorKind::NotFound && to.exists() => {}
                Err(e) => return Err(write_err(&to)(e).into()),
            }
            crate::failpoint::reached("mid-moves");
            for d in [dir, from.parent().map(Path::to_owned).unwrap_or_default()] {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        for d in &dirs {
            atomic::sync_dir(d).map_err(write_err(d))?;
        }
        // Removing a large file frees its blocks and cached pages, which
        // takes the kernel a while: inputs are removed on every core.
        manifest
            .remove
            .par_iter()
            .try_for_each(|name| self.remove(name))?;
        let inbox = self.inbox();
        Ok(atomic::sync_dir(&inbox).map_err(write_err(inbox))?)
    }

    /// Removes the input `name`; one already gone was removed before a
    /// crash.
    fn remove(&self, name: &str) -> Result<(), LogsError> {
        let path = self.root.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&path)(e).into()),
        }
        crate::failpoint::reached("mid-removes");
        Ok(())
    }

    /// Finishes every batch a crashed run committed, then clears what
    /// uncommitted runs left in `tmp/`. Returns how many batches were
    /// finished.
    pub fn recover(&self) -> Result<usize, LogsError> {
        let tmp = self.tmp();
        let mut manifests = entries(&tmp)?;
        manifests.retain(|p| p.extension().is_some_and(|e| e == "manifest"));
        for path in &manifests {
            let bytes = fs::read(path).map_err(read_err(path))?;
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| LogsError::Manifest {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if manifest.version != 1 {
                return Err(LogsError::Manifest {
                    path: path.clone(),
                    reason: format!("version {} is not 1", manifest.version),
                });
            }
            let unsafe_path = |p: &String| p.split('/').any(|c| c == ".." || c.is_empty());
            if manifest
                .moves
                .iter()
                .any(|m| unsafe_path(&m.from) || unsafe_path(&m.to))
                || manifest.remove.iter().any(unsafe_path)
            {
                return Err(LogsError::Manifest {
                    path: path.clone(),
                    reason: "a path leaves the spool".into(),
                });
            }
            self.apply(&manifest)?;
            fs::remove_file(path).map_err(write_err(path))?;
        }
        // Anything left in tmp/ belongs to a batch that never committed:
        // its input is still in the inbox.
        for path in entries(&tmp)? {
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(write_err(&path))?;
        }
        atomic::sync_dir(&tmp).map_err(write_err(tmp))?;
        Ok(manifests.len())
    }
}

/// The entries of `dir`, sorted by name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, LogsError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err(dir))? {
        out.push(entry.map_err(read_err(dir))?.path());
    }
    out.sort();
    Ok(out)
}
