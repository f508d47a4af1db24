//! Every program the tool runs — the dumpers, the engines, gpgconf, the
//! notify command — starts here, from a cleared environment: only `PATH`
//! and `LANG=C.UTF-8` ([`command`]), and for a [`Child`] a `HOME`, what
//! its caller adds (the engine's passphrase reaches that child alone),
//! killed with us (so a killed run leaves no dumper or engine behind),
//! its stderr gathered on a thread, and for duplicity a pipe its
//! `--log-fd` writes to. Engines run in a session of their own (no
//! controlling terminal, a process group to kill whole), and one that
//! logs an error but does not end is killed with its children.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::Signal;
use nix::unistd::User;

use pysk_common::error::cause;

use crate::error::BackupError;

/// The `PATH` children get when ours is unset.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The lines of a failed dumper's stderr quoted in an error.
const STDERR_LINES: usize = 5;
/// How long a child may go on after logging an error before it and its
/// process group are killed: duplicity, after a GnuPG failure, can wait
/// for ever for a `gpg` that waits for it to read.
const ERROR_GRACE: Duration = Duration::from_secs(10);

/// `program` with an environment of `PATH` and `LANG=C.UTF-8` only, and
/// no input.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    cmd.env_clear()
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    cmd
}

/// A program to run, with its arguments and environment.
#[derive(Debug)]
pub struct Child {
    program: String,
    cmd: Command,
}

/// What a finished child left.
#[derive(Debug)]
pub struct Finished {
    program: String,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Its standard output (empty when its caller read it).
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
        let lines = lines(&self.stderr);
        let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
        match (tail.is_empty(), self.code) {
            (false, _) => tail,
            (true, Some(code)) => format!("exit status {code}"),
            (true, None) => "killed by a signal".to_owned(),
        }
    }

    /// A dumper's verdict: `Err` with the reason when it exited other than
    /// 0 or wrote anything on stderr (its first lines quoted).
    pub fn verdict(&self) -> Result<(), String> {
        let said = quote(&self.stderr);
        let how = match (self.code, self.signal) {
            (Some(0), _) if said.is_empty() => return Ok(()),
            (Some(0), _) => "exited with 0 but wrote on stderr".to_owned(),
            (Some(code), _) => format!("exited with {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended without an exit status".to_owned(),
        };
        Err(match said.is_empty() {
            true => format!("{} {how}", self.program),
            false => format!("{} {how}: {said}", self.program),
        })
    }
}

/// The first lines of a child's stderr that are not blank, joined with
/// ` / ` (empty when there are none).
pub fn quote(stderr: &str) -> String {
    let lines = lines(stderr);
    let mut said = lines[..lines.len().min(STDERR_LINES)].join(" / ");
    if lines.len() > STDERR_LINES {
        said.push_str(" / …");
    }
    said
}

/// The lines of `text` that are not blank, trimmed.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

impl Child {
    /// `program` as [`command`] makes it, `HOME=home`, stdout and stderr
    /// piped, killed when this process dies.
    pub fn new(program: &str, home: &Path) -> Child {
        let mut cmd = command(program);
        cmd.env("HOME", home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let parent = nix::unistd::getpid();
        // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid() are
        // async-signal-safe and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
                // A parent killed before the line above: no signal comes.
                match nix::unistd::getppid() == parent {
                    true => Ok(()),
                    false => Err(io::Error::other("the tool ended before its child started")),
                }
            });
        }
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

    /// Runs as `user`, its home as `HOME`.
    pub fn account(mut self, user: &User) -> Child {
        self.cmd
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env("HOME", &user.dir);
        self
    }

    /// Runs in a new session (`setsid`): no controlling terminal, so
    /// nothing it starts can wait for a passphrase typed there, and a
    /// process group of its own, which [`Child::run_logged`] kills whole.
    pub fn own_session(mut self) -> Child {
        // SAFETY: setsid() is async-signal-safe and touches no memory of
        // the parent.
        unsafe {
            self.cmd
                .pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
        }
        self
    }

    /// Its standard input a pipe to write to ([`Running::child`]).
    pub fn piped_input(mut self) -> Child {
        self.cmd.stdin(Stdio::piped());
        self
    }

    /// Its standard output thrown away.
    pub fn no_output(mut self) -> Child {
        self.cmd.stdout(Stdio::null());
        self
    }

    /// The command as built, for a caller that manages the process
    /// itself (a drill's servers and clients).
    pub fn into_command(self) -> Command {
        self.cmd
    }

    /// Starts the program, its stderr read on a thread; one that cannot
    /// be started is `Unavailable` (69).
    pub fn spawn(mut self) -> Result<Running, BackupError> {
        let child = self
            .cmd
            .spawn()
            .map_err(|e| spawn_error(&self.program, &e))?;
        Ok(Running::new(self.program, child, None))
    }

    /// Runs the program to its end.
    pub fn run(self) -> Result<Finished, BackupError> {
        self.spawn()?.wait()
    }

    /// Runs the program with `option N` added last, N being the write
    /// end of a pipe (inherited by this child alone) whose text is
    /// returned in [`Finished::log`]. A child that logs an `ERROR` record
    /// and has not ended [`ERROR_GRACE`] later is killed, with its
    /// process group when it has its own ([`Child::own_session`]).
    pub fn run_logged(mut self, option: &str) -> Result<Finished, BackupError> {
        let io_fault = |e: io::Error| internal(&self.program, &e);
        let (reader, writer) = io::pipe().map_err(io_fault)?;
        fcntl(&writer, FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(|e| internal(&self.program, &e.into()))?;
        self.cmd.arg(option).arg(writer.as_raw_fd().to_string());
        let spawned = self.cmd.spawn();
        drop(writer);
        let child = spawned.map_err(|e| spawn_error(&self.program, &e))?;
        let erred = Arc::new(Mutex::new(None));
        let log = watched_log(reader, Arc::clone(&erred));
        let ended = Arc::new(AtomicBool::new(false));
        let pid = nix::unistd::Pid::from_raw(child.id().cast_signed());
        let watchdog = watchdog(pid, erred, Arc::clone(&ended));
        let mut running = Running::new(self.program, child, None);
        running.log = log;
        let done = running.wait();
        ended.store(true, Ordering::SeqCst);
        let _ = watchdog.join();
        done
    }
}

/// Reads a `--log-fd` pipe to its end, noting when the first record of
/// level `ERROR` came.
fn watched_log(
    reader: io::PipeReader,
    erred: Arc<Mutex<Option<Instant>>>,
) -> JoinHandle<io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut lines = io::BufReader::new(reader);
        loop {
            let start = bytes.len();
            if io::BufRead::read_until(&mut lines, b'\n', &mut bytes)? == 0 {
                return Ok(bytes);
            }
            if bytes[start..].starts_with(b"ERROR ")
                && let Ok(mut at) = erred.lock()
            {
                at.get_or_insert_with(Instant::now);
            }
        }
    })
}

/// Kills `pid`'s process group (or `pid` when it leads none) once an
/// error was logged [`ERROR_GRACE`] ago and it has not ended.
fn watchdog(
    pid: nix::unistd::Pid,
    erred: Arc<Mutex<Option<Instant>>>,
    ended: Arc<AtomicBool>,
) -> JoinHandle<()> {
    use nix::sys::signal::{kill, killpg};
    thread::spawn(move || {
        while !ended.load(Ordering::SeqCst) {
            let since = erred.lock().ok().and_then(|at| *at);
            if since.is_some_and(|at| at.elapsed() >= ERROR_GRACE) {
                let own_group = nix::unistd::getpgid(Some(pid)) == Ok(pid);
                let _ = match own_group {
                    true => killpg(pid, Signal::SIGKILL),
                    false => kill(pid, Signal::SIGKILL),
                };
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    })
}

/// A child running, its stderr (and log pipe) read on threads.
#[derive(Debug)]
pub struct Running {
    /// The child.
    pub child: std::process::Child,
    program: String,
    stderr: JoinHandle<io::Result<Vec<u8>>>,
    log: JoinHandle<io::Result<Vec<u8>>>,
}

impl Running {
    fn new(
        program: String,
        mut child: std::process::Child,
        log: Option<io::PipeReader>,
    ) -> Running {
        let mut stderr = child.stderr.take();
        let mut log = log;
        Running {
            child,
            program,
            stderr: thread::spawn(move || read_all(stderr.as_mut())),
            log: thread::spawn(move || read_all(log.as_mut())),
        }
    }

    /// Reads what is left of its stdout and waits for it.
    pub fn wait(mut self) -> Result<Finished, BackupError> {
        let fault = |e: io::Error| internal(&self.program, &e);
        let stdout = read_all(self.child.stdout.as_mut()).map_err(fault)?;
        let status = self.child.wait().map_err(fault)?;
        let join = |h: JoinHandle<io::Result<Vec<u8>>>| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")))
        };
        let stderr = join(self.stderr).map_err(fault)?;
        let log = join(self.log).map_err(fault)?;
        Ok(Finished {
            program: self.program,
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            log: String::from_utf8_lossy(&log).into_owned(),
        })
    }

    /// Waits for a dumper: [`Finished::verdict`].
    pub fn finish(self) -> Result<(), String> {
        self.wait().map_err(|e| e.to_string())?.verdict()
    }

    /// Copies the child's stdout to `out` (and to `feed`, as long as its
    /// reader takes it) until its end, the tail noted. A failed write of
    /// `out` is the error, as [`CopyError::Write`]; a feed that stops
    /// taking is left to its reader's exit status.
    pub fn copy(
        &mut self,
        out: &mut impl Write,
        mut feed: Option<ChildStdin>,
        tail: &mut Tail,
    ) -> Result<(), CopyError> {
        let mut stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| CopyError::Read("no output pipe".into()))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(format!("reading the dump: {}", cause(&e)))),
            };
            out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            tail.push(&buf[..n]);
            if let Some(pipe) = feed.as_mut()
                && pipe.write_all(&buf[..n]).is_err()
            {
                feed = None;
            }
        }
    }
}

/// Why [`Running::copy`] stopped before the child's output ended.
#[derive(Debug)]
pub enum CopyError {
    /// Its output could not be read.
    Read(String),
    /// The file it goes to could not be written (a full disk): the
    /// child then dies of a closed pipe, which is not the cause.
    Write(io::Error),
}

/// The last bytes of a stream, to check how it ended.
#[derive(Debug, Default)]
pub struct Tail(Vec<u8>);

impl Tail {
    const KEPT: usize = 256;

    /// Notes `chunk` as the stream's latest bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.0.extend_from_slice(chunk);
        if self.0.len() > 2 * Self::KEPT {
            self.0.drain(..self.0.len() - Self::KEPT);
        }
    }

    /// Whether the stream ends with `end`, but for trailing white space.
    pub fn ends_with(&self, end: &str) -> bool {
        String::from_utf8_lossy(&self.0).trim_end().ends_with(end)
    }

    /// The stream's last line (without its newline).
    pub fn last_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.0);
        text.trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
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
        _ => cause(e),
    };
    BackupError::Unavailable {
        what: program.to_owned(),
        reason,
    }
}

/// A pipe or wait that failed: not a verdict on the backup.
fn internal(program: &str, e: &io::Error) -> BackupError {
    pysk_common::Error::Internal(format!("running {program}: {}", cause(e))).into()
}

/// `program` in `/`, as `account` when given (its home as `HOME`, else
/// root with `HOME=/root`), as [`Child::new`] builds it: a dumper, a
/// database client, a throw-away server.
pub fn program(program: &str, account: Option<&User>) -> Child {
    let child = Child::new(program, Path::new("/root")).current_dir(Path::new("/"));
    match account {
        Some(user) => child.account(user),
        None => child,
    }
}

/// [`program`] with `args`, for a caller that manages the process itself.
pub fn managed<I, S>(name: &str, args: I, account: Option<&User>) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    program(name, account).args(args).into_command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Child {
        Child::new("sh", Path::new("/")).args(["-c", script])
    }

    #[test]
    fn a_failed_child_is_quoted_a_few_lines_at_most() {
        let script = "for i in 1 2 3 4 5 6 7; do echo line $i >&2; done; exit 3";
        let why = sh(script)
            .spawn()
            .expect("spawn")
            .finish()
            .expect_err("fails");
        assert_eq!(
            why,
            "sh exited with 3: line 1 / line 2 / line 3 / line 4 / line 5 / …"
        );
        let done = sh(script).run().expect("runs");
        assert_eq!(done.stderr_tail(), "line 5 / line 6 / line 7");
        let run = sh("echo careful >&2").spawn().expect("spawn");
        assert_eq!(
            run.finish().expect_err("stderr"),
            "sh exited with 0 but wrote on stderr: careful"
        );
        let run = sh("kill -9 $$").spawn().expect("spawn");
        assert_eq!(
            run.finish().expect_err("killed"),
            "sh was killed by signal 9"
        );
        assert!(matches!(
            Child::new("pysk-no-such-program", Path::new("/")).spawn(),
            Err(BackupError::Unavailable { .. })
        ));
    }

    #[test]
    fn the_environment_is_cleared_and_the_log_pipe_read() {
        let done = sh("env | sort; echo logged > /dev/fd/$2")
            .arg("sh")
            .env("EXTRA", "1")
            .run_logged("--log-fd")
            .expect("runs");
        assert!(done.ok(), "{}", done.stderr);
        let env = String::from_utf8_lossy(&done.stdout);
        let names: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split('=').next())
            .filter(|n| !["PWD", "SHLVL", "_"].contains(n))
            .collect();
        assert_eq!(names, ["EXTRA", "HOME", "LANG", "PATH"], "{env}");
        assert_eq!(done.log, "logged\n");
    }

    #[test]
    fn the_tail_holds_the_last_line() {
        let mut tail = Tail::default();
        tail.push(b"first\n-- Dump com");
        tail.push(&[b'x'; 600]);
        tail.push(b"\n-- Dump completed on 2026-11-30 00:50:00\n");
        assert_eq!(tail.last_line(), "-- Dump completed on 2026-11-30 00:50:00");
    }
}
