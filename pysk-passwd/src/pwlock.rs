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

/// The held locks of one root's account files.
#[derive(Debug)]
pub struct AccountLock {
    /// Keeps the fcntl lock on `.pwd.lock` while open.
    _pwd: File,
    /// The `<file>.lock` files we made, removed on drop.
    held: Vec<PathBuf>,
}

impl AccountLock {
    /// Takes `.pwd.lock`, then each file's `.lock`, in `etc`, waiting
    /// until `deadline` at most.
    pub fn acquire(etc: &Path, timeout: Duration) -> Result<AccountLock, PasswdError> {
        let deadline = Instant::now() + timeout;
        let pwd = lock_pwd(&etc.join(".pwd.lock"), deadline)?;
        let mut lock = AccountLock {
            _pwd: pwd,
            held: Vec::new(),
        };
        for name in FILES {
            let path = etc.join(format!("{name}.lock"));
            lock_file(&etc.join(name), &path, deadline)?;
            lock.held.push(path);
        }
        Ok(lock)
    }
}

impl Drop for AccountLock {
    fn drop(&mut self) {
        for path in self.held.iter().rev() {
            let _ = fs::remove_file(path);
        }
    }
}

/// An fcntl write lock on the whole of `path`, as `lckpwdf` takes it.
fn lock_pwd(path: &Path, deadline: Instant) -> Result<File, PasswdError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(write_err(path))?;
    // SAFETY: flock is a plain C struct; all-zero is a valid value.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = libc::F_WRLCK as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&request)) {
            Ok(_) => return Ok(file),
            Err(Errno::EAGAIN | Errno::EACCES) if Instant::now() < deadline => sleep(POLL),
            Err(Errno::EAGAIN | Errno::EACCES) => {
                return Err(PasswdError::Locked {
                    path: path.to_owned(),
                    holder: holder_of_fcntl_lock(&file),
                });
            }
            Err(e) => return Err(write_err(path)(io::Error::from(e)).into()),
        }
    }
}

/// Who holds the fcntl lock, for the message: a classic POSIX lock names
/// its process, an OFD lock does not.
fn holder_of_fcntl_lock(file: &File) -> String {
    // SAFETY: as above.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    match fcntl(file.as_fd(), FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) if probe.l_pid > 0 => format!("process {}", probe.l_pid),
        _ => "another program (lckpwdf)".to_owned(),
    }
}

/// shadow-utils' `<file>.lock`: our pid in `<file>.<pid>`, linked to the
/// lock name; the link succeeding (and the count being 2) is the lock.
fn lock_file(file: &Path, lock: &Path, deadline: Instant) -> Result<(), PasswdError> {
    let pid = std::process::id();
    let mut staging = file.as_os_str().to_owned();
    staging.push(format!(".{pid}"));
    let staging = PathBuf::from(staging);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staging)
            .map_err(write_err(&staging))?;
        // No fsync: a lock needs no durability, a crash ends its holder.
        f.write_all(pid.to_string().as_bytes())
            .map_err(write_err(&staging))?;
        loop {
            match fs::hard_link(&staging, lock) {
                Ok(()) => {
                    let links = fs::metadata(&staging).map_err(read_err(&staging))?.nlink();
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
                    continue;
                }
                Holder::Vanished => continue,
                Holder::Alive(_) | Holder::Unknown if Instant::now() < deadline => sleep(POLL),
                Holder::Alive(pid) => {
                    return Err(PasswdError::Locked {
                        path: lock.to_owned(),
                        holder: format!("process {pid}"),
                    });
                }
                Holder::Unknown => {
                    return Err(PasswdError::Locked {
                        path: lock.to_owned(),
                        holder: "a lock file without a valid pid (remove it if no \
                                 account tool runs)"
                            .to_owned(),
                    });
                }
            }
        }
    })();
    let _ = fs::remove_file(&staging);
    result
}

/// Who holds a `<file>.lock`.
enum Holder {
    /// A running process.
    Alive(i32),
    /// A process that no longer runs.
    Gone,
    /// The lock went away while we looked.
    Vanished,
    /// The file holds no pid.
    Unknown,
}

fn lock_holder(lock: &Path) -> Holder {
    let text = match fs::read_to_string(lock) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Holder::Vanished,
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
            // and gives up.
            let second = AccountLock::acquire(etc, Duration::from_millis(120));
            assert!(matches!(second, Err(PasswdError::Locked { .. })));
        }
        for name in FILES {
            assert!(!etc.join(format!("{name}.lock")).exists());
        }
        let names: Vec<_> = fs::read_dir(etc)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [".pwd.lock"]);
    }
}
