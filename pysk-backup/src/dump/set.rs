//! The dump sets on disk: `<dir>/current` → `sets/<stamp>`, each set a
//! directory of dumps with its `manifest.json`. A new set is written into
//! `sets/.new-<stamp>/` ([`Staging`]); [`Staging::commit`] renames it to
//! `sets/<stamp>`, flips `current` with one rename of a new link over it,
//! syncs, and only then removes the older sets. A failed run's staging
//! directory is removed when its [`Staging`] is dropped; a killed run's by
//! the next run ([`clean`], under the lock).

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use pysk_common::atomic;
use pysk_common::date::civil_from_days;
use pysk_common::error::{read_err, write_err};
use pysk_common::report::Reporter;

use crate::error::BackupError;

/// The manifest's file name inside a set.
pub const MANIFEST: &str = "manifest.json";
/// The link naming the last good set.
pub const CURRENT: &str = "current";
/// The directory of the sets.
pub const SETS: &str = "sets";
/// What a staging directory's name starts with.
const STAGING: &str = ".new-";

/// What a set holds: `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 1.
    pub version: u32,
    /// When the set was started, UTC (`2026-11-29T23:50:00Z`).
    pub created: String,
    /// This machine's fully qualified name.
    pub host: String,
    /// Every dump of the set.
    pub dumps: Vec<Entry>,
}

/// One dump of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `postgresql` or `mariadb`.
    pub server: String,
    /// `globals`, `grants` or `database`.
    pub kind: String,
    /// The database's real name (`None` for globals and grants).
    pub database: Option<String>,
    /// The file, relative to the set.
    pub file: String,
    /// The file's size as written.
    pub bytes: u64,
    /// The SHA-256 of the file as written, in hex.
    pub sha256: String,
    /// Rows per table: PostgreSQL `schema.table`, MariaDB the table.
    pub tables: BTreeMap<String, u64>,
    /// `exact` (counted in the dump's own snapshot) or `estimate`
    /// (counted just before the dump in a snapshot of our own).
    pub rows: String,
    /// MariaDB: the non-transactional tables, whose dump is not
    /// consistent under `--single-transaction`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub myisam: Vec<String>,
    /// Carried over from an earlier set (hard-linked), as this run left
    /// its server or database out (`--only`, `--postgres`, `--mysql`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub carried: bool,
    /// The set a carried dump was made in (`20261129T235000Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// What the database is made with again, as it was when dumped:
    /// PostgreSQL `encoding`, `collate`, `ctype`, `locale_provider`,
    /// `icu_locale`, `owner`; MariaDB `character_set`, `collation`.
    /// Empty in a set made before they were recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl Entry {
    /// A dump just written: `server`'s `kind` dump of `database` (none
    /// for the globals or grants) in `file`, its size and SHA-256, its
    /// rows `exact` (the caller sets what else it knows).
    pub fn written(
        server: &str,
        kind: &str,
        database: Option<&str>,
        file: String,
        (bytes, sha256): (u64, String),
    ) -> Entry {
        Entry {
            server: server.into(),
            kind: kind.into(),
            database: database.map(str::to_owned),
            file,
            bytes,
            sha256,
            tables: BTreeMap::new(),
            rows: "exact".into(),
            myisam: Vec::new(),
            carried: false,
            from: None,
            options: BTreeMap::new(),
        }
    }

    /// Whether `other` is a dump of the same thing (server, kind,
    /// database).
    pub fn same_dump(&self, other: &Entry) -> bool {
        self.server == other.server && self.kind == other.kind && self.database == other.database
    }
}

impl Manifest {
    /// Reads `set_dir/manifest.json`.
    pub fn read(set_dir: &Path) -> Result<Manifest, BackupError> {
        let path = set_dir.join(MANIFEST);
        let text = fs::read(&path).map_err(read_err(&path))?;
        serde_json::from_slice(&text).map_err(|e| {
            pysk_common::Error::Read {
                path,
                source: io::Error::other(e.to_string()),
            }
            .into()
        })
    }
}

/// The set `current` names in `dump_dir`, `None` when there is none.
pub fn current_set(dump_dir: &Path) -> Option<PathBuf> {
    let target = fs::read_link(dump_dir.join(CURRENT)).ok()?;
    let set = dump_dir.join(target);
    set.is_dir().then_some(set)
}

/// A dump's file name: the database name with every byte outside
/// `[A-Za-z0-9_.-]` written `%XX`, and `ext` after it.
pub fn file_name(database: &str, ext: &str) -> String {
    let mut name = String::new();
    for b in database.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{name}{ext}")
}

/// A set's name: UTC `YYYYmmddTHHMMSSZ`, and the manifest's time
/// `YYYY-mm-ddTHH:MM:SSZ` of the same second.
pub fn stamp(secs: u64) -> (String, String) {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    let s = secs % 86_400;
    let (hh, mm, ss) = (s / 3600, s / 60 % 60, s % 60);
    (
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    )
}

/// Removes what a killed run left under `dump_dir`: staging directories
/// (`sets/.new-*`) and the temporary link of a flip. Run under the lock.
pub fn clean(dump_dir: &Path, report: &Reporter) -> Result<(), BackupError> {
    atomic::remove_stale_in([dump_dir], report)?;
    let sets = dump_dir.join(SETS);
    let entries = match fs::read_dir(&sets) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_err(&sets)(e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(read_err(&sets))?;
        if entry.file_name().to_string_lossy().starts_with(STAGING) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(write_err(&path))?;
            report.warn(format_args!(
                "{}: removed the unfinished dump set of a run that was killed",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Makes `dir` with mode 0700 (its parents too); an existing one is left
/// as it is.
pub fn make_dir(dir: &Path) -> Result<(), BackupError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err(dir))?;
    Ok(())
}

/// Creates `path` new, mode 0600.
pub fn create_file(path: &Path) -> Result<File, BackupError> {
    Ok(OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err(path))?)
}

/// A set being written: `sets/.new-<stamp>/`, removed when dropped
/// uncommitted.
#[derive(Debug)]
pub struct Staging {
    dump_dir: PathBuf,
    stamp: String,
    /// The manifest's `created`.
    pub created: String,
    /// The staging directory.
    pub path: PathBuf,
    committed: bool,
}

impl Staging {
    /// Makes the staging directory (and the dump directory and `sets/`,
    /// 0700) for a set stamped now; when a set of this second exists
    /// already, the next second's stamp.
    pub fn create(dump_dir: &Path) -> Result<Staging, BackupError> {
        let sets = dump_dir.join(SETS);
        make_dir(&sets)?;
        let (stamp, created) = loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let (stamp, created) = self::stamp(now.as_secs());
            if !sets.join(&stamp).exists() {
                break (stamp, created);
            }
            std::thread::sleep(
                Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos().into()),
            );
        };
        let path = sets.join(format!("{STAGING}{stamp}"));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(write_err(&path))?;
        Ok(Staging {
            dump_dir: dump_dir.to_owned(),
            stamp,
            created,
            path,
            committed: false,
        })
    }

    /// Writes the manifest, syncs the set, renames it into place, flips
    /// `current` to it, then removes every older set. Returns the set's
    /// path.
    pub fn commit(mut self, manifest: &Manifest) -> Result<PathBuf, BackupError> {
        let path = self.path.join(MANIFEST);
        let mut text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| pysk_common::Error::Internal(format!("the manifest: {e}")))?;
        text.push(b'\n');
        let mut file = create_file(&path)?;
        file.write_all(&text).map_err(write_err(&path))?;
        file.sync_all().map_err(write_err(&path))?;
        sync_tree(&self.path)?;
        let sets = self.dump_dir.join(SETS);
        let set = sets.join(&self.stamp);
        fs::rename(&self.path, &set).map_err(write_err(&set))?;
        self.committed = true;
        atomic::sync_dir(&sets).map_err(write_err(&sets))?;
        let link = self.dump_dir.join(CURRENT);
        atomic::replace_link(&Path::new(SETS).join(&self.stamp), &link)?;
        atomic::sync_dir(&self.dump_dir).map_err(write_err(&self.dump_dir))?;
        remove_older(&sets, &self.stamp)?;
        Ok(set)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Syncs the directories of a set (the files were synced as written).
fn sync_tree(set: &Path) -> Result<(), BackupError> {
    for entry in fs::read_dir(set).map_err(read_err(set))? {
        let path = entry.map_err(read_err(set))?.path();
        if path.is_dir() {
            atomic::sync_dir(&path).map_err(write_err(&path))?;
        }
    }
    atomic::sync_dir(set).map_err(write_err(set))?;
    Ok(())
}

/// Removes every set in `sets` but `keep` (names of the stamp's form
/// only; anything else there is left alone).
fn remove_older(sets: &Path, keep: &str) -> Result<(), BackupError> {
    for entry in fs::read_dir(sets).map_err(read_err(sets))? {
        let entry = entry.map_err(read_err(sets))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != keep && is_stamp(&name) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(write_err(&path))?;
        }
    }
    Ok(())
}

/// Whether `name` has a set's form, `YYYYmmddTHHMMSSZ`.
fn is_stamp(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_plain_bytes_and_escape_the_rest() {
        assert_eq!(file_name("shop", ".dump"), "shop.dump");
        assert_eq!(
            file_name("a b/ü.x-1_", ".sql.gz"),
            "a%20b%2F%C3%BC.x-1_.sql.gz"
        );
        assert_eq!(file_name("50%", ".dump"), "50%25.dump");
    }

    #[test]
    fn stamps_are_utc_seconds() {
        assert_eq!(
            stamp(1_795_999_800),
            (
                "20261130T005000Z".to_owned(),
                "2026-11-30T00:50:00Z".to_owned()
            )
        );
        assert!(is_stamp("20261130T005000Z"));
        assert!(!is_stamp(".new-20261130T005000Z"));
        assert!(!is_stamp("current"));
    }

    #[test]
    fn a_committed_set_is_current_and_the_older_one_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = Reporter::new("pysk-test", pysk_common::report::Level::Quiet);
        let manifest = |host: &str| Manifest {
            version: 1,
            created: "2026-11-30T00:50:00Z".into(),
            host: host.into(),
            dumps: Vec::new(),
        };
        let first = Staging::create(dir.path())
            .expect("stage")
            .commit(&manifest("a"))
            .expect("commit");
        let second = Staging::create(dir.path())
            .expect("stage")
            .commit(&manifest("b"))
            .expect("commit");
        assert_ne!(first, second);
        assert!(!first.exists());
        assert_eq!(current_set(dir.path()), Some(second.clone()));
        assert_eq!(Manifest::read(&second).expect("read").host, "b");
        let dropped = Staging::create(dir.path()).expect("stage");
        let staged = dropped.path.clone();
        assert!(staged.is_dir());
        drop(dropped);
        assert!(!staged.exists());
        fs::create_dir(dir.path().join("sets/.new-20200101T000000Z")).expect("mkdir");
        clean(dir.path(), &report).expect("clean");
        let names: Vec<_> = fs::read_dir(dir.path().join(SETS))
            .expect("read")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [second.file_name().expect("name").to_owned()]);
    }
}
