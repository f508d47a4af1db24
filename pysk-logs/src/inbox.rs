//! Which inbox files `split` may take, and the proof, once they are read,
//! that nothing was written into them meanwhile.
//!
//! The protocol, in order:
//!
//! 1. **Listing.** A name starting with `.` is a file still being written
//!    by a sender that delivers with a rename (Maildir, `fetch`): skipped
//!    without a word. A directory, FIFO, socket, device or symbolic link
//!    (dangling or not) is an odd entry: reported, left in place, exit 1.
//!    A link is refused rather than followed, because its target lives
//!    outside the inbox: it can be written through its own path while it
//!    is read, and removing the link would leave it behind.
//! 2. **Not open for writing.** A file that any process holds open for
//!    writing (every `/proc/<pid>/fd/*` whose file is the inbox file and
//!    whose `/proc/<pid>/fdinfo/*` flags say write, as `fuser` finds
//!    them) is left for the next run. Processes whose descriptors we may
//!    not see (another user's, when not run as root) cannot be checked:
//!    for them the quiet period below is the only guard.
//! 3. **Quiet.** A file whose change time differs from its modification
//!    time had something other than a write done to it last (a rename
//!    into place, `cp -p` or `touch` setting its times): it is complete
//!    and taken at once. Otherwise its last write was at its modification
//!    time, and it is taken once that is `settle` ago; a run waits (at
//!    most `settle`) for files that are not yet quiet, looks again, and
//!    leaves those still written to for the next run.
//! 4. **Frozen after reading.** Each file read is renamed in the inbox to
//!    `<name>.taken-<n>`, so that a writer opening its name from then on
//!    makes a new file; then no process may hold it open for writing and
//!    its inode, size and modification time must be those it had when it
//!    was taken. Only then are its lines committed and the file removed
//!    with the batch. A file that fails this is left (under its new name)
//!    for the next run, which reads it whole, and this run's lines of it
//!    are dropped: nothing is lost and nothing is committed twice. A file
//!    that already has such a name (left by an earlier run, so no writer
//!    opens it by name) keeps it, and one that could not be read keeps its
//!    own (none of its lines is used; it moves whole to `rejected/`). A
//!    process we may not examine that holds a file open from before the
//!    rename is the one writer this cannot see: the quiet period is the
//!    guard against it.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::LogsError;
use pysk_common::error::{read_err, write_err};

/// An inbox entry left where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    /// The entry.
    pub path: String,
    /// Why it was not taken.
    pub why: &'static str,
}

/// What a file was when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    fn key(self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// An inbox file taken for reading.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Its path when it was taken.
    pub path: PathBuf,
    /// What it was then.
    pub stamp: Stamp,
}

/// What [`take`] found in the inbox.
#[derive(Debug, Default)]
pub struct Listing {
    /// The files to read, by name.
    pub taken: Vec<Taken>,
    /// Odd entries (directories, FIFOs, sockets, links): a failure.
    pub odd: Vec<Left>,
    /// Files still being written, left for the next run.
    pub waiting: Vec<Left>,
    /// Processes whose descriptors could not be examined.
    pub hidden: usize,
}

/// An inbox file and what `lstat` said of it.
type Entry = (PathBuf, Metadata);

/// Lists the inbox and takes the files that are complete (steps 1–3 of
/// the module's protocol), waiting at most `settle` for recent ones.
pub fn take(inbox: &Path, settle: Duration) -> Result<Listing, LogsError> {
    let (files, odd) = list(inbox)?;
    let (candidates, waiting) = quiet_ones(files, settle)?;
    let mut listing = Listing {
        odd,
        waiting,
        ..Listing::default()
    };
    let keys: HashSet<_> = candidates.iter().map(|(_, m)| Stamp::of(m).key()).collect();
    let (open, hidden) = writers(&keys);
    listing.hidden = hidden;
    for (path, meta) in candidates {
        let stamp = Stamp::of(&meta);
        if open.contains(&stamp.key()) {
            listing.waiting.push(left(&path, "open for writing"));
        } else {
            listing.taken.push(Taken { path, stamp });
        }
    }
    Ok(listing)
}

/// Step 1: the regular files of the inbox and its odd entries, each
/// sorted by name; dot-files left out.
fn list(inbox: &Path) -> Result<(Vec<Entry>, Vec<Left>), LogsError> {
    let (mut files, mut odd) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(inbox).map_err(read_err(inbox))? {
        let entry = entry.map_err(read_err(inbox))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        match odd_kind(&meta) {
            Some(why) => odd.push(left(&path, why)),
            None => files.push((path, meta)),
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    odd.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, odd))
}

/// Step 3: the files that are quiet now or after one wait of at most
/// `settle`, sorted by name, and those still being written.
fn quiet_ones(files: Vec<Entry>, settle: Duration) -> Result<(Vec<Entry>, Vec<Left>), LogsError> {
    let now = SystemTime::now();
    let (mut ready, recent): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(_, meta)| quiet(meta, now, settle));
    let mut waiting = Vec::new();
    if recent.is_empty() {
        return Ok((ready, waiting));
    }
    std::thread::sleep(wait_for(&recent, now, settle));
    let now = SystemTime::now();
    for (path, _) in recent {
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        if odd_kind(&meta).is_none() && quiet(&meta, now, settle) {
            ready.push((path, meta));
        } else {
            waiting.push(left(&path, "still being written"));
        }
    }
    ready.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((ready, waiting))
}

/// Why an inbox entry of this type is not a file to read; `None` for a
/// regular file.
fn odd_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_symlink() {
        Some("a symbolic link (move or copy the file itself into the inbox)")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    }
}

fn left(path: &Path, why: &'static str) -> Left {
    Left {
        path: path.display().to_string(),
        why,
    }
}

/// Whether a file is done being written: something other than a write was
/// done to it last, or its last write is `settle` ago.
fn quiet(meta: &Metadata, now: SystemTime, settle: Duration) -> bool {
    if (meta.ctime(), meta.ctime_nsec()) != (meta.mtime(), meta.mtime_nsec()) {
        return true;
    }
    meta.modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age >= settle)
}

/// How long until the most recently written of `recent` has been quiet for
/// `settle`: never more than `settle`.
fn wait_for(recent: &[Entry], now: SystemTime, settle: Duration) -> Duration {
    let newest = recent
        .iter()
        .filter_map(|(_, m)| m.modified().ok())
        .max()
        .unwrap_or(now);
    let age = now.duration_since(newest).unwrap_or_default();
    settle.saturating_sub(age).min(settle) + Duration::from_millis(10)
}

/// Which of the files `keys` (device, inode) some process holds open for
/// writing, and how many processes could not be examined (no permission).
fn writers(keys: &HashSet<(u64, u64)>) -> (HashSet<(u64, u64)>, usize) {
    let mut open = HashSet::new();
    let mut hidden = 0;
    let Ok(procs) = fs::read_dir("/proc") else {
        return (open, hidden);
    };
    for proc in procs.flatten() {
        let pid = proc.path();
        if !proc
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let fds = match fs::read_dir(pid.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                hidden += 1;
                continue;
            }
            // The process ended meanwhile.
            Err(_) => continue,
        };
        for fd in fds.flatten() {
            let Ok(meta) = fs::metadata(fd.path()) else {
                continue;
            };
            let key = (meta.dev(), meta.ino());
            if keys.contains(&key) && writable(&pid.join("fdinfo").join(fd.file_name())) {
                open.insert(key);
            }
        }
    }
    (open, hidden)
}

/// Whether the descriptor whose `/proc/<pid>/fdinfo/<fd>` is `info` was
/// opened for writing (its `flags:` line, octal, has `O_WRONLY` or
/// `O_RDWR`). An fdinfo gone or unreadable counts as not writing: the
/// descriptor was closed meanwhile.
fn writable(info: &Path) -> bool {
    let Ok(text) = fs::read_to_string(info) else {
        return false;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & i64::from(libc::O_ACCMODE) != i64::from(libc::O_RDONLY))
}

/// Step 4 of the protocol, for every file taken and read: each is renamed
/// to `<name>.taken-<n>` (unless it has such a name already, or could not
/// be read: none of its lines is committed, and it moves whole to
/// `rejected/`), then checked. Returns, by file, where it is now and
/// whether its lines may be committed.
pub fn freeze(taken: &[Taken], unread: &[bool]) -> Result<Vec<Frozen>, LogsError> {
    let mut moved = Vec::with_capacity(taken.len());
    for (i, t) in taken.iter().enumerate() {
        let name = match unread.get(i) {
            Some(true) => None,
            _ => taken_name(&t.path),
        };
        let Some(to) = name else {
            moved.push(Some(t.path.clone()));
            continue;
        };
        match fs::rename(&t.path, &to) {
            Ok(()) => moved.push(Some(to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => moved.push(None),
            Err(e) => return Err(write_err(&to)(e).into()),
        }
    }
    let keys: HashSet<_> = taken.iter().map(|t| t.stamp.key()).collect();
    let (open, _) = writers(&keys);
    Ok(taken
        .iter()
        .zip(moved)
        .map(|(t, to)| match to {
            Some(path) => {
                let now = fs::symlink_metadata(&path).ok().map(|m| Stamp::of(&m));
                let unchanged = now == Some(t.stamp) && !open.contains(&t.stamp.key());
                Frozen { path, unchanged }
            }
            None => Frozen {
                path: t.path.clone(),
                unchanged: false,
            },
        })
        .collect())
}

/// A file taken and read, after [`freeze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// Where it is now.
    pub path: PathBuf,
    /// Nobody wrote to it since it was taken, nor can from now on (but
    /// through a descriptor of a process we may not examine): its lines
    /// may be committed and it removed.
    pub unchanged: bool,
}

/// `<name>.taken-<n>` beside `path`, a name no file has; `None` for a
/// file that already has such a name (left by an earlier run: no writer
/// opens it by that name).
fn taken_name(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    if taken_stem(&name).is_some() {
        return None;
    }
    (0u64..)
        .map(|n| path.with_file_name(format!("{name}.taken-{n}")))
        .find(|p| fs::symlink_metadata(p).is_err())
}

/// The stem of a name `<stem>.taken-<n>`.
fn taken_stem(name: &str) -> Option<&str> {
    name.rsplit_once(".taken-")
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|(stem, _)| stem)
}

/// The name a file had when it arrived in the inbox: `path` without the
/// `.taken-<n>` a run gave it, so that rejected lines name their source
/// the same whichever run read them.
pub fn delivered_as(path: &Path) -> PathBuf {
    match path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(taken_stem)
    {
        Some(stem) => path.with_file_name(stem),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn odd_entries_are_named_and_dot_files_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = dir.path();
        fs::create_dir(inbox.join("sub")).expect("dir");
        std::os::unix::fs::symlink("nowhere", inbox.join("dangling")).expect("link");
        fs::write(inbox.join(".part"), "x\n").expect("dot");
        fs::write(inbox.join("a.log"), "x\n").expect("file");
        let l = take(inbox, Duration::ZERO).expect("take");
        let whys: Vec<_> = l.odd.iter().map(|o| o.why).collect();
        assert_eq!(whys.len(), 2);
        assert!(whys.contains(&"a directory"));
        assert_eq!(l.taken.len(), 1);
        assert!(l.taken[0].path.ends_with("a.log"));
    }

    #[test]
    fn a_file_open_for_writing_waits_and_a_reader_does_not_hold_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let mut w = fs::File::create(&path).expect("create");
        w.write_all(b"x\n").expect("write");
        let l = take(dir.path(), Duration::ZERO).expect("take");
        assert_eq!(l.waiting, vec![left(&path, "open for writing")]);
        drop(w);
        let _reader = fs::File::open(&path).expect("open");
        assert_eq!(
            take(dir.path(), Duration::ZERO).expect("take").taken.len(),
            1
        );
    }

    #[test]
    fn a_file_written_after_it_was_taken_is_not_frozen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        fs::write(&path, "x\n").expect("write");
        let l = take(dir.path(), Duration::ZERO).expect("take");
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"y\n"))
            .expect("append");
        let frozen = freeze(&l.taken, &[]).expect("freeze");
        let path = dir.path().join("a.log.taken-0");
        assert_eq!(
            frozen,
            vec![Frozen {
                path,
                unchanged: false
            }]
        );
        assert!(dir.path().join("a.log.taken-0").exists());
        let again = take(dir.path(), Duration::ZERO).expect("take");
        let frozen = freeze(&again.taken, &[]).expect("freeze");
        let path = dir.path().join("a.log.taken-0");
        assert_eq!(
            frozen,
            vec![Frozen {
                path,
                unchanged: true
            }]
        );
        let taken = dir.path().join("a.log.taken-0");
        assert_eq!(delivered_as(&taken), dir.path().join("a.log"));
        assert_eq!(delivered_as(Path::new("b.taken-x")), Path::new("b.taken-x"));
    }

    #[test]
    fn a_recent_file_is_taken_after_the_quiet_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.log"), "x\n").expect("write");
        let l = take(dir.path(), Duration::from_millis(200)).expect("take");
        assert_eq!((l.taken.len(), l.waiting.len()), (1, 0));
    }
}
