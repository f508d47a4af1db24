//! Home directories: a missing home and its `www/` are created, a wrong
//! owner or mode corrected, and no symbolic link is ever followed below
//! `/home`: each directory is opened with `openat(O_NOFOLLOW |
//! O_DIRECTORY)` relative to its already opened parent, and owner and mode
//! are changed through that descriptor. A user who replaces `www` with a
//! link to `/etc` (or puts a FIFO or a file where a directory belongs)
//! gets one warning, `/etc` is not touched, and the rest of that user's
//! directories (its FTP accounts' homes too) are left for the next run;
//! every other user's are made.
//!
//! `/home` itself is the root's and trusted (it may be a link to another
//! disk).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
use pysk_common::error::cause;

use crate::validate::{Account, normalise};

/// The mode every managed directory gets.
const MODE: u32 = 0o755;

/// What was done to one directory, or why it was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// It was created.
    Created(PathBuf),
    /// Its owner was corrected (from uid, gid).
    Owner(PathBuf, u32, u32),
    /// Its mode was corrected (from mode).
    Mode(PathBuf, u32),
    /// It could not be made right; the reason. Nothing below it touched.
    Problem(PathBuf, String),
}

/// Makes the directories of `accounts` right inside `root`: for a user its
/// home (every directory from `/home/<user>` down) and `www/` in it, for
/// an FTP account its home; owner the account's uid and group `gid`, mode
/// 0755. After a problem, the user's remaining accounts (`accounts` lists
/// each user's FTP accounts after it) are skipped: one problem per user.
/// Returns what happened, in order.
pub fn ensure(root: &Path, accounts: &[Account], gid: u32) -> Vec<Event> {
    let mut events = Vec::new();
    let base = root.join("home");
    let home_dir = match open_home(&base) {
        Ok(dir) => dir,
        Err(e) => {
            events.push(Event::Problem(
                base,
                format!("cannot create or open: {}", cause(&e)),
            ));
            return events;
        }
    };
    let mut skipped: HashSet<&str> = HashSet::new();
    for account in accounts {
        let user = account.owner.as_deref().unwrap_or(&account.name);
        if skipped.contains(user) {
            continue;
        }
        let target = Target {
            user,
            uid: account.uid,
            gid,
        };
        if !walk(&home_dir, &base, &dirs(account), &target, &mut events) {
            skipped.insert(user);
        }
    }
    events
}

/// Whose directories a walk makes, and their owner.
struct Target<'a> {
    /// The user they belong to (an FTP account's owner), for the message.
    user: &'a str,
    uid: u32,
    gid: u32,
}

/// The directories [`ensure`] would create, in order, for `--dry-run`:
/// looked up without following links (a link is left to the real run to
/// report).
pub fn missing(root: &Path, accounts: &[Account]) -> Vec<PathBuf> {
    let base = root.join("home");
    let mut out: Vec<PathBuf> = Vec::new();
    for account in accounts {
        let mut path = base.clone();
        for part in dirs(account) {
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => break,
                Err(_) => {
                    if !out.contains(&path) {
                        out.push(path.clone());
                    }
                }
            }
        }
    }
    out
}

/// The directories below `/home` an account needs, from the top: its home
/// (every component from `/home/<user>` down) and, for a user, `www/` in
/// it.
fn dirs(account: &Account) -> Vec<&str> {
    let Ok(parts) = normalise(&account.home) else {
        return Vec::new();
    };
    let mut parts: Vec<&str> = parts.into_iter().skip(1).collect();
    if account.owner.is_none() {
        parts.push("www");
    }
    parts
}

/// Opens `/home` of the root, creating it (root's, 0755) when missing.
fn open_home(base: &Path) -> io::Result<File> {
    match fs::create_dir(base) {
        Ok(()) => fs::set_permissions(base, fs::Permissions::from_mode(MODE))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    File::open(base)
}

/// Creates and corrects each of `parts` in turn below `dir`; false, the
/// problem recorded naming the user, when one could not be made right.
fn walk(dir: &File, base: &Path, parts: &[&str], target: &Target, events: &mut Vec<Event>) -> bool {
    let mut path = base.to_owned();
    // The directory last opened; `dir` itself until the first step.
    let mut opened: Option<OwnedFd> = None;
    for part in parts {
        path.push(part);
        let parent = opened.as_ref().map_or(dir.as_fd(), AsFd::as_fd);
        match step(parent, part, &path, target.uid, target.gid, events) {
            Ok(fd) => opened = Some(fd),
            Err(why) => {
                let why = format!("{why}; the directories of user {} skipped", target.user);
                events.push(Event::Problem(path, why));
                return false;
            }
        }
    }
    true
}

/// One directory: made if missing, opened without following a link, its
/// owner and mode set through the descriptor.
fn step(
    parent: BorrowedFd<'_>,
    name: &str,
    path: &Path,
    uid: u32,
    gid: u32,
    events: &mut Vec<Event>,
) -> Result<OwnedFd, String> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let open = || openat(parent, name, flags, Mode::empty());
    let refused = |e: Errno| match e {
        Errno::ELOOP | Errno::ENOTDIR => {
            "is a symbolic link or not a directory; left alone".to_owned()
        }
        e => format!("cannot open: {}", errno(e)),
    };
    // Opened first: on a resync every directory exists, and a failed
    // mkdir costs as much as the open. A new directory is root's until
    // the fchown below, which gives it to its user.
    let mut created = false;
    let fd = match open() {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            match mkdirat(parent, name, Mode::from_bits_truncate(MODE)) {
                Ok(()) => {
                    created = true;
                    events.push(Event::Created(path.to_owned()));
                }
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(format!("cannot create: {}", errno(e))),
            }
            open().map_err(refused)?
        }
        Err(e) => return Err(refused(e)),
    };
    let dir = File::from(fd);
    let meta = dir
        .metadata()
        .map_err(|e| format!("cannot stat: {}", cause(&e)))?;
    if (meta.uid(), meta.gid()) != (uid, gid) {
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot change owner: {}", cause(&e)))?;
        if !created {
            events.push(Event::Owner(path.to_owned(), meta.uid(), meta.gid()));
        }
    }
    if meta.mode() & 0o7777 != MODE {
        dir.set_permissions(fs::Permissions::from_mode(MODE))
            .map_err(|e| format!("cannot change mode: {}", cause(&e)))?;
        if !created {
            events.push(Event::Mode(path.to_owned(), meta.mode() & 0o7777));
        }
    }
    Ok(dir.into())
}

/// A system call's error as a person reads it (`Permission denied`, not
/// `EACCES: Permission denied (os error 13)`).
fn errno(e: Errno) -> String {
    cause(&io::Error::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn account(name: &str, home: &str, owner: Option<&str>) -> Account {
        Account {
            name: name.to_owned(),
            uid: 10001,
            gid: 10001,
            gecos: String::new(),
            home: home.to_owned(),
            shell: "/bin/sh".to_owned(),
            hash: "!".to_owned(),
            owner: owner.map(str::to_owned),
        }
    }

    #[test]
    fn creates_corrects_and_never_follows_a_link() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        let r = root.path();
        let accounts = [
            account("alice", "/home/alice", None),
            account("alice-up", "/home/alice/www/up", Some("alice")),
        ];
        let wanted = ["home/alice", "home/alice/www", "home/alice/www/up"].map(|d| r.join(d));
        assert_eq!(missing(r, &accounts), wanted);
        let events = ensure(r, &accounts, 100);
        assert!(missing(r, &accounts).is_empty());
        let created: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Created(p) => Some(p.strip_prefix(r).expect("in root").to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(
            created,
            ["home/alice", "home/alice/www", "home/alice/www/up"].map(PathBuf::from)
        );
        for dir in ["home/alice", "home/alice/www", "home/alice/www/up"] {
            let meta = fs::metadata(r.join(dir)).expect("made");
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (10001, 100, 0o755)
            );
        }
        // Drift is corrected and said.
        fs::set_permissions(r.join("home/alice"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let events = ensure(r, &[account("alice", "/home/alice", None)], 100);
        assert_eq!(events, [Event::Mode(r.join("home/alice"), 0o700)]);
        // www replaced by a link to a directory outside: left alone.
        fs::remove_dir_all(r.join("home/alice/www")).expect("rm");
        symlink(outside.path(), r.join("home/alice/www")).expect("symlink");
        let events = ensure(r, &accounts, 100);
        assert!(
            matches!(&events[..], [Event::Problem(p, why)]
                if *p == r.join("home/alice/www") && why.ends_with("user alice skipped")),
            "{events:?}"
        );
        let meta = fs::metadata(outside.path()).expect("outside");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o700));
    }
}
