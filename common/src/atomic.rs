//! Replacing files so that every file is always either its old or its new
//! version, never torn.
//!
//! The new content goes into a temporary file in the same directory
//! (created exclusively, mode 0600), which gets its final mode and owner,
//! is `fsync`ed, and is renamed over the target; then the directory is
//! `fsync`ed so the rename itself survives a crash. With
//! [`Options::backup`] the previous version stays beside it as `name-`, the
//! way shadow-utils keeps `passwd-`. If anything fails before the rename,
//! the temporary file is removed and the target is untouched.
//!
//! A process killed before its rename (`kill -9`, a crash) leaves its
//! temporary files behind; [`remove_stale`], called at the start of each
//! run under the run's lock, removes those whose process is gone.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::report::Reporter;

/// How the new file is to be made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Permission bits; `None` keeps the old file's, or 0644 for a new one.
    pub mode: Option<u32>,
    /// Owner and group; `None` keeps the old file's, or the process's for a
    /// new one.
    pub owner: Option<(u32, u32)>,
    /// Keep the previous version as `<name>-`.
    pub backup: bool,
}

/// What [`replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The file already held exactly this content (and mode and owner);
    /// nothing was written and its mtime is unchanged.
    Unchanged,
    /// The file was created or replaced.
    Replaced,
}

/// A file being written in place of `path`; it replaces `path` only on
/// [`AtomicFile::commit`]. Dropped without a commit, it removes its
/// temporary file and leaves `path` as it was.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    options: Options,
    committed: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What names a temporary file: `.<name>.pysk-tmp.<pid>.<n>`, and
/// `.<name>.pysk-tmp.<pid>.backup` while the backup link is staged.
const TMP_MARK: &str = "pysk-tmp";

impl AtomicFile {
    /// Opens a new temporary file beside `path`.
    pub fn create(path: &Path, options: Options) -> Result<AtomicFile, Error> {
        let write_err = |source| Error::Write {
            path: path.to_owned(),
            source,
        };
        let name = path
            .file_name()
            .ok_or_else(|| write_err(io::Error::other("not a file name")))?;
        let dir = parent_dir(path);
        let tmp = dir.join(format!(
            ".{}.{TMP_MARK}.{}.{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        Ok(AtomicFile {
            path: path.to_owned(),
            tmp,
            file: Some(file),
            options,
            committed: false,
        })
    }

    /// The file the content goes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_err(&self, source: io::Error) -> Error {
        Error::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Makes the new content durable and puts it in place: mode and owner,
    /// `fsync`, the backup link, `rename`, `fsync` of the directory.
    pub fn commit(mut self) -> Result<(), Error> {
        self.finish(true)?;
        self.install()?;
        sync_dir(parent_dir(&self.path)).map_err(|e| self.write_err(e))
    }

    /// Gives the temporary file its mode and owner and closes it, after an
    /// `fsync` when `sync` (a [`Batch`] syncs the whole filesystem once
    /// instead).
    fn finish(&mut self, sync: bool) -> Result<(), Error> {
        let Some(file) = self.file.take() else {
            return Err(self.write_err(io::Error::other("already committed")));
        };
        let old = match fs::symlink_metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.write_err(e)),
        };
        let mode = self
            .options
            .mode
            .or_else(|| old.as_ref().map(|m| m.mode() & 0o7777))
            .unwrap_or(0o644);
        let owner = self
            .options
            .owner
            .or_else(|| old.as_ref().map(|m| (m.uid(), m.gid())));
        if let Some((uid, gid)) = owner {
            let current = file.metadata().map_err(|e| self.write_err(e))?;
            if (current.uid(), current.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                    .map_err(|e| self.write_err(e))?;
            }
        }
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| self.write_err(e))?;
        if sync {
            file.sync_all().map_err(|e| self.write_err(e))?;
        }
        Ok(())
    }

    /// Keeps the backup link if asked to, and renames the finished
    /// temporary file over the target.
    fn install(&mut self) -> Result<(), Error> {
        let is_file = fs::symlink_metadata(&self.path).is_ok_and(|m| m.is_file());
        if self.options.backup && is_file {
            self.keep_backup()?;
        }
        fs::rename(&self.tmp, &self.path).map_err(|e| self.write_err(e))?;
        self.committed = true;
        Ok(())
    }

    /// Links the current version to `<name>-`, itself atomically.
    fn keep_backup(&self) -> Result<(), Error> {
        let mut backup = self.path.clone().into_os_string();
        backup.push("-");
        let backup = PathBuf::from(backup);
        let staging = self.tmp.with_extension("backup");
        let _ = fs::remove_file(&staging);
        fs::hard_link(&self.path, &staging).map_err(|e| self.write_err(e))?;
        fs::rename(&staging, &backup).map_err(|e| {
            let _ = fs::remove_file(&staging);
            self.write_err(e)
        })
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("write after commit")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Until the rename the target was never touched: only the
        // temporary file has to go.
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Replaces `path` with `contents` atomically; writes nothing when the file
/// already holds exactly that (and has the requested mode and owner).
pub fn replace(path: &Path, contents: &[u8], options: Options) -> Result<Written, Error> {
    replace_with(path, options, Some(contents), |w| w.write_all(contents))
}

/// Replaces `path` with what `fill` writes. When `expected` is given and
/// the file already holds it, nothing is written. An error from `fill`
/// leaves `path` untouched and no temporary file behind.
pub fn replace_with<F>(
    path: &Path,
    options: Options,
    expected: Option<&[u8]>,
    fill: F,
) -> Result<Written, Error>
where
    F: FnOnce(&mut AtomicFile) -> io::Result<()>,
{
    if let Some(expected) = expected
        && unchanged(path, expected, options)
    {
        return Ok(Written::Unchanged);
    }
    let mut file = AtomicFile::create(path, options)?;
    fill(&mut file).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    file.commit()?;
    Ok(Written::Replaced)
}

fn unchanged(path: &Path, expected: &[u8], options: Options) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.len() == expected.len() as u64
        && options.mode.is_none_or(|m| meta.mode() & 0o7777 == m)
        && options
            .owner
            .is_none_or(|(u, g)| (meta.uid(), meta.gid()) == (u, g))
        && fs::read(path).is_ok_and(|current| current == expected)
}

/// Many files replaced together, for tools that write thousands at once
/// (zone files): each is written to its temporary file without an
/// `fsync`; [`Batch::commit`] then makes them all durable with one
/// `syncfs(2)` per filesystem, renames them in the order they were staged,
/// and `fsync`s each directory once. Every file is still either old or
/// new after a crash; dropped without a commit, the batch leaves every
/// target untouched.
#[derive(Debug, Default)]
pub struct Batch {
    staged: Vec<AtomicFile>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Stages `contents` for `path`; nothing is staged when the file
    /// already holds exactly that.
    pub fn stage(
        &mut self,
        path: &Path,
        contents: &[u8],
        options: Options,
    ) -> Result<Written, Error> {
        if unchanged(path, contents, options) {
            return Ok(Written::Unchanged);
        }
        let mut file = AtomicFile::create(path, options)?;
        file.write_all(contents).map_err(|e| file.write_err(e))?;
        file.finish(false)?;
        self.staged.push(file);
        Ok(Written::Replaced)
    }

    /// How many files are staged.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Makes every staged file durable, then puts them in place.
    pub fn commit(mut self) -> Result<(), Error> {
        let mut dirs: Vec<PathBuf> = self
            .staged
            .iter()
            .map(|f| parent_dir(&f.path).to_owned())
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut synced_devices = Vec::new();
        for dir in &dirs {
            let err = |source| Error::Write {
                path: dir.clone(),
                source,
            };
            let handle = File::open(dir).map_err(err)?;
            let device = handle.metadata().map_err(err)?.dev();
            if !synced_devices.contains(&device) {
                syncfs(&handle).map_err(err)?;
                synced_devices.push(device);
            }
        }
        for file in &mut self.staged {
            file.install()?;
        }
        for dir in &dirs {
            sync_dir(dir).map_err(|source| Error::Write {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Removes the temporary files [`AtomicFile`] left in `dir` (not below it)
/// by a process that is gone: `.<name>.pysk-tmp.<pid>.<n>` and
/// `.<name>.pysk-tmp.<pid>.backup` whose pid `kill(pid, 0)` reports as not
/// existing. A live pid's files (even if the pid was reused) and this
/// process's own are kept; anything else is never touched. A link with
/// such a name is removed as the link, never followed; a directory with
/// one is kept. Returns how many were removed; a missing `dir` has none.
///
/// Call it under the lock of the run that writes in `dir`, so that no
/// other run of the tool is writing there.
pub fn remove_stale(dir: &Path) -> Result<usize, Error> {
    let read_err = |source| Error::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(read_err(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        let Some(pid) = tmp_pid(&entry.file_name()) else {
            continue;
        };
        // The entry's own type: a link is not followed.
        let is_dir = entry.file_type().map_err(read_err)?.is_dir();
        if is_dir || pid == std::process::id() || alive(pid) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Write {
                    path: entry.path(),
                    source,
                });
            }
        }
    }
    if removed > 0 {
        sync_dir(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    Ok(removed)
}

/// [`remove_stale`] in each of `dirs` (each once; an empty path is the
/// current directory), with a warning through `reporter` for each
/// directory where something was removed. Returns how many were removed.
pub fn remove_stale_in(
    dirs: impl IntoIterator<Item = impl AsRef<Path>>,
    reporter: &Reporter,
) -> Result<usize, Error> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut total = 0;
    for dir in dirs {
        let dir = match dir.as_ref() {
            d if d.as_os_str().is_empty() => Path::new("."),
            d => d,
        };
        if seen.iter().any(|s| s == dir) {
            continue;
        }
        seen.push(dir.to_owned());
        let removed = remove_stale(dir)?;
        if removed > 0 {
            reporter.warn(format_args!(
                "{}: removed {removed} temporary file(s) left by a killed run",
                dir.display()
            ));
        }
        total += removed;
    }
    Ok(total)
}

/// The pid in a temporary file's name of [`AtomicFile`]'s making, `None`
/// for any other name.
fn tmp_pid(name: &OsStr) -> Option<u32> {
    let name = name.as_bytes();
    let (rest, last) = split_last(name)?;
    if !(all_digits(last) || last == b"backup") {
        return None;
    }
    let (rest, pid) = split_last(rest)?;
    let (hidden, mark) = split_last(rest)?;
    // `.<name>`: the dot and at least one byte of the target's name.
    if mark != TMP_MARK.as_bytes() || hidden.len() < 2 || hidden[0] != b'.' || !all_digits(pid) {
        return None;
    }
    let pid: u32 = std::str::from_utf8(pid).ok()?.parse().ok()?;
    // 0 and anything above i32::MAX are no process's id (kill(2) would
    // read them as a process group).
    (1..=i32::MAX as u32).contains(&pid).then_some(pid)
}

/// `name` split at its last dot.
fn split_last(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    Some((&name[..dot], &name[dot + 1..]))
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Whether process `pid` exists: `kill(pid, 0)` fails with `ESRCH` only
/// when it does not (`EPERM`: it exists, owned by someone else).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 sends nothing; the call only checks the pid.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// `syncfs(2)`: flushes the whole filesystem that holds `file`.
fn syncfs(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `link` by a symbolic link to `target` with one rename, so that
/// whoever follows `link` sees the old target or the new one, never none.
/// The new link is made beside it under a temporary name of
/// [`AtomicFile`]'s naming (so [`remove_stale`] clears a killed run's) and
/// removed again when the rename fails. The directory is not synced: the
/// caller does that once with [`sync_dir`] when it needs the flip durable.
pub fn replace_link(target: &Path, link: &Path) -> Result<(), Error> {
    let write_err = |source| Error::Write {
        path: link.to_owned(),
        source,
    };
    let name = link
        .file_name()
        .ok_or_else(|| write_err(io::Error::other("not a file name")))?;
    let tmp = parent_dir(link).join(format!(
        ".{}.{TMP_MARK}.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::os::unix::fs::symlink(target, &tmp).map_err(write_err)?;
    fs::rename(&tmp, link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        write_err(e)
    })
}

/// `fsync`s a directory, so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_replaces_and_keeps_a_backup_with_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        let opts = Options {
            mode: Some(0o640),
            owner: None,
            backup: true,
        };
        assert_eq!(
            replace(&path, b"one\n", opts).expect("create"),
            Written::Replaced
        );
        assert_eq!(entries(dir.path()), ["passwd"]);
        assert_eq!(
            replace(&path, b"two\n", opts).expect("replace"),
            Written::Replaced
        );
        assert_eq!(fs::read(&path).expect("read"), b"two\n");
        assert_eq!(
            fs::read(dir.path().join("passwd-")).expect("backup"),
            b"one\n"
        );
        let meta = fs::metadata(&path).expect("meta");
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(entries(dir.path()), ["passwd", "passwd-"]);
    }

    #[test]
    fn a_batch_is_all_in_place_after_commit_and_nothing_without() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("db.a"), dir.path().join("db.b"));
        fs::write(&a, "old a").expect("write");
        fs::write(&b, "same").expect("write");
        let mut batch = Batch::new();
        assert_eq!(
            batch
                .stage(&a, b"new a", Options::default())
                .expect("stage"),
            Written::Replaced
        );
        assert_eq!(
            batch.stage(&b, b"same", Options::default()).expect("stage"),
            Written::Unchanged
        );
        assert_eq!(batch.len(), 1);
        drop(batch);
        assert_eq!(fs::read(&a).expect("read"), b"old a");
        assert_eq!(
            entries(dir.path()),
            ["db.a", "db.b"],
            "no temporary file left"
        );

        let mut batch = Batch::new();
        for (i, name) in ["db.a", "db.c", "db.d"].iter().enumerate() {
            batch
                .stage(
                    &dir.path().join(name),
                    format!("v{i}").as_bytes(),
                    Options::default(),
                )
                .expect("stage");
        }
        batch.commit().expect("commit");
        assert_eq!(entries(dir.path()), ["db.a", "db.b", "db.c", "db.d"]);
        assert_eq!(fs::read(dir.path().join("db.d")).expect("read"), b"v2");
        assert_eq!(fs::read(&a).expect("read"), b"v0");
    }

    #[test]
    fn keeps_the_old_mode_and_owner_when_not_told_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shadow");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let before = fs::metadata(&path).expect("meta");
        replace(&path, b"new", Options::default()).expect("replace");
        let after = fs::metadata(&path).expect("meta");
        assert_eq!(after.mode() & 0o7777, 0o600);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_ne!(after.ino(), before.ino(), "a new inode was renamed in");
    }

    #[test]
    fn unchanged_content_writes_nothing_and_keeps_the_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.example.org");
        fs::write(&path, "same\n").expect("write");
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(old)
            .expect("set mtime");
        let ino = fs::metadata(&path).expect("meta").ino();
        assert_eq!(
            replace(&path, b"same\n", Options::default()).expect("replace"),
            Written::Unchanged
        );
        let meta = fs::metadata(&path).expect("meta");
        assert_eq!(meta.modified().expect("mtime"), old);
        assert_eq!(meta.ino(), ino);
    }

    #[test]
    fn failure_while_writing_leaves_old_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("group");
        fs::write(&path, "old content\n").expect("write");
        let result = replace_with(&path, Options::default(), None, |w| {
            w.write_all(b"half of the new")?;
            Err(io::Error::other("injected failure"))
        });
        match result {
            Err(Error::Write { path: p, source }) => {
                assert_eq!(p, path);
                assert_eq!(source.to_string(), "injected failure");
            }
            other => panic!("expected a write error, got {other:?}"),
        }
        assert_eq!(fs::read(&path).expect("read"), b"old content\n");
        assert_eq!(entries(dir.path()), ["group"]);
    }

    #[test]
    fn failing_rename_leaves_target_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A non-empty directory cannot be replaced by a file: the rename,
        // the last step, fails.
        let target = dir.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("keep"), "x").expect("write");
        let err = replace(&target, b"data", Options::default()).expect_err("rename fails");
        assert!(matches!(err, Error::Write { .. }), "{err:?}");
        assert_eq!(entries(dir.path()), ["target"]);
        assert_eq!(entries(&target), ["keep"]);
    }

    #[test]
    fn streaming_file_dropped_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        {
            let mut f = AtomicFile::create(&path, Options::default()).expect("create");
            f.write_all(b"partial").expect("write");
            assert_eq!(entries(dir.path()).len(), 1, "the temporary file exists");
        }
        assert!(entries(dir.path()).is_empty());
    }

    /// The pid of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn stale_temporary_files_of_a_dead_process_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (dead, me) = (dead_pid(), std::process::id());
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let stale = [
            format!(".db.example.org.pysk-tmp.{dead}.0"),
            format!(".db.example.org.pysk-tmp.{dead}.17"),
            format!(".shadow.pysk-tmp.{dead}.backup"),
            format!("..hidden.pysk-tmp.{dead}.3"),
        ];
        let kept = [
            format!(".shadow.pysk-tmp.{}.0", live.id()),
            format!(".shadow.pysk-tmp.{me}.0"),
            ".passwd.pysk-tmp.1.0".to_owned(),
            format!("db.example.org.pysk-tmp.{dead}.0"),
            format!("..pysk-tmp.{dead}.0"),
            format!(".x.pysk-tmp.{dead}.0.old"),
            format!(".x.pysk-tmp.{dead}.1a"),
            format!(".x.pysk-tmp.{dead}."),
            format!(".x.pysk-temp.{dead}.0"),
            ".x.pysk-tmp.0.0".to_owned(),
            ".x.pysk-tmp.4294967296.0".to_owned(),
            "db.example.org".to_owned(),
            "passwd-".to_owned(),
        ];
        for name in stale.iter().chain(&kept) {
            fs::write(dir.path().join(name), "x").expect("write");
        }
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).expect("mkdir");
        fs::write(sub.join(&stale[0]), "x").expect("write");
        let stale_dir = format!(".d.pysk-tmp.{dead}.0");
        fs::create_dir(dir.path().join(&stale_dir)).expect("mkdir");

        assert_eq!(remove_stale(dir.path()).expect("cleans"), stale.len());
        let mut expected: Vec<String> = kept.to_vec();
        expected.extend([stale_dir, "sub".to_owned()]);
        expected.sort();
        assert_eq!(entries(dir.path()), expected);
        assert_eq!(entries(&sub), [stale[0].clone()], "not below the directory");
        assert_eq!(remove_stale(dir.path()).expect("again"), 0);
        live.kill().expect("kill sleep");
        live.wait().expect("wait");
    }

    #[test]
    fn a_link_with_a_stale_name_is_removed_as_the_link_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target_dir = tempfile::tempdir().expect("tempdir");
        let target = target_dir.path().join("shadow");
        fs::write(&target, "root:secret\n").expect("write");
        let link = dir
            .path()
            .join(format!(".shadow.pysk-tmp.{}.0", dead_pid()));
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let dangling = dir.path().join(format!(".group.pysk-tmp.{}.1", dead_pid()));
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");

        assert_eq!(remove_stale(dir.path()).expect("cleans"), 2);
        assert!(entries(dir.path()).is_empty());
        assert_eq!(fs::read(&target).expect("target kept"), b"root:secret\n");
    }

    #[test]
    fn a_missing_directory_has_nothing_stale_and_an_unreadable_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(remove_stale(&dir.path().join("absent")).expect("absent"), 0);
        let file = dir.path().join("file");
        fs::write(&file, "x").expect("write");
        match remove_stale(&file) {
            Err(Error::Read { path, .. }) => assert_eq!(path, file),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn the_names_atomic_file_makes_are_recognised_with_their_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.example.org");
        let _file = AtomicFile::create(&path, Options::default()).expect("create");
        let names = entries(dir.path());
        assert_eq!(names.len(), 1);
        assert_eq!(
            tmp_pid(OsStr::new(&names[0])),
            Some(std::process::id()),
            "{names:?}"
        );
        assert_eq!(remove_stale(dir.path()).expect("own kept"), 0);
        assert_eq!(entries(dir.path()), names);
    }

    #[test]
    fn a_link_is_replaced_in_one_rename_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("current");
        replace_link(Path::new("one"), &link).expect("create");
        assert_eq!(fs::read_link(&link).expect("link"), Path::new("one"));
        replace_link(Path::new("sets/two"), &link).expect("replace");
        assert_eq!(fs::read_link(&link).expect("link"), Path::new("sets/two"));
        assert_eq!(entries(dir.path()), ["current"]);
        // A non-empty directory cannot be replaced by a link.
        let busy = dir.path().join("busy");
        fs::create_dir(&busy).expect("mkdir");
        fs::write(busy.join("keep"), "x").expect("write");
        match replace_link(Path::new("one"), &busy) {
            Err(Error::Write { path, .. }) => assert_eq!(path, busy),
            other => panic!("expected a write error, got {other:?}"),
        }
        assert_eq!(entries(dir.path()), ["busy", "current"]);
    }

    #[test]
    fn each_directory_is_cleaned_once_and_the_removals_add_up() {
        let (a, b) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let dead = dead_pid();
        for (dir, n) in [(a.path(), 3), (b.path(), 2)] {
            for i in 0..n {
                fs::write(dir.join(format!(".db.x.pysk-tmp.{dead}.{i}")), "x").expect("write");
            }
        }
        let reporter = Reporter::new("pysk-test", crate::report::Level::Quiet);
        let dirs = [a.path(), b.path(), a.path()];
        assert_eq!(remove_stale_in(dirs, &reporter).expect("cleans"), 5);
        assert!(entries(a.path()).is_empty() && entries(b.path()).is_empty());
    }
}
