//! Running the engines' programs: a clean environment (only `PATH`,
//! `LANG=C.UTF-8`, `HOME` under the state directory, and what the caller
//! adds), output captured, and for duplicity a pipe its `--log-fd` writes
//! to, so that what we read is its machine-readable log, never the text
//! meant for people.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::error::BackupError;

/// The `PATH` children get when ours is unset.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A program to run, with its arguments and environment.
#[derive(Debug)]
pub struct Child {
    program: String,
    cmd: Command,
}

/// What a finished child left.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error, as text.
    pub stderr: String,
    /// What it wrote to the `--log-fd` pipe (empty without one).
    pub log: String,
}

impl Finished {
    /// Whether it exited with 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of its standard error, for an error message.
    pub fn stderr_tail(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
        match (tail.is_empty(), self.code) {
            (false, _) => tail,
            (true, Some(code)) => format!("exit status {code}"),
            (true, None) => "killed by a signal".to_owned(),
        }
    }
}

impl Child {
    /// `program` with an environment of `PATH`, `LANG=C.UTF-8` and
    /// `HOME=home` only.
    pub fn new(program: &str, home: &Path) -> Child {
        let mut cmd = Command::new(program);
        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        cmd.env_clear()
            .env("PATH", path)
            .env("LANG", "C.UTF-8")
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Child {
            program: program.to_owned(),
            cmd,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Child {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Child {
        self.cmd.args(args);
        self
    }

    /// Sets a variable of the child's environment (and no one else's).
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Child {
        self.cmd.env(key, value);
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Child {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs the program to its end.
    pub fn run(mut self) -> Result<Finished, BackupError> {
        let child = self
            .cmd
            .spawn()
            .map_err(|e| spawn_error(&self.program, &e))?;
        collect(&self.program, child, None)
    }

    /// Runs the program with `option N` added last, N being the write
    /// end of a pipe (inherited by this child alone) whose text is
    /// returned in [`Finished::log`].
    pub fn run_logged(mut self, option: &str) -> Result<Finished, BackupError> {
        let io_fault = |e: io::Error| internal(&self.program, &e);
        let (reader, writer) = io::pipe().map_err(io_fault)?;
        fcntl(&writer, FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(|e| internal(&self.program, &e.into()))?;
        self.cmd.arg(option).arg(writer.as_raw_fd().to_string());
        let spawned = self.cmd.spawn();
        drop(writer);
        let child = spawned.map_err(|e| spawn_error(&self.program, &e))?;
        collect(&self.program, child, Some(reader))
    }
}

/// Reads the child's stdout, stderr and log pipe at once (one thread
/// each, so no pipe fills up while another is read) and waits for it.
fn collect(
    program: &str,
    mut child: std::process::Child,
    mut log: Option<io::PipeReader>,
) -> Result<Finished, BackupError> {
    let fault = |e: io::Error| internal(program, &e);
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (stdout, stderr, log) = thread::scope(|s| {
        let err = s.spawn(move || read_all(err.as_mut()));
        let log = s.spawn(move || read_all(log.as_mut()));
        let out = read_all(out.as_mut());
        let join = |h: thread::ScopedJoinHandle<'_, io::Result<Vec<u8>>>| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")))
        };
        (out, join(err), join(log))
    });
    let status = child.wait().map_err(fault)?;
    Ok(Finished {
        code: status.code(),
        stdout: stdout.map_err(fault)?,
        stderr: String::from_utf8_lossy(&stderr.map_err(fault)?).into_owned(),
        log: String::from_utf8_lossy(&log.map_err(fault)?).into_owned(),
    })
}

/// Everything `source` gives until its end (nothing when there is none).
fn read_all(source: Option<&mut impl Read>) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(source) = source {
        source.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// A program that cannot be started: missing (69) or refused.
fn spawn_error(program: &str, e: &io::Error) -> BackupError {
    let reason = match e.kind() {
        io::ErrorKind::NotFound => "not found in PATH (is it installed?)".to_owned(),
        _ => pysk_common::error::cause(e),
    };
    BackupError::Unavailable {
        what: program.to_owned(),
        reason,
    }
}

/// A pipe or wait that failed: not a verdict on the backup.
fn internal(program: &str, e: &io::Error) -> BackupError {
    pysk_common::Error::Internal(format!(
        "running {program}: {}",
        pysk_common::error::cause(e)
    ))
    .into()
}
