//! The account files' locks, taken the way the system's own tools take
//! them, so that `useradd`, `passwd` and `vipw` cannot interleave with a
//! sync:
//!
//! - `etc/.pwd.lock` with an fcntl write lock, as `lckpwdf(3)` takes it.
//!   The open-file-description (OFD) kind is used; it conflicts with the
//!   classic POSIX lock glibc takes. `flock(2)` would not: it does not
//!   exclude fcntl locks.
//! - shadow-utils' per-file lock: `<file>.lock` made by `link(2)` from a
//!   file holding our pid, a lock left by a process that no longer runs
//!   being removed. `useradd --prefix` takes only these.
//!
//! Both are waited for up to a deadline, polling; then the run ends with
//! exit 75 having written nothing. Dropping [`AccountLock`] releases all.
//!
//! A dry run creates nothing ([`AccountLock::for_dry_run`]): it takes
//! `.pwd.lock` as a reader (a shared fcntl lock, so writers wait for it
//! and it for them) only when the file exists. Shadow-utils' lock files
//! cannot be taken without making one, since making it is the lock: a
//! dry run waits, as a sync would, while a running program holds one, and
//! then reads without holding it. A stale one (its process is gone) is
//! left in place: the sync that follows breaks it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use pysk_common::error::{read_err, write_err};

use crate::error::PasswdError;

/// How often a held lock is tried again.
const POLL: Duration = Duration::from_millis(50);

/// The files shadow-utils locks, in `useradd`'s order.
pub const FILES: [&str; 4] = ["passwd", "group", "gshadow", "shadow"];

/// Who holds a `<file>.lock` that holds no pid, for the message.
const NO_PID: &str = "an unknown program (the lock file holds no pid; remove it if no account \
                      tool runs)";

/// The held locks of one root's account files.
#[derive(Debug)]
pub struct AccountLock {
    /// Keeps the fcntl lock on `.pwd.lock` while open (a dry run's: none
    /// when there is no such file).
    _pwd: Option<File>,
    /// The `<file>.lock` files we made, removed on drop.
    held: Vec<PathBuf>,
}

impl AccountLock {
    /// Takes `.pwd.lock`, then each file's `.lock`, in `etc`, waiting
    /// `wait` at most for all of them.
    pub fn acquire(etc: &Path, wait: Duration) -> Result<AccountLock, PasswdError> {
        let deadline = Deadline::after(wait);
        let pwd = lock_pwd(&etc.join(".pwd.lock"), Kind::Write, &deadline)?;
        let mut lock = AccountLock {
            _pwd: pwd,
            held: Vec::new(),
        };
        for name in FILES {
            let path = etc.join(format!("{name}.lock"));
            lock_file(&etc.join(name), &path, &deadline)?;
            lock.held.push(path);
        }
        Ok(lock)
    }

    /// What a dry run takes in `etc`, creating no file: `.pwd.lock` as a
    /// reader when it exists; then it waits until no running program holds
    /// a `<file>.lock`, taking none. Waits `wait` at most for all of them.
    pub fn for_dry_run(etc: &Path, wait: Duration) -> Result<AccountLock, PasswdError> {
        let deadline = Deadline::after(wait);
        let pwd = lock_pwd(&etc.join(".pwd.lock"), Kind::Read, &deadline)?;
        for name in FILES {
            wait_until_free(&etc.join(format!("{name}.lock")), &deadline)?;
        }
        Ok(AccountLock {
            _pwd: pwd,
            held: Vec::new(),
        })
    }
}

impl Drop for AccountLock {
    fn drop(&mut self) {
        for path in self.held.iter().rev() {
            let _ = fs::remove_file(path);
        }
    }
}

/// How long a run may wait for the locks, all of them together.
struct Deadline {
    /// The time given (for the message).
    wait: Duration,
    /// When it runs out.
    at: Instant,
}

impl Deadline {
    fn after(wait: Duration) -> Deadline {
        Deadline {
            wait,
            at: Instant::now() + wait,
        }
    }

    /// Sleeps a poll interval, or, when the time is up, the error that
    /// `path` is held by `holder`.
    fn wait_or_give_up(&self, path: &Path, holder: Option<String>) -> Result<(), PasswdError> {
        if Instant::now() < self.at {
            sleep(POLL);
            return Ok(());
        }
        Err(pysk_common::Error::Locked {
            path: path.to_owned(),
            waited: self.wait,
            holder,
        }
        .into())
    }
}

/// The fcntl lock a run takes on `.pwd.lock`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A sync's: excludes every other.
    Write,
    /// A dry run's: excludes writers only, and needs the file to exist.
    Read,
}

/// An fcntl lock of `kind` on the whole of `path`, as `lckpwdf` takes it
/// (a sync makes the file when missing; a dry run then takes none).
fn lock_pwd(path: &Path, kind: Kind, deadline: &Deadline) -> Result<Option<File>, PasswdError> {
    let opened = match kind {
        Kind::Write => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path),
        Kind::Read => File::open(path),
    };
    let failed = |e: io::Error| -> PasswdError {
        match kind {
            Kind::Write => write_err(path)(e).into(),
            Kind::Read => read_err(path)(e).into(),
        }
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if kind == Kind::Read && e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let request = flock(kind);
    loop {
        match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&request)) {
            Ok(_) => return Ok(Some(file)),
            Err(Errno::EAGAIN | Errno::EACCES) => {
                deadline.wait_or_give_up(path, holder_of_fcntl_lock(&file, kind))?
            }
            Err(e) => return Err(failed(io::Error::from(e))),
        }
    }
}

/// A request for an fcntl lock of `kind` on the whole file.
fn flock(kind: Kind) -> libc::flock {
    // SAFETY: flock is a plain C struct; all-zero is a valid value.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = match kind {
        Kind::Write => libc::F_WRLCK,
        Kind::Read => libc::F_RDLCK,
    } as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request
}

/// Who holds the fcntl lock that keeps us from one of `kind`, for the
/// message: a classic POSIX lock (`lckpwdf`) names its process, an OFD
/// lock (another sync) does not.
fn holder_of_fcntl_lock(file: &File, kind: Kind) -> Option<String> {
    let mut probe = flock(kind);
    match fcntl(file.as_fd(), FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) if probe.l_pid > 0 => Some(format!("process {}", probe.l_pid)),
        _ => None,
    }
}

/// shadow-utils' `<file>.lock`: our pid in `<file>.<pid>`, linked to the
/// lock name; the link succeeding (and the count being 2) is the lock.
fn lock_file(file: &Path, lock: &Path, deadline: &Deadline) -> Result<(), PasswdError> {
    let mut staging = file.as_os_str().to_owned();
    staging.push(format!(".{}", std::process::id()));
    let staging = PathBuf::from(staging);
    let result = write_pid(&staging).and_then(|()| link_lock(&staging, lock, deadline));
    let _ = fs::remove_file(&staging);
    result
}

/// Writes our pid into the new file `staging`.
fn write_pid(staging: &Path) -> Result<(), PasswdError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(staging)
        .map_err(write_err(staging))?;
    // No fsync: a lock needs no durability, a crash ends its holder.
    f.write_all(std::process::id().to_string().as_bytes())
        .map_err(write_err(staging))?;
    Ok(())
}

/// Links `staging` to `lock` until that is ours, breaking a stale lock
/// and waiting for a held one until the deadline.
fn link_lock(staging: &Path, lock: &Path, deadline: &Deadline) -> Result<(), PasswdError> {
    loop {
        match fs::hard_link(staging, lock) {
            Ok(()) => {
                let links = fs::metadata(staging).map_err(read_err(staging))?.nlink();
                if links == 2 {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(write_err(lock)(e).into()),
        }
        match lock_holder(lock) {
            Holder::Gone => {
                // Left by a process that died: shadow-utils removes it too.
                let _ = fs::remove_file(lock);
            }
            Holder::Absent => {}
            held => deadline.wait_or_give_up(lock, held.name())?,
        }
    }
}

/// A dry run's look at a `<file>.lock`: waits while a running program (or
/// one we cannot tell) holds it; a missing or stale one is no obstacle.
fn wait_until_free(lock: &Path, deadline: &Deadline) -> Result<(), PasswdError> {
    loop {
        match lock_holder(lock) {
            Holder::Absent | Holder::Gone => return Ok(()),
            held => deadline.wait_or_give_up(lock, held.name())?,
        }
    }
}

/// Who holds a `<file>.lock`.
enum Holder {
    /// A running process.
    Alive(i32),
    /// A process that no longer runs.
    Gone,
    /// There is no lock file (or it went away while we looked).
    Absent,
    /// The file holds no pid.
    Unknown,
}

impl Holder {
    /// The holder as the message names it.
    fn name(&self) -> Option<String> {
        match self {
            Holder::Alive(pid) => Some(format!("process {pid}")),
            Holder::Unknown => Some(NO_PID.to_owned()),
            Holder::Gone | Holder::Absent => None,
        }
    }
}

fn lock_holder(lock: &Path) -> Holder {
    let text = match fs::read_to_string(lock) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Holder::Absent,
        Err(_) => return Holder::Unknown,
    };
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => match kill(Pid::from_raw(pid), None) {
            Err(Errno::ESRCH) => Holder::Gone,
            _ => Holder::Alive(pid),
        },
        _ => Holder::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`.
    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    }

    fn is_locked(result: &Result<AccountLock, PasswdError>) -> bool {
        matches!(
            result,
            Err(PasswdError::Common(pysk_common::Error::Locked { .. }))
        )
    }

    #[test]
    fn file_locks_are_made_removed_and_stale_ones_broken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = dir.path();
        // A lock left behind by a process that is gone.
        fs::write(etc.join("passwd.lock"), "999999999").expect("write");
        {
            let _lock = AccountLock::acquire(etc, Duration::ZERO).expect("lock");
            for name in FILES {
                let held = fs::read_to_string(etc.join(format!("{name}.lock"))).expect("held");
                assert_eq!(held, std::process::id().to_string());
            }
            // A second taker (the same process, another description) waits
            // and gives up, and so does a dry run.
            let second = AccountLock::acquire(etc, Duration::from_millis(120));
            assert!(is_locked(&second), "{second:?}");
            let dry = AccountLock::for_dry_run(etc, Duration::from_millis(120));
            assert!(is_locked(&dry), "{dry:?}");
        }
        for name in FILES {
            assert!(!etc.join(format!("{name}.lock")).exists());
        }
        assert_eq!(names(etc), [".pwd.lock"]);
    }

    #[test]
    fn a_dry_run_creates_no_lock_file_and_leaves_a_stale_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = dir.path();
        drop(AccountLock::for_dry_run(etc, Duration::ZERO).expect("nothing held"));
        assert!(names(etc).is_empty());
        // A stale lock holds no dry run off, and stays for the sync to break.
        fs::write(etc.join("shadow.lock"), "999999999").expect("write");
        fs::write(etc.join(".pwd.lock"), "").expect("write");
        let dry = AccountLock::for_dry_run(etc, Duration::ZERO).expect("lock");
        // Two dry runs read side by side.
        drop(AccountLock::for_dry_run(etc, Duration::ZERO).expect("shared"));
        drop(dry);
        assert_eq!(names(etc), [".pwd.lock", "shadow.lock"]);
        // A lock file that holds no pid is waited for, then named.
        fs::write(etc.join("group.lock"), "").expect("write");
        let held = AccountLock::for_dry_run(etc, Duration::ZERO).expect_err("held");
        assert_eq!(
            held.to_string(),
            format!(
                "{}: held by {NO_PID}; nothing written, try again later or use --wait",
                etc.join("group.lock").display()
            )
        );
    }
}
