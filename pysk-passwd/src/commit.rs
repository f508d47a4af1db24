//! The changed account files written as one set, so that neither a full
//! disk nor a crash leaves them half changed.
//!
//! 1. Every new file is staged beside its target as
//!    `.<name>.pysk-passwd-staged` (the old file's owner and mode) and
//!    `fsync`ed, and so are the directories. A failure here (`ENOSPC`)
//!    removes what was staged: every file is old.
//! 2. The intent record `etc/.pysk-passwd.intent` is written atomically,
//!    listing the targets in rename order: the commit point.
//! 3. Each target's previous version is linked to `<name>-` (not the
//!    chroot list's) and the staged file renamed over it; the directories
//!    are `fsync`ed and the intent removed.
//!
//! A run that finds an intent (a crash after 2) finishes it first: a
//! staged file still there is renamed, one gone was renamed already.
//! Staged files without an intent (a crash during 1) are removed. Both
//! happen under the account files' locks.
//!
//! The rename order ([`crate::plan::Plan::write_order`]) is gshadow,
//! group, shadow, the chroot list, passwd. An unchanged entry is the same
//! line in the old and the new file, so an unchanged user can log in
//! between any two renames; the order is for the entries that change. A
//! new account appears in passwd last, when its group, its hash and its
//! FTP jail are already in place; a removed one loses its shadow entry
//! before its passwd line (between the two it cannot log in: `x` with no
//! hash fails closed); a changed hash takes effect in one rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use pysk_common::atomic;
use pysk_common::error::{read_err, write_err};
use pysk_common::report::Reporter;

use crate::error::PasswdError;

/// The intent record's name in `etc/`.
pub const INTENT: &str = ".pysk-passwd.intent";

/// The account files in `etc/` a sync writes.
const ACCOUNT_FILES: [&str; 4] = ["gshadow", "group", "shadow", "passwd"];

/// The intent record: the targets, in rename order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Intent {
    /// The format version, 1.
    version: u32,
    /// The files being replaced.
    files: Vec<Target>,
}

/// One file of an intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    /// The file replaced by its staged version.
    path: PathBuf,
    /// Whether its previous version is kept as `<name>-`.
    backup: bool,
}

/// One changed file: where, what, and whether to keep a backup.
#[derive(Debug)]
pub struct Change<'a> {
    /// The target.
    pub path: &'a Path,
    /// Its new content.
    pub new: &'a [u8],
    /// Keep the previous version as `<name>-`.
    pub backup: bool,
}

/// Writes `changes` (in rename order) as one set into `etc`'s files and
/// the chroot list: all staged and synced, the intent written, then the
/// renames.
pub fn write(etc: &Path, changes: &[Change]) -> Result<(), PasswdError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut staged = Staged(Vec::new());
    for change in changes {
        stage(change.path, change.new, &mut staged)?;
    }
    for dir in dirs(changes.iter().map(|c| c.path)) {
        atomic::sync_dir(&dir).map_err(write_err(&dir))?;
    }
    let intent = Intent {
        version: 1,
        files: changes
            .iter()
            .map(|c| Target {
                path: c.path.to_owned(),
                backup: c.backup,
            })
            .collect(),
    };
    let path = etc.join(INTENT);
    let text = serde_json::to_vec_pretty(&intent)
        .map_err(|e| pysk_common::Error::Internal(format!("intent record: {e}")))?;
    let options = atomic::Options {
        mode: Some(0o600),
        ..atomic::Options::default()
    };
    atomic::replace(&path, &text, options)?;
    // Committed: from here on the staged files belong to the intent.
    staged.0.clear();
    finish(etc, &intent).map(drop)
}

/// The staged files of a set not yet committed; removed on drop.
struct Staged(Vec<PathBuf>);

impl Drop for Staged {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Where the new version of `target` is staged.
fn staged_path(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.pysk-passwd-staged"))
}

/// Writes `new` to the staged file of `target` with the target's owner and
/// mode (0644 and ours for a new file), synced.
fn stage(target: &Path, new: &[u8], staged: &mut Staged) -> Result<(), PasswdError> {
    let path = staged_path(target);
    let err = write_err(target);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e).into()),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err(target))?;
    staged.0.push(path);
    let fill = |file: &mut File| -> io::Result<()> {
        file.write_all(new)?;
        match fs::symlink_metadata(target) {
            Ok(old) => {
                std::os::unix::fs::fchown(&*file, Some(old.uid()), Some(old.gid()))?;
                file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                file.set_permissions(fs::Permissions::from_mode(0o644))?;
            }
            Err(e) => return Err(e),
        }
        file.sync_all()
    };
    fill(&mut file).map_err(|e| err(e).into())
}

/// The directories holding `paths`, each once.
fn dirs<'a>(paths: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for path in paths {
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Carries out a committed intent: each staged file still there put in
/// place (its backup first), the directories synced, the intent removed.
/// Safe to repeat after a crash anywhere inside it. Returns how many files
/// it renamed.
fn finish(etc: &Path, intent: &Intent) -> Result<usize, PasswdError> {
    let mut renamed = 0;
    for target in &intent.files {
        let staged = staged_path(&target.path);
        if fs::symlink_metadata(&staged).is_err() {
            continue; // renamed before a crash
        }
        if target.backup && fs::symlink_metadata(&target.path).is_ok_and(|m| m.is_file()) {
            keep_backup(&target.path)?;
        }
        fs::rename(&staged, &target.path).map_err(write_err(&target.path))?;
        renamed += 1;
        let name = target
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        // The crash tests end the run here (`renamed-<file>`).
        pysk_common::failpoint::reached("PYSK_PASSWD_FAILPOINT", &format!("renamed-{name}"));
    }
    for dir in dirs(intent.files.iter().map(|t| t.path.as_path())) {
        atomic::sync_dir(&dir).map_err(write_err(&dir))?;
    }
    let path = etc.join(INTENT);
    fs::remove_file(&path).map_err(write_err(&path))?;
    atomic::sync_dir(etc).map_err(write_err(etc))?;
    Ok(renamed)
}

/// Links the current `path` to `<path>-`, itself atomically.
fn keep_backup(path: &Path) -> Result<(), PasswdError> {
    let mut backup = path.as_os_str().to_owned();
    backup.push("-");
    let link = staged_path(path).with_extension("backup");
    let err = write_err(path);
    let _ = fs::remove_file(&link);
    fs::hard_link(path, &link)
        .and_then(|()| fs::rename(&link, &backup))
        .map_err(|e| {
            let _ = fs::remove_file(&link);
            err(e).into()
        })
}

/// Whether a sync was interrupted after its commit point.
pub fn pending(etc: &Path) -> bool {
    fs::symlink_metadata(etc.join(INTENT)).is_ok()
}

/// Before anything else, under the locks: finishes the set an interrupted
/// sync committed (reported), and removes what one that never committed
/// staged. `chroot_list` is the only file outside `etc` an intent may
/// name.
pub fn recover(
    etc: &Path,
    chroot_list: Option<&Path>,
    report: &Reporter,
) -> Result<(), PasswdError> {
    let path = etc.join(INTENT);
    let mut allowed: Vec<PathBuf> = ACCOUNT_FILES.iter().map(|n| etc.join(n)).collect();
    allowed.extend(chroot_list.map(Path::to_owned));
    if pending(etc) {
        let intent = read_intent(&path, &allowed)?;
        let renamed = finish(etc, &intent)?;
        report.warn(format_args!(
            "{}: finished the sync that was interrupted ({renamed} of its {} file(s) \
             put in place now)",
            path.display(),
            intent.files.len()
        ));
    }
    for target in &allowed {
        let staged = staged_path(target);
        match fs::remove_file(&staged) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&staged)(e).into()),
        }
    }
    Ok(())
}

/// Reads and checks an intent: version 1, naming only `allowed` files.
fn read_intent(path: &Path, allowed: &[PathBuf]) -> Result<Intent, PasswdError> {
    let bytes = fs::read(path).map_err(read_err(path))?;
    let bad = |reason: String| PasswdError::Intent {
        path: path.to_owned(),
        reason,
    };
    let intent: Intent =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not an intent record: {e}")))?;
    if intent.version != 1 {
        return Err(bad(format!("version {} is not 1", intent.version)));
    }
    if let Some(other) = intent.files.iter().find(|t| !allowed.contains(&t.path)) {
        return Err(bad(format!(
            "names {}, which this sync does not write",
            other.path.display()
        )));
    }
    Ok(intent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failure_while_staging_leaves_every_file_old_and_nothing_staged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = dir.path();
        fs::write(etc.join("shadow"), "old shadow\n").expect("write");
        let missing = etc.join("no-such-dir/chroot_list");
        let changes = [
            Change {
                path: &etc.join("shadow"),
                new: b"new shadow\n",
                backup: true,
            },
            Change {
                path: &missing,
                new: b"alice\n",
                backup: false,
            },
        ];
        assert!(matches!(
            write(etc, &changes),
            Err(PasswdError::Common(pysk_common::Error::Write { .. }))
        ));
        assert_eq!(names(etc), ["shadow"]);
        assert_eq!(fs::read(etc.join("shadow")).expect("read"), b"old shadow\n");
    }

    #[test]
    fn recovery_finishes_a_committed_set_and_drops_an_uncommitted_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = dir.path();
        for name in ["shadow", "passwd", "group"] {
            fs::write(etc.join(name), format!("old {name}\n")).expect("write");
        }
        // A crash after shadow's rename: passwd still staged.
        fs::write(etc.join("shadow"), "new shadow\n").expect("write");
        fs::write(staged_path(&etc.join("passwd")), "new passwd\n").expect("write");
        // group staged by a run that never committed.
        fs::write(staged_path(&etc.join("group")), "new group\n").expect("write");
        let intent = Intent {
            version: 1,
            files: ["shadow", "passwd"]
                .map(|n| Target {
                    path: etc.join(n),
                    backup: true,
                })
                .to_vec(),
        };
        fs::write(etc.join(INTENT), serde_json::to_vec(&intent).expect("json")).expect("write");
        let report = Reporter::new("pysk-passwd", pysk_common::report::Level::Quiet);
        recover(etc, None, &report).expect("recovers");
        assert_eq!(names(etc), ["group", "passwd", "passwd-", "shadow"]);
        assert_eq!(fs::read(etc.join("passwd")).expect("read"), b"new passwd\n");
        assert_eq!(
            fs::read(etc.join("passwd-")).expect("read"),
            b"old passwd\n"
        );
        assert_eq!(fs::read(etc.join("group")).expect("read"), b"old group\n");
    }

    #[test]
    fn an_intent_naming_another_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = dir.path();
        fs::write(
            etc.join(INTENT),
            r#"{"version":1,"files":[{"path":"/etc/sudoers","backup":false}]}"#,
        )
        .expect("write");
        let report = Reporter::new("pysk-passwd", pysk_common::report::Level::Quiet);
        match recover(etc, None, &report) {
            Err(PasswdError::Intent { reason, .. }) => {
                assert_eq!(reason, "names /etc/sudoers, which this sync does not write");
            }
            other => panic!("{other:?}"),
        }
    }
}
