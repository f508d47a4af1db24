//! One run at a time: an exclusive `flock(2)` on a lock file in the tool's
//! runtime directory.
//!
//! A second run fails at once with [`Error::Locked`] (exit 75, "try again
//! later"), or, given `--wait SECONDS`, queues for at most that long. The
//! lock is released when the [`Lock`] is dropped or the process dies, so a
//! killed run never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    _file: File,
}

impl Lock {
    /// Takes the lock on `path` (created, with its directory, if missing).
    /// With `wait` of zero a lock held elsewhere fails at once; otherwise
    /// the call retries until `wait` has passed.
    pub fn acquire(path: &Path, wait: Duration) -> Result<Lock, Error> {
        let io_err = |source| Error::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        Lock::hold(path, file, wait)
    }

    /// Takes the lock on `path` only if the lock file exists, creating
    /// nothing (what a dry run does): `None` when there is no lock file, so
    /// no run can hold it. Otherwise as [`Lock::acquire`].
    pub fn existing(path: &Path, wait: Duration) -> Result<Option<Lock>, Error> {
        match File::open(path) {
            Ok(file) => Lock::hold(path, file, wait).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Locks the open lock file `file`, retrying until `wait` has passed.
    fn hold(path: &Path, file: File, wait: Duration) -> Result<Lock, Error> {
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Lock {
                        path: path.to_owned(),
                        _file: file,
                    });
                }
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        path: path.to_owned(),
                        waited: wait,
                        holder: None,
                    });
                }
                Err(TryLockError::Error(source)) => {
                    return Err(Error::Write {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{self, ToolError};
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};

    /// Starts util-linux's `flock(1)` holding `path` for `secs` seconds in
    /// another process, and returns once it holds the lock.
    fn hold_elsewhere(path: &Path, secs: u32) -> Child {
        let ready = path.with_extension("ready");
        let child = Command::new("flock")
            .arg(path)
            .arg("sh")
            .arg("-c")
            .arg(format!("touch '{}'; sleep {secs}", ready.display()))
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("flock(1) from util-linux");
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "flock never held"
            );
            thread::sleep(Duration::from_millis(10));
        }
        child
    }

    #[test]
    fn second_process_gets_tempfail_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/pysk-test.lock");
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut holder = hold_elsewhere(&path, 30);
        let start = Instant::now();
        let err = Lock::acquire(&path, Duration::ZERO).expect_err("held elsewhere");
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(err.exit_code(), exit::TEMPFAIL);
        assert!(matches!(err, Error::Locked { waited, .. } if waited.is_zero()));
        // Kill the whole group: the shell's children inherit the locked fd.
        let pgid = i32::try_from(holder.id()).expect("pid fits");
        // SAFETY: kill(2) on the process group of our own child.
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
        holder.wait().expect("wait");
        // The holders died (the group's last member may take a moment to be
        // torn down): the lock is free again, nothing stale is left.
        Lock::acquire(&path, Duration::from_secs(10)).expect("free after the holder died");
    }

    #[test]
    fn an_existing_lock_is_taken_and_a_missing_one_is_not_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/pysk-test.lock");
        assert!(
            Lock::existing(&path, Duration::ZERO)
                .expect("none")
                .is_none()
        );
        assert!(!path.exists() && !dir.path().join("run").exists());
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut holder = hold_elsewhere(&path, 30);
        let err = Lock::existing(&path, Duration::ZERO).expect_err("held elsewhere");
        assert_eq!(err.exit_code(), exit::TEMPFAIL);
        let pgid = i32::try_from(holder.id()).expect("pid fits");
        // SAFETY: kill(2) on the process group of our own child.
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
        holder.wait().expect("wait");
        let lock = Lock::existing(&path, Duration::from_secs(10)).expect("free");
        assert!(lock.is_some());
    }

    #[test]
    fn wait_queues_until_the_other_process_is_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pysk-test.lock");
        let mut holder = hold_elsewhere(&path, 1);
        let start = Instant::now();
        let lock = Lock::acquire(&path, Duration::from_secs(20)).expect("acquired after waiting");
        assert!(start.elapsed() >= Duration::from_millis(500));
        assert_eq!(lock.path(), path);
        holder.wait().expect("wait");
        // And while we hold it, another process cannot take it.
        let status = Command::new("flock")
            .args(["-n"])
            .arg(&path)
            .arg("true")
            .status()
            .expect("flock -n");
        assert_eq!(status.code(), Some(1));
        drop(lock);
        let status = Command::new("flock")
            .args(["-n"])
            .arg(&path)
            .arg("true")
            .status()
            .expect("flock -n");
        assert!(status.success());
    }
}
