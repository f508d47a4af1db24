//! One ssh per host, at most `fanout` at once, and one writer.
//!
//! Workers take the next host, start its ssh in a session of its own
//! (`setsid`: no terminal, and on a busy machine each ssh gets its own
//! share of the CPU, as pdsh's do; killed with us through
//! `PR_SET_PDEATHSIG`), and wait for it (blocking, in `waitid`), while two
//! readers drain its stdout and stderr: line by line to the calling
//! thread, the only one that writes (`host: line` on stdout for the remote
//! stdout, on stderr for the remote stderr, so no line is ever cut into
//! by another), or kept (at most [`KEEP`] bytes a stream, the rest counted
//! and marked truncated), or straight into a file of the job's. One
//! watchdog thread kills a host's ssh session (its process group) when
//! its backstop has passed (with a timeout: the remote `timeout`
//! wrapper's own limit and its KILL, plus [`GRACE`]) or the run stops,
//! and only while that ssh is not yet reaped, so that a reused process id
//! is never hit. When the run fails (stdout closed, say), no further host
//! is started and the running ones' ssh are killed, so that a command
//! whose output never ends does not hold the run. A host whose ssh cannot
//! be started for want of a resource (descriptors, processes) is that
//! host's failure; only a missing or forbidden ssh program stops the run.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use pysk_common::report::Reporter;

use crate::classify::{self, Class};
use crate::error::HvError;

/// How long past the remote limit (timeout and its KILL) the local ssh
/// may still take to bring the result back before it is killed.
pub const GRACE: Duration = Duration::from_secs(5);

/// The most of one stream of one host that is kept in memory (for
/// `--gather`, `--json` and the subcommands that read it), unless
/// [`Limits::keep`] says otherwise; beyond it the stream is still read
/// to its end, but only counted.
pub const KEEP: usize = 1 << 20;

/// The longest live line: a longer one is written in pieces of this size,
/// so that output without newlines cannot fill the memory.
const LINE_MAX: usize = 64 * 1024;

/// Open files one running host may need at once: its two pipes and two
/// output files, and while its ssh starts the pipes' other ends, stdin,
/// the log and the start's own pipe.
const FILES_PER_HOST: u64 = 10;

/// Open files kept for everything else (the standard streams, the
/// inventory, the state, the reporter).
const FILES_RESERVED: u64 = 64;

/// Messages (lines, mostly) waiting for the writer: when it falls behind
/// (a slow reader of our stdout), the readers wait, and so do the ssh
/// writing to them, rather than the lines piling up in memory.
const QUEUE: usize = 256;

/// The stack of a thread that only moves bytes.
const SMALL_STACK: usize = 256 * 1024;

/// One host's ssh.
#[derive(Debug, Clone)]
pub struct Job {
    /// The host, as the inventory names it.
    pub host: String,
    /// The ssh command line.
    pub argv: Vec<OsString>,
    /// ssh's own log (`-E`), created (owner-only) or emptied first.
    pub log: PathBuf,
    /// A file this host's ssh reads as its stdin instead of
    /// [`Limits::stdin`] (each host its own input).
    pub stdin: Option<PathBuf>,
    /// A file (created owner-only, or emptied) that the remote stdout is
    /// written to as it comes, instead of being written live or kept.
    pub stdout_to: Option<PathBuf>,
    /// Likewise for the remote stderr.
    pub stderr_to: Option<PathBuf>,
}

/// How the jobs run.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    /// Hosts at once (lowered to what the open files limit allows).
    pub fanout: usize,
    /// Where `fanout` came from (`--fanout` or `hv_fanout`), for the
    /// warning that lowers it.
    pub fanout_from: &'static str,
    /// The remote command's time limit (for the class); `None`: none.
    pub timeout: Option<Duration>,
    /// When a host's ssh is killed here, from its start; `None`: never.
    pub backstop: Option<Duration>,
    /// The file each ssh reads as its stdin (its own open of it), or
    /// `None` for /dev/null.
    pub stdin: Option<&'a Path>,
    /// The most of each stream kept in memory per host ([`KEEP`], or
    /// more for a subcommand that must read all of a host's answer).
    pub keep: usize,
    /// Remote stdout lines written as they come (`host: line`), else kept
    /// (unless the job has a file for it).
    pub live_stdout: bool,
    /// Remote stderr lines written as they come, else kept.
    pub live_stderr: bool,
}

/// How one host's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The host.
    pub host: String,
    /// Its class.
    pub class: Class,
    /// From the start of its ssh to its end.
    pub duration: Duration,
    /// ssh's own message when the host was not reached (or lost).
    pub message: Option<String>,
    /// The remote stdout, when kept (its first [`KEEP`] bytes).
    pub stdout: Vec<u8>,
    /// The remote stderr, when kept (its first [`KEEP`] bytes).
    pub stderr: Vec<u8>,
    /// The remote stdout's size, however it went.
    pub stdout_bytes: u64,
    /// A kept stream was longer than [`KEEP`] and cut there.
    pub truncated: bool,
}

/// What workers tell the writer.
enum Message {
    /// A line of remote output (with its newline, one added when the
    /// output ended without).
    Line {
        host: usize,
        stderr: bool,
        text: Vec<u8>,
    },
    /// A host is done.
    Done(usize, Outcome),
    /// ssh cannot be started at all, or an output file not written: the
    /// run stops.
    Failed(HvError),
}

/// Runs every job, writing live output to `out` (remote stdout) and
/// stderr, a progress line on a terminal; the outcomes in job order.
pub fn run(
    jobs: &[Job],
    limits: Limits<'_>,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Vec<Outcome>, HvError> {
    let fanout = fanout_allowed(limits.fanout, limits.fanout_from, report).min(jobs.len());
    let watch = Watch::default();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let (outcomes, failure) = thread::scope(|scope| {
        let started = start_threads(scope, jobs, limits, fanout, (&watch, &next), &tx);
        drop(tx);
        let (outcomes, failure) = write_all(rx, jobs, report, out, &watch);
        watch.end();
        (outcomes, started.err().or(failure))
    });
    if let Some(err) = failure {
        return Err(err);
    }
    outcomes
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            pysk_common::Error::Internal("a host's worker ended without its outcome".into()).into()
        })
}

/// Starts the watchdog and `fanout` workers in `scope`; a thread that
/// cannot be started stops the run (the workers started so far end
/// their hosts).
fn start_threads<'scope, 'env: 'scope>(
    scope: &'scope thread::Scope<'scope, 'env>,
    jobs: &'env [Job],
    limits: Limits<'env>,
    fanout: usize,
    (watch, next): (&'env Watch, &'env AtomicUsize),
    tx: &SyncSender<Message>,
) -> Result<(), HvError> {
    let small = || thread::Builder::new().stack_size(SMALL_STACK);
    let failed = |e: io::Error| {
        watch.stop();
        cannot_start("a thread", &e)
    };
    small()
        .spawn_scoped(scope, || watch.guard())
        .map_err(failed)?;
    for _ in 0..fanout {
        let tx = tx.clone();
        small()
            .spawn_scoped(scope, move || worker(jobs, limits, next, watch, &tx))
            .map_err(failed)?;
    }
    Ok(())
}

/// The calling thread's part: every line written, the outcomes gathered,
/// the progress drawn; the first failure stops the run.
fn write_all(
    rx: Receiver<Message>,
    jobs: &[Job],
    report: &Reporter,
    out: &mut dyn Write,
    watch: &Watch,
) -> (Vec<Option<Outcome>>, Option<HvError>) {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
    let mut failure = None;
    let progress = |done: usize| format!("{done}/{} hosts", jobs.len());
    let mut done = 0;
    for message in rx {
        match message {
            Message::Line { host, stderr, text } => {
                // On a terminal the progress line is cleared for the
                // output line and drawn again below it.
                let redraw = done > 0 && report.progress_allowed();
                if redraw {
                    eprint!("\r\x1b[K");
                }
                write_line(&jobs[host].host, stderr, &text, out, &mut failure, watch);
                if redraw {
                    report.progress(progress(done));
                }
            }
            Message::Done(index, outcome) => {
                outcomes[index] = Some(outcome);
                done += 1;
                report.progress(progress(done));
            }
            Message::Failed(err) => {
                watch.stop();
                failure.get_or_insert(err);
            }
        }
    }
    // Cleared, not ended: what follows (the summary) takes its place.
    if done > 0 && report.progress_allowed() {
        eprint!("\r\x1b[K");
    }
    (outcomes, failure)
}

/// `requested` hosts at once (given by `from`), or fewer when the open files limit (raised
/// to its hard limit first) would not hold them, said in a warning.
fn fanout_allowed(requested: usize, from: &str, report: &Reporter) -> usize {
    let Some(limit) = raise_fd_limit() else {
        return requested;
    };
    let fits = fits(limit);
    if requested > fits {
        report.warn(format!(
            "{from} {requested} lowered to {fits}: the open files limit (ulimit -n) of {limit} \
             holds about {FILES_PER_HOST} a host"
        ));
        return fits;
    }
    requested
}

/// The hosts `limit` open files hold at once (at least one): what it
/// leaves past [`FILES_RESERVED`] (or a quarter of a small limit) by
/// [`FILES_PER_HOST`].
fn fits(limit: u64) -> usize {
    let reserved = FILES_RESERVED.min(limit / 4);
    usize::try_from(limit.saturating_sub(reserved) / FILES_PER_HOST)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Raises the soft limit of open files to the hard one; the limit now in
/// force, or `None` when it cannot be read.
fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// `host: text` on stdout or stderr; a failed write of stdout stops the
/// run (a closed pipe ends it quietly, see `common::exit::run`).
fn write_line(
    host: &str,
    stderr: bool,
    text: &[u8],
    out: &mut dyn Write,
    failure: &mut Option<HvError>,
    watch: &Watch,
) {
    let mut line = Vec::with_capacity(host.len() + 2 + text.len());
    line.extend_from_slice(host.as_bytes());
    line.extend_from_slice(b": ");
    line.extend_from_slice(text);
    if stderr {
        // Our own stderr: nothing better to do when it fails.
        let _ = io::stderr().lock().write_all(&line);
    } else if failure.is_none()
        && let Err(e) = out.write_all(&line).and_then(|()| out.flush())
    {
        watch.stop();
        *failure = Some(pysk_common::Error::Stdout(e).into());
    }
}

/// Takes jobs until none is left (or the run stops), sending each one's
/// lines and outcome.
fn worker(
    jobs: &[Job],
    limits: Limits<'_>,
    next: &AtomicUsize,
    watch: &Watch,
    tx: &SyncSender<Message>,
) {
    while !watch.stopped() {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(index) else {
            return;
        };
        let message = match one(index, job, limits, watch, tx) {
            Ok(outcome) => Message::Done(index, outcome),
            Err(err) => Message::Failed(err),
        };
        // The writer only goes away when every worker is done.
        let _ = tx.send(message);
    }
}

/// Runs one host's ssh to its end.
fn one(
    index: usize,
    job: &Job,
    limits: Limits<'_>,
    watch: &Watch,
    tx: &SyncSender<Message>,
) -> Result<Outcome, HvError> {
    let started = Instant::now();
    let (mut child, sinks) = match start(index, job, limits, tx) {
        Ok(started) => started,
        Err(Start::Run(err)) => return Err(err),
        Err(Start::Host(why)) => return Ok(not_started(job, started, why)),
    };
    watch.started(child.id(), limits.backstop.map(|b| started + b));
    let (status, [out, err]) = follow(&mut child, sinks, watch);
    let status =
        status.map_err(|e| pysk_common::Error::Internal(format!("waiting for ssh: {e}")))?;
    let duration = started.elapsed();
    let (out, err) = (out?, err?);
    let log = std::fs::read(&job.log).map_err(pysk_common::error::read_err(&job.log))?;
    let log = String::from_utf8_lossy(&log);
    let class = classify::classify(status, duration, limits.timeout, &log);
    Ok(Outcome {
        host: job.host.clone(),
        class,
        duration,
        message: classify::message(class, &log, err.last_line.as_deref()),
        stdout_bytes: out.bytes,
        truncated: out.truncated || err.truncated,
        stdout: out.kept,
        stderr: err.kept,
    })
}

/// Drains the started `child`'s stdout and stderr into `sinks` (a
/// reader thread each) while waiting for it; its status and what each
/// stream left. A reader that cannot be started has the ssh killed, as
/// nobody would read what it writes.
fn follow(
    child: &mut Child,
    sinks: [Sink; 2],
    watch: &Watch,
) -> (io::Result<ExitStatus>, [Result<Drained, HvError>; 2]) {
    let pid = child.id();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as _),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    thread::scope(|scope| {
        let mut sinks = sinks.into_iter();
        let readers = pipes.map(|pipe| {
            let sink = sinks.next();
            thread::Builder::new()
                .stack_size(SMALL_STACK)
                .spawn_scoped(scope, move || match sink {
                    Some(sink) => drain(pipe, sink, || watch.kill(pid)),
                    None => Ok(Drained::default()),
                })
        });
        if readers.iter().any(Result::is_err) {
            watch.kill(pid);
        }
        let status = wait(child, watch);
        let drained = readers.map(|r| {
            r.ok()
                .and_then(|h| h.join().ok())
                .unwrap_or_else(|| Ok(Drained::default()))
        });
        (status, drained)
    })
}

/// Why a host's ssh did not start.
enum Start {
    /// ssh cannot run here at all (missing, not executable), or an
    /// output file cannot be made: the run stops.
    Run(HvError),
    /// This host's start failed (no descriptors or processes left):
    /// that host's failure, in these words.
    Host(String),
}

/// The outcome of a host whose ssh never started: unreachable, as the
/// command never ran.
fn not_started(job: &Job, started: Instant, why: String) -> Outcome {
    Outcome {
        host: job.host.clone(),
        class: Class::Unreachable,
        duration: started.elapsed(),
        message: Some(why),
        stdout: Vec::new(),
        stderr: Vec::new(),
        stdout_bytes: 0,
        truncated: false,
    }
}

/// Empties the log, opens the output files and starts the ssh.
fn start(
    index: usize,
    job: &Job,
    limits: Limits<'_>,
    tx: &SyncSender<Message>,
) -> Result<(Child, [Sink; 2]), Start> {
    private_file(&job.log).map_err(|e| {
        Start::Host(format!(
            "{}: {}",
            job.log.display(),
            pysk_common::error::cause(&e)
        ))
    })?;
    let sink = |to: &Option<PathBuf>, live: bool, stderr: bool| -> Result<Sink, Start> {
        Ok(match to {
            Some(path) => Sink::File {
                file: private_file(path)
                    .map_err(|e| Start::Run(pysk_common::error::write_err(path)(e).into()))?,
                path: path.clone(),
                failed: None,
            },
            None if live => Sink::Live {
                tx: tx.clone(),
                host: index,
                stderr,
                line: Vec::new(),
            },
            None => Sink::Keep {
                kept: Vec::new(),
                limit: limits.keep,
                truncated: false,
            },
        })
    };
    let sinks = [
        sink(&job.stdout_to, limits.live_stdout, false)?,
        sink(&job.stderr_to, limits.live_stderr, true)?,
    ];
    let child = spawn(job, job.stdin.as_deref().or(limits.stdin))?;
    Ok((child, sinks))
}

/// `path` created owner-only or emptied (and made owner-only), for writing.
fn private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Starts `job`'s ssh in a session of its own, stdin from `stdin` (its
/// own open) or /dev/null, stdout and stderr piped.
fn spawn(job: &Job, stdin: Option<&Path>) -> Result<Child, Start> {
    let input = match stdin {
        Some(path) => Stdio::from(File::open(path).map_err(|e| {
            Start::Host(format!(
                "{}: {}",
                path.display(),
                pysk_common::error::cause(&e)
            ))
        })?),
        None => Stdio::null(),
    };
    let (program, args) = job.argv.split_first().ok_or_else(|| {
        Start::Run(pysk_common::Error::Internal("an empty ssh command line".into()).into())
    })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid() and prctl(PR_SET_PDEATHSIG) are async-signal-safe
    // and touch no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)
        });
    }
    command.spawn().map_err(|e| {
        let said = format!(
            "{}: cannot start: {}",
            program.to_string_lossy(),
            pysk_common::error::cause(&e)
        );
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                Start::Run(HvError::Ssh(said))
            }
            _ => Start::Host(said),
        }
    })
}

/// A thread that could not be made, as the run's error.
fn cannot_start(what: &str, e: &io::Error) -> HvError {
    pysk_common::Error::Internal(format!(
        "cannot start {what}: {}",
        pysk_common::error::cause(e)
    ))
    .into()
}

/// Where one stream of a host goes.
enum Sink {
    /// Line by line to the writer.
    Live {
        tx: SyncSender<Message>,
        host: usize,
        stderr: bool,
        /// The line so far.
        line: Vec<u8>,
    },
    /// Kept, up to `limit` bytes.
    Keep {
        kept: Vec<u8>,
        limit: usize,
        truncated: bool,
    },
    /// Into a file; after a failed write the rest is only read.
    File {
        file: File,
        path: PathBuf,
        failed: Option<io::Error>,
    },
}

/// What a stream's reading left.
#[derive(Debug, Default)]
struct Drained {
    /// The bytes kept.
    kept: Vec<u8>,
    /// More came than was kept.
    truncated: bool,
    /// All the bytes that came.
    bytes: u64,
    /// The last line that was not blank, however the stream went.
    last_line: Option<String>,
}

impl Sink {
    /// Takes the next bytes of the stream.
    fn take(&mut self, bytes: &[u8]) {
        match self {
            Sink::Live {
                tx,
                host,
                stderr,
                line,
            } => {
                for piece in bytes.split_inclusive(|&b| b == b'\n') {
                    line.extend_from_slice(piece);
                    // Longer than LINE_MAX without its newline: cut.
                    while line.len() > LINE_MAX + usize::from(line.ends_with(b"\n")) {
                        let rest = line.split_off(LINE_MAX);
                        send_line(tx, *host, *stderr, line);
                        *line = rest;
                    }
                    if line.ends_with(b"\n") {
                        send_line(tx, *host, *stderr, line);
                    }
                }
            }
            Sink::Keep {
                kept,
                limit,
                truncated,
            } => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
                *truncated |= bytes.len() > room;
            }
            Sink::File { file, failed, .. } => {
                if failed.is_none()
                    && let Err(e) = file.write_all(bytes)
                {
                    *failed = Some(e);
                }
            }
        }
    }

    /// The end of the stream: what is left.
    fn end(self, bytes: u64) -> Result<Drained, HvError> {
        match self {
            Sink::Live {
                tx,
                host,
                stderr,
                mut line,
            } => {
                send_line(&tx, host, stderr, &mut line);
                Ok(Drained {
                    bytes,
                    ..Drained::default()
                })
            }
            Sink::Keep {
                kept, truncated, ..
            } => Ok(Drained {
                kept,
                truncated,
                bytes,
                last_line: None,
            }),
            Sink::File {
                failed: Some(e),
                path,
                ..
            } => Err(pysk_common::error::write_err(&path)(e).into()),
            Sink::File { .. } => Ok(Drained {
                bytes,
                ..Drained::default()
            }),
        }
    }
}

/// Sends the live `line` so far (a newline added when it has none).
fn send_line(tx: &SyncSender<Message>, host: usize, stderr: bool, line: &mut Vec<u8>) {
    if line.is_empty() {
        return;
    }
    let mut text = std::mem::take(line);
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    // The writer only goes away when every worker is done.
    let _ = tx.send(Message::Line { host, stderr, text });
}

/// Reads `pipe` to its end into `sink`. A read error (which a pipe does
/// not give in practice) calls `kill`, as nobody would read what ssh still
/// writes, and ends the reading.
fn drain(
    pipe: Option<Box<dyn Read + Send>>,
    mut sink: Sink,
    kill: impl Fn(),
) -> Result<Drained, HvError> {
    let mut bytes = 0u64;
    let Some(pipe) = pipe else {
        return sink.end(bytes);
    };
    let mut reader = BufReader::with_capacity(64 * 1024, pipe);
    let mut last = LastLine::default();
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                kill();
                break;
            }
        };
        sink.take(chunk);
        last.take(chunk);
        let n = chunk.len();
        reader.consume(n);
        bytes += n as u64;
    }
    let mut drained = sink.end(bytes)?;
    drained.last_line = last.end();
    Ok(drained)
}

/// The last line of a stream that is not blank (its first
/// [`LAST_LINE_MAX`] bytes), however the stream is written or kept.
#[derive(Default)]
struct LastLine {
    line: Vec<u8>,
    last: Vec<u8>,
}

/// The most of a stream's last line kept by [`LastLine`].
const LAST_LINE_MAX: usize = 1024;

impl LastLine {
    /// Takes the next bytes of the stream.
    fn take(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let room = LAST_LINE_MAX.saturating_sub(self.line.len());
            self.line.extend_from_slice(&piece[..room.min(piece.len())]);
            if piece.ends_with(b"\n") {
                self.close();
            }
        }
    }

    /// A line ended: it becomes the last one unless it is blank.
    fn close(&mut self) {
        let line = std::mem::take(&mut self.line);
        if !line.trim_ascii().is_empty() {
            self.last = line;
        }
    }

    /// The last line, without its end.
    fn end(mut self) -> Option<String> {
        self.close();
        let text = String::from_utf8_lossy(self.last.trim_ascii_end()).into_owned();
        (!text.is_empty()).then_some(text)
    }
}

/// Waits for `child` to end without reaping it (`waitid` with
/// `WNOWAIT`), tells the watchdog so (it no longer kills that id), then
/// reaps it.
fn wait(child: &mut Child, watch: &Watch) -> io::Result<ExitStatus> {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    let pid = child.id();
    let raw = i32::try_from(pid).map_err(io::Error::other)?;
    loop {
        match waitid(
            Id::Pid(nix::unistd::Pid::from_raw(raw)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    watch.reaping(pid);
    child.wait()
}

/// The running ssh and what may end them: each one's backstop, and the
/// stop of the run.
#[derive(Default)]
struct Watch {
    state: Mutex<WatchState>,
    changed: Condvar,
}

#[derive(Default)]
struct WatchState {
    /// Each ssh not yet reaped, with the instant it is killed at (none,
    /// or killed already).
    running: HashMap<u32, Option<Instant>>,
    /// The run is stopping: every ssh is killed, no new host starts.
    stopped: bool,
    /// Every worker is done: the watchdog ends.
    over: bool,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An ssh started, to be killed at `deadline` (if any); at once when
    /// the run is stopping.
    fn started(&self, pid: u32, deadline: Option<Instant>) {
        let mut state = self.lock();
        if state.stopped {
            killpg(pid);
        }
        state.running.insert(pid, deadline);
        self.changed.notify_all();
    }

    /// Kills `pid`'s session, when it is not reaped yet.
    fn kill(&self, pid: u32) {
        if self.lock().running.contains_key(&pid) {
            killpg(pid);
        }
    }

    /// `pid` has ended and is about to be reaped: never killed again.
    fn reaping(&self, pid: u32) {
        self.lock().running.remove(&pid);
    }

    /// Stops the run: every running ssh killed, no new one started.
    fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        for pid in state.running.keys() {
            killpg(*pid);
        }
        self.changed.notify_all();
    }

    fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Ends the watchdog.
    fn end(&self) {
        self.lock().over = true;
        self.changed.notify_all();
    }

    /// The watchdog: kills each ssh whose backstop has passed; sleeps
    /// until the next one, or until an ssh starts or the run ends.
    fn guard(&self) {
        let mut state = self.lock();
        while !state.over {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for (pid, deadline) in &mut state.running {
                match *deadline {
                    Some(at) if at <= now => {
                        killpg(*pid);
                        *deadline = None;
                    }
                    Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                    None => {}
                }
            }
            state = match next {
                Some(at) => {
                    self.changed
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// SIGKILL to the process group of `pid` (the session of an ssh started
/// with `setsid`, so the group is its own).
fn killpg(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pysk_common::report::Level;
    use std::fs;

    /// A job that runs `script` with sh in place of ssh; `$1` is its log.
    fn job(dir: &Path, host: &str, script: &str) -> Job {
        let log = dir.join(format!("{host}.log"));
        Job {
            host: host.to_owned(),
            argv: vec![
                "sh".into(),
                "-c".into(),
                script.into(),
                "sh".into(),
                log.clone().into(),
            ],
            log,
            stdin: None,
            stdout_to: None,
            stderr_to: None,
        }
    }

    fn limits(fanout: usize, live: bool) -> Limits<'static> {
        Limits {
            fanout,
            fanout_from: "--fanout",
            timeout: None,
            backstop: None,
            stdin: None,
            keep: KEEP,
            live_stdout: live,
            live_stderr: live,
        }
    }

    fn quiet() -> Reporter {
        Reporter::new("pysk-hv", Level::Quiet)
    }

    #[test]
    fn the_open_files_limit_holds_about_ten_a_host() {
        assert_eq!(fits(40), 3);
        assert_eq!(fits(1024), 96);
        assert_eq!(fits(5), 1);
    }

    #[test]
    fn live_lines_are_prefixed_whole_and_each_host_classified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = [
            job(dir.path(), "h1", "echo one; echo two; printf partial"),
            job(dir.path(), "h2", "echo err >&2; exit 3"),
        ];
        let mut out = Vec::new();
        let outcomes = run(&jobs, limits(2, true), &quiet(), &mut out).expect("runs");
        let text = String::from_utf8(out).expect("utf-8");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["h1: one", "h1: partial", "h1: two"]);
        assert!(text.find("h1: one") < text.find("h1: two"));
        assert_eq!(
            outcomes
                .iter()
                .map(|o| (o.host.as_str(), o.class))
                .collect::<Vec<_>>(),
            [("h1", Class::Ok), ("h2", Class::Exit(3))]
        );
        assert!(
            outcomes
                .iter()
                .all(|o| o.stdout.is_empty() && o.stderr.is_empty())
        );
    }

    #[test]
    fn kept_output_is_exact_and_every_host_reads_all_of_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("stdin");
        let data: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        fs::write(&input, &data).expect("write");
        let jobs: Vec<Job> = (1..=3)
            .map(|i| job(dir.path(), &format!("h{i}"), "cat; printf 'e\\n\\001' >&2"))
            .collect();
        let limits = Limits {
            stdin: Some(&input),
            ..limits(3, false)
        };
        let mut out = Vec::new();
        let outcomes = run(&jobs, limits, &quiet(), &mut out).expect("runs");
        assert!(out.is_empty());
        for o in outcomes {
            assert_eq!(o.stdout, data.as_bytes(), "{}", o.host);
            assert_eq!(o.stderr, b"e\n\x01", "{}", o.host);
        }
    }

    #[test]
    fn the_log_decides_the_class_and_is_emptied_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let refused = "echo 'ssh: connect to host 127.0.0.1 port 9: Connection refused' >> \"$1\"; \
                       exit 255";
        let jobs = [job(dir.path(), "closed", refused)];
        fs::write(&jobs[0].log, "Authenticated to an earlier run\n").expect("write");
        let outcomes = run(&jobs, limits(1, true), &quiet(), &mut Vec::new()).expect("runs");
        assert_eq!(outcomes[0].class, Class::Unreachable);
        assert_eq!(
            outcomes[0].message.as_deref(),
            Some("ssh: connect to host 127.0.0.1 port 9: Connection refused")
        );
    }

    #[test]
    fn no_more_than_fanout_hosts_run_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs: Vec<Job> = (1..=4)
            .map(|i| job(dir.path(), &format!("h{i}"), "sleep 0.3"))
            .collect();
        let started = Instant::now();
        run(&jobs, limits(2, true), &quiet(), &mut Vec::new()).expect("runs");
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn the_backstop_kills_the_whole_session_and_says_it_may_still_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("survived");
        let script = format!(
            "echo 'Authenticated to h' >> \"$1\"; echo started; (sleep 2; touch '{}') & sleep 3",
            marker.display()
        );
        let jobs = [job(dir.path(), "h", &script)];
        let limits = Limits {
            timeout: Some(Duration::from_millis(100)),
            backstop: Some(Duration::from_millis(500)),
            ..limits(1, false)
        };
        let started = Instant::now();
        let outcomes = run(&jobs, limits, &quiet(), &mut Vec::new()).expect("runs");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(
            outcomes[0].class,
            Class::TimedOut {
                maybe_running: true
            }
        );
        assert_eq!(outcomes[0].stdout, b"started\n");
        // The background part would touch the marker 2 s after the start
        // had it not been killed with the rest of the session.
        thread::sleep(Duration::from_secs(3));
        assert!(
            !marker.exists(),
            "a process of the session outlived the kill"
        );
    }

    #[test]
    fn an_ssh_that_cannot_start_stops_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = [Job {
            host: "h".to_owned(),
            argv: vec!["/nonexistent/ssh".into()],
            log: dir.path().join("h.log"),
            stdin: None,
            stdout_to: None,
            stderr_to: None,
        }];
        let err = run(&jobs, limits(1, true), &quiet(), &mut Vec::new()).expect_err("no ssh");
        assert_eq!(
            err.to_string(),
            "/nonexistent/ssh: cannot start: No such file or directory"
        );
    }

    #[test]
    fn kept_output_stops_at_keep_but_is_read_and_counted_to_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = [job(
            dir.path(),
            "h",
            "head -c 1500000 /dev/zero; echo e >&2",
        )];
        let outcomes = run(&jobs, limits(1, false), &quiet(), &mut Vec::new()).expect("runs");
        let o = &outcomes[0];
        assert_eq!(
            (o.class, o.stdout.len(), o.stdout_bytes),
            (Class::Ok, KEEP, 1_500_000)
        );
        assert!(o.stdout.iter().all(|&b| b == 0));
        assert!(o.truncated);
        assert_eq!(o.stderr, b"e\n");
    }

    #[test]
    fn a_live_line_without_end_comes_in_pieces_of_line_max() {
        let dir = tempfile::tempdir().expect("tempdir");
        // In small writes, so that the pieces do not depend on how the
        // pipe is read; then a line of exactly LINE_MAX, which stays whole.
        let jobs = [
            job(
                dir.path(),
                "h1",
                "for i in $(seq 150); do head -c 1000 /dev/zero | tr '\\0' a; done",
            ),
            job(
                dir.path(),
                "h2",
                &format!("head -c {LINE_MAX} /dev/zero | tr '\\0' b; echo"),
            ),
        ];
        let mut out = Vec::new();
        run(&jobs, limits(1, true), &quiet(), &mut out).expect("runs");
        let text = String::from_utf8(out).expect("utf-8");
        let lengths: Vec<usize> = text.lines().map(str::len).collect();
        assert_eq!(
            lengths,
            [
                4 + LINE_MAX,
                4 + LINE_MAX,
                4 + 150_000 - 2 * LINE_MAX,
                4 + LINE_MAX
            ]
        );
    }

    #[test]
    fn output_to_files_is_exact_owner_only_and_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out_file, err_file) = (dir.path().join("h.out"), dir.path().join("h.err"));
        fs::write(&out_file, "an older and longer run's output").expect("old");
        let mut h = job(dir.path(), "h", "printf 'a\\nb'; printf x >&2; exit 4");
        h.stdout_to = Some(out_file.clone());
        h.stderr_to = Some(err_file.clone());
        let outcomes = run(&[h], limits(1, true), &quiet(), &mut Vec::new()).expect("runs");
        let o = &outcomes[0];
        assert_eq!((o.class, o.stdout_bytes), (Class::Exit(4), 3));
        assert!(o.stdout.is_empty() && o.stderr.is_empty() && !o.truncated);
        assert_eq!(fs::read(&out_file).expect("out"), b"a\nb");
        assert_eq!(fs::read(&err_file).expect("err"), b"x");
        for file in [out_file, err_file] {
            let mode = fs::metadata(&file).expect("made").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }

    #[test]
    fn an_ssh_that_starts_for_no_host_is_that_hosts_failure_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        // One argument longer than Linux takes: exec gives E2BIG, as it
        // gives EMFILE or EAGAIN when a resource runs out.
        let mut broken = job(dir.path(), "broken", "");
        broken.argv = vec!["sh".into(), "-c".into(), "x".repeat(200_000).into()];
        let jobs = [broken, job(dir.path(), "fine", "echo ok")];
        let mut out = Vec::new();
        let outcomes = run(&jobs, limits(2, true), &quiet(), &mut out).expect("runs");
        assert_eq!(out, b"fine: ok\n");
        assert_eq!(
            (outcomes[0].class, outcomes[0].message.clone()),
            (
                Class::Unreachable,
                Some("sh: cannot start: Argument list too long".to_owned())
            )
        );
        assert_eq!(outcomes[1].class, Class::Ok);
    }

    #[test]
    fn without_a_backstop_a_host_is_waited_for_however_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = [job(dir.path(), "h", "sleep 1.2; echo late")];
        let started = Instant::now();
        let outcomes = run(&jobs, limits(1, false), &quiet(), &mut Vec::new()).expect("runs");
        assert!(started.elapsed() >= Duration::from_millis(1200));
        assert_eq!(
            (outcomes[0].class, outcomes[0].stdout.as_slice()),
            (Class::Ok, &b"late\n"[..])
        );
    }

    /// A stdout that takes nothing until its gate opens.
    struct Gated<'a> {
        open: &'a (std::sync::Mutex<bool>, std::sync::Condvar),
        written: Vec<u8>,
    }

    impl Write for Gated<'_> {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (lock, opened) = self.open;
            let mut open = lock.lock().expect("gate");
            while !*open {
                open = opened.wait(open).expect("gate");
            }
            self.written.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_falls_behind_holds_the_hosts_back_instead_of_piling_up_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let done = dir.path().join("done");
        // 5 MB of lines: far more than a pipe, a reader's buffer and the
        // queue hold together.
        let script = format!(
            "awk 'BEGIN {{ for (i = 0; i < 5000; i++) printf \"%01000d\\n\", i }}'; touch '{}'",
            done.display()
        );
        let jobs = [job(dir.path(), "h", &script)];
        let gate = (std::sync::Mutex::new(false), std::sync::Condvar::new());
        let mut out = Gated {
            open: &gate,
            written: Vec::new(),
        };
        let held = thread::scope(|scope| {
            let opener = scope.spawn(|| {
                thread::sleep(Duration::from_millis(1500));
                let held = !done.exists();
                *gate.0.lock().expect("gate") = true;
                gate.1.notify_all();
                held
            });
            let outcomes = run(&jobs, limits(1, true), &quiet(), &mut out).expect("runs");
            assert_eq!(outcomes[0].class, Class::Ok);
            opener.join().expect("opener")
        });
        assert!(held, "the host ran to its end while nothing was written");
        assert_eq!(out.written.len(), 5000 * (3 + 1000 + 1));
    }

    /// A stdout whose reader went away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_kills_the_running_hosts_and_starts_no_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let started_mark = dir.path().join("started");
        let jobs = [
            job(dir.path(), "h1", "yes"),
            job(dir.path(), "h2", "yes"),
            job(
                dir.path(),
                "h3",
                &format!("touch '{}'", started_mark.display()),
            ),
        ];
        let started = Instant::now();
        let err = run(&jobs, limits(2, true), &quiet(), &mut Closed).expect_err("closed");
        assert!(pysk_common::exit::is_broken_pipe(&err), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!started_mark.exists(), "a host started after the failure");
    }
}
