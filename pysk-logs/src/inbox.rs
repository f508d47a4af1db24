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
//!    One that stays open for writing and unchanged for an hour (a program
//!    logging straight into the inbox) is reported as a warning each run.
//! 3. **Quiet.** A file whose change time differs from its modification
//!    time had something other than a write done to it last (a rename
//!    into place, `cp -p` or `touch` setting its times): it is complete
//!    and taken at once. Otherwise its last write was at its modification
//!    time, and it is taken once that is `settle` ago; a run waits (at
//!    most `settle`) for files that are not yet quiet, looks again, and
//!    leaves those still written to for the next run. A file renamed into
//!    place within the same clock tick of the file system as its last
//!    write has equal times, so it is not told from one just written: it
//!    waits out the quiet period too. An entry gone meanwhile (renamed or
//!    removed by its sender) is simply not there: a name that appeared
//!    meanwhile is for the next run.
//! 4. **Frozen after reading.** Each file read is renamed in the inbox to
//!    `<name>.taken-<n>`, so that a writer opening its name from then on
//!    makes a new file; then no process may hold it open for writing and
//!    its inode, size and modification time must be those it had when it
//!    was taken. Only then are its lines committed and the file removed
//!    with the batch. A file that fails this is left (under its new name)
//!    for the next run, which reads it whole, and this run's lines of it
//!    are dropped: nothing is lost and nothing is committed twice. A file
//!    that already has such a UTF-8 name (left by an earlier run, so no
//!    writer opens it by name) keeps it, and one that could not be read
//!    keeps its own (none of its lines is used; it moves whole to
//!    `rejected/`). The new name is always UTF-8 (each byte that is not
//!    as U+FFFD) and fits the 255-byte limit (the name before the suffix
//!    shortened), so the removal can be recorded; a later run's rejected
//!    lines then name the file so. A file that cannot be renamed is
//!    reported, none of its lines used, and left in place; the others go
//!    on. A process we may not examine that holds a file open from before
//!    the rename is the one writer this cannot see: the quiet period is the
//!    guard against it.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::LogsError;
use pysk_common::error::{cause, read_err};

/// An inbox entry left where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    /// The entry.
    pub path: String,
    /// Why it was not taken.
    pub why: String,
    /// Left so long that someone should look (see [`FORGOTTEN`]).
    #[serde(skip)]
    pub stale: bool,
}

/// How long a file may stay open for writing with no write before it is
/// reported as a warning rather than as news: a copy in progress writes
/// far more often, a program logging into the inbox never lets go.
pub const FORGOTTEN: Duration = Duration::from_secs(3600);

/// Why a file that stays open for writing and unchanged is left.
const FORGOTTEN_WHY: &str =
    "open for writing but unchanged for over an hour (a program writing its log into the inbox?)";

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
    let now = SystemTime::now();
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
            listing.waiting.push(match age(&meta, now) >= FORGOTTEN {
                true => Left {
                    stale: true,
                    ..left(&path, FORGOTTEN_WHY)
                },
                false => left(&path, "open for writing"),
            });
        } else {
            listing.taken.push(Taken { path, stamp });
        }
    }
    Ok(listing)
}

/// Step 1: the regular files of the inbox and its odd entries, each
/// sorted by name; dot-files and entries gone meanwhile left out.
fn list(inbox: &Path) -> Result<(Vec<Entry>, Vec<Left>), LogsError> {
    let (mut files, mut odd) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(inbox).map_err(read_err(inbox))? {
        let entry = entry.map_err(read_err(inbox))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let Some(meta) = still_there(&path)? else {
            continue;
        };
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
/// `settle`, sorted by name, and those still being written; a file gone
/// meanwhile is left out.
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
        let Some(meta) = still_there(&path)? else {
            continue;
        };
        if odd_kind(&meta).is_none() && quiet(&meta, now, settle) {
            ready.push((path, meta));
        } else {
            waiting.push(left(&path, "still being written"));
        }
    }
    ready.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((ready, waiting))
}

/// What `lstat` says of an inbox entry; `None` when it is gone (renamed
/// or removed by its sender since it was listed).
fn still_there(path: &Path) -> Result<Option<Metadata>, LogsError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(path)(e).into()),
    }
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

fn left(path: &Path, why: &str) -> Left {
    Left {
        path: path.display().to_string(),
        why: why.to_owned(),
        stale: false,
    }
}

/// How long ago a file was last written (zero for a time in the future).
fn age(meta: &Metadata, now: SystemTime) -> Duration {
    meta.modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or_default()
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
/// to `<name>.taken-<n>` (unless it has such a UTF-8 name already, or
/// could not be read: none of its lines is committed, and it moves whole
/// to `rejected/`), then checked. Returns, by file, where it is now and
/// whether its lines may be committed. A rename that fails counts for its
/// file alone.
pub fn freeze(taken: &[Taken], unread: &[bool]) -> Vec<Frozen> {
    let moved: Vec<_> = taken
        .iter()
        .enumerate()
        .map(|(i, t)| match unread.get(i) {
            Some(true) => Ok(Some(t.path.clone())),
            _ => rename_taken(&t.path),
        })
        .collect();
    let keys: HashSet<_> = taken.iter().map(|t| t.stamp.key()).collect();
    let (open, _) = writers(&keys);
    taken
        .iter()
        .zip(moved)
        .map(|(t, to)| match to {
            Ok(Some(path)) => {
                let now = fs::symlink_metadata(&path).ok().map(|m| Stamp::of(&m));
                let state = match now == Some(t.stamp) && !open.contains(&t.stamp.key()) {
                    true => State::Unchanged,
                    false => State::Changed,
                };
                Frozen { path, state }
            }
            Ok(None) => Frozen {
                path: t.path.clone(),
                state: State::Changed,
            },
            Err(why) => Frozen {
                path: t.path.clone(),
                state: State::Stuck(why),
            },
        })
        .collect()
}

/// Renames a file taken to its `<name>.taken-<n>` (see [`taken_name`]):
/// where it is now, `None` if it is gone, or why it could not be renamed.
fn rename_taken(path: &Path) -> Result<Option<PathBuf>, String> {
    let Some(to) = taken_name(path) else {
        return Ok(Some(path.to_owned()));
    };
    match fs::rename(path, &to) {
        Ok(()) => Ok(Some(to)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot rename to {}: {}",
            to.file_name().unwrap_or_default().to_string_lossy(),
            cause(&e)
        )),
    }
}

/// A file taken and read, after [`freeze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// Where it is now.
    pub path: PathBuf,
    /// Whether its lines may be committed.
    pub state: State,
}

/// What [`freeze`] found of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nobody wrote to it since it was taken, nor can from now on (but
    /// through a descriptor of a process we may not examine): its lines
    /// may be committed and it removed.
    Unchanged,
    /// Written to (or gone) since it was taken: left for the next run.
    Changed,
    /// It could not be renamed (why): left where it is, none of its lines
    /// used.
    Stuck(String),
}

/// The longest file name most file systems take, in bytes.
const NAME_MAX: usize = 255;

/// `<name>.taken-<n>` beside `path`, a UTF-8 name of at most [`NAME_MAX`]
/// bytes that no file has (`<name>` is the file's name, bytes that are not
/// UTF-8 as U+FFFD, shortened to fit); `None` for a file that already has
/// such a name (left by an earlier run: no writer opens it by that name).
fn taken_name(path: &Path) -> Option<PathBuf> {
    let raw = path.file_name()?;
    if raw.to_str().and_then(taken_stem).is_some() {
        return None;
    }
    let name = raw.to_string_lossy();
    (0u64..)
        .map(|n| {
            let suffix = format!(".taken-{n}");
            let stem = shortened(&name, NAME_MAX - suffix.len());
            path.with_file_name(format!("{stem}{suffix}"))
        })
        .find(|p| fs::symlink_metadata(p).is_err())
}

/// The longest start of `name` of at most `max` bytes that ends on a
/// character boundary.
fn shortened(name: &str, max: usize) -> &str {
    let end = (0..=max.min(name.len()))
        .rev()
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(0);
    &name[..end]
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
        let link = "a symbolic link (move or copy the file itself into the inbox)";
        assert_eq!(
            l.odd,
            vec![
                left(&inbox.join("dangling"), link),
                left(&inbox.join("sub"), "a directory")
            ]
        );
        assert_eq!(l.waiting, vec![]);
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
        let frozen = freeze(&l.taken, &[]);
        let path = dir.path().join("a.log.taken-0");
        assert_eq!(
            frozen,
            vec![Frozen {
                path,
                state: State::Changed
            }]
        );
        assert!(dir.path().join("a.log.taken-0").exists());
        let again = take(dir.path(), Duration::ZERO).expect("take");
        let frozen = freeze(&again.taken, &[]);
        let path = dir.path().join("a.log.taken-0");
        assert_eq!(
            frozen,
            vec![Frozen {
                path,
                state: State::Unchanged
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

    #[test]
    fn a_taken_name_is_utf8_and_fits() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "a".repeat(250);
        let path = dir.path().join(&long);
        let taken = taken_name(&path).expect("a new name");
        let want = format!("{}.taken-0", &long[..NAME_MAX - 8]);
        assert_eq!(taken, dir.path().join(&want));
        assert_eq!(want.len(), NAME_MAX);

        let odd = std::ffi::OsStr::from_bytes(b"\xfe.log.taken-0");
        let taken = taken_name(&dir.path().join(odd)).expect("a new name");
        assert_eq!(taken, dir.path().join("\u{fffd}.log.taken-0.taken-0"));
        assert_eq!(taken_name(&dir.path().join("b.log.taken-3")), None);

        let wide = "\u{e9}".repeat(127);
        let taken = taken_name(&dir.path().join(&wide)).expect("a new name");
        let name = taken.file_name().and_then(|n| n.to_str()).expect("UTF-8");
        assert_eq!(name, format!("{}.taken-0", "\u{e9}".repeat(123)));
    }

    #[test]
    fn a_file_open_and_unwritten_for_an_hour_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let w = fs::File::create(&path).expect("create");
        let old = SystemTime::now() - FORGOTTEN - Duration::from_secs(5);
        w.set_modified(old).expect("set times");
        let l = take(dir.path(), Duration::ZERO).expect("take");
        assert_eq!(
            l.waiting,
            vec![Left {
                stale: true,
                ..left(&path, FORGOTTEN_WHY)
            }]
        );
        drop(w);
    }
}
