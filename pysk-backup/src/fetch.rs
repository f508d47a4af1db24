//! The dump set a drill or `restore-db` restores: the local `current`
//! set, or the set as the backup holds it, restored by the engine into a
//! private temporary directory (`<state>/fetch/pysk-fetch-XXXXXX`, below
//! a 0700 directory: it holds decrypted dumps) that is removed with the
//! [`Fetched`]; what a killed run left there is removed by the next
//! fetch, under the lock. Each dump file is checked against the manifest
//! (size and SHA-256) before any server sees it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use pysk_common::error::{read_err, write_err};

use crate::dump::set::{self, Entry, Manifest};
use crate::engine;
use crate::error::BackupError;

/// A dump set ready to be restored.
#[derive(Debug)]
pub struct Fetched {
    /// The set's directory.
    pub dir: PathBuf,
    /// Its name (`20261130T005000Z`).
    pub stamp: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// The temporary directory the backup's copy lies in.
    _tmp: Option<TempDir>,
}

/// A private temporary directory (`$TMPDIR/pysk-<what>-XXXXXX`), mode
/// 0711 so that the servers' accounts reach their own directories in it
/// and nothing else.
pub fn temp_dir(what: &str) -> Result<TempDir, BackupError> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("pysk-{what}-"))
        .tempdir()
        .map_err(write_err(std::env::temp_dir()))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o711))
        .map_err(write_err(tmp.path()))?;
    Ok(tmp)
}

/// The directory below `backup_state_dir` where sets are fetched.
const FETCH_DIR: &str = "fetch";

/// A new temporary directory in `parent` (made 0700 if missing), after
/// removing what a killed fetch left there: the callers hold the lock, so
/// nothing else uses it.
fn fetch_dir(parent: &Path) -> Result<TempDir, BackupError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(write_err(parent))?;
    fs::set_permissions(parent, fs::Permissions::from_mode(0o700)).map_err(write_err(parent))?;
    for entry in fs::read_dir(parent).map_err(read_err(parent))? {
        let entry = entry.map_err(read_err(parent))?;
        let path = entry.path();
        match entry.file_type().is_ok_and(|t| t.is_dir()) {
            true => fs::remove_dir_all(&path),
            false => fs::remove_file(&path),
        }
        .map_err(write_err(&path))?;
    }
    tempfile::Builder::new()
        .prefix("pysk-fetch-")
        .tempdir_in(parent)
        .map_err(|e| write_err(parent)(e).into())
}

/// The set `current` names in `dump_dir`.
pub fn local(dump_dir: &Path) -> Result<Fetched, BackupError> {
    let dir = set::current_set(dump_dir).ok_or_else(|| {
        BackupError::Name(format!(
            "{}: no dump set (current) to restore",
            dump_dir.display()
        ))
    })?;
    opened(dir, None)
}

/// The dump set as the backup at `time` (the newest without one) holds
/// it, restored into a temporary directory of its own.
pub fn from_backup(config: &engine::Config, time: Option<&str>) -> Result<Fetched, BackupError> {
    let inside = config
        .dump_dir
        .strip_prefix(&config.source)
        .map_err(|_| BackupError::Failed {
            step: "fetching the dump set from the backup".into(),
            reason: format!(
                "backup_dump_dir {} is not below backup_source {}, so no backup holds it",
                config.dump_dir.display(),
                config.source.display()
            ),
        })?;
    let tmp = fetch_dir(&config.state_dir.join(FETCH_DIR))?;
    engine::open(config)?.restore(inside, time, tmp.path())?;
    let dir = set::current_set(&tmp.path().join(inside)).ok_or_else(|| {
        BackupError::Name(format!(
            "the backup{} holds no dump set (current) in {}",
            time.map(|t| format!(" at {t}")).unwrap_or_default(),
            config.dump_dir.display()
        ))
    })?;
    opened(dir, Some(tmp))
}

fn opened(dir: PathBuf, tmp: Option<TempDir>) -> Result<Fetched, BackupError> {
    let manifest = Manifest::read(&dir)?;
    let stamp = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Fetched {
        dir,
        stamp,
        manifest,
        _tmp: tmp,
    })
}

impl Fetched {
    /// The path of `entry`'s file.
    pub fn file(&self, entry: &Entry) -> PathBuf {
        self.dir.join(&entry.file)
    }

    /// Checks `entry`'s file against the manifest: its size and SHA-256;
    /// `Err` says how it differs.
    pub fn check(&self, entry: &Entry) -> Result<(), String> {
        let path = self.file(entry);
        let (bytes, sha256) = digest(&path).map_err(|e| e.to_string())?;
        if bytes != entry.bytes || sha256 != entry.sha256 {
            return Err(format!(
                "{}: {bytes} bytes with SHA-256 {sha256}, but the manifest records {} bytes \
                 with SHA-256 {}",
                path.display(),
                entry.bytes,
                entry.sha256
            ));
        }
        Ok(())
    }

    /// The globals (PostgreSQL) or grants (MariaDB) of `server`.
    pub fn globals(&self, server: &str) -> Option<&Entry> {
        self.manifest
            .dumps
            .iter()
            .find(|d| d.server == server && d.database.is_none())
    }
}

/// A file's size and SHA-256 (hex).
fn digest(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = File::open(path).map_err(read_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(path)(e).into()),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((bytes, hex))
}
