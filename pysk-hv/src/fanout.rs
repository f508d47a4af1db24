//! One ssh per host, at most `fanout` at once, and one writer.
//!
//! Workers take the next host, start its ssh in a session of its own
//! (`setsid`: no terminal, and on a busy machine each ssh gets its own
//! share of the CPU, as pdsh's do; killed with us through
//! `PR_SET_PDEATHSIG`), read its stdout and stderr line by line and send
//! the lines to the calling thread, the only one that writes: `host: line`
//! on stdout for the remote stdout, on stderr for the remote stderr, so no
//! line is ever cut into by another. With a timeout, a host whose ssh
//! outlives the remote `timeout` wrapper's own limit (and its KILL) by
//! [`GRACE`] has its ssh killed here, the backstop. When the run fails
//! (stdout closed, say), no further host is started and the running ones'
//! ssh are killed, so that a command whose output never ends does not
//! hold the run.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use pysk_common::report::Reporter;

use crate::classify::{self, Class};
use crate::error::HvError;

/// How long past the remote limit (timeout and its KILL) the local ssh
/// may still take to bring the result back before it is killed.
pub const GRACE: Duration = Duration::from_secs(5);

/// How often a worker with a deadline looks whether its ssh has ended.
const POLL: Duration = Duration::from_millis(10);

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
}

/// How the jobs run.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    /// Hosts at once.
    pub fanout: usize,
    /// The remote command's time limit (for the class); `None`: none.
    pub timeout: Option<Duration>,
    /// When a host's ssh is killed here, from its start; `None`: never.
    pub backstop: Option<Duration>,
    /// The file each ssh reads as its stdin (its own open of it), or
    /// `None` for /dev/null.
    pub stdin: Option<&'a Path>,
    /// Remote stdout lines written as they come (`host: line`), else kept.
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
    /// ssh's own message when the host was not reached.
    pub message: Option<String>,
    /// The remote stdout, when not written as it came.
    pub stdout: Vec<u8>,
    /// The remote stderr, when not written as it came.
    pub stderr: Vec<u8>,
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
    /// A host's ssh could not be started: the run stops.
    Failed(HvError),
}

/// Raises the soft limit of open files to the hard one: every host at
/// once holds a few pipes and its log, so a fanout of some hundreds would
/// otherwise run out of descriptors at the usual soft limit of 1024.
/// Left as it is when that fails: a host that then cannot start is
/// reported as such.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Runs every job, writing live output to `out` (remote stdout) and
/// stderr, a progress line on a terminal; the outcomes in job order.
pub fn run(
    jobs: &[Job],
    limits: Limits<'_>,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Vec<Outcome>, HvError> {
    raise_fd_limit();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
    let mut failure = None;
    let progress = |done: usize| format!("{done}/{} hosts", jobs.len());
    thread::scope(|scope| {
        for _ in 0..limits.fanout.min(jobs.len()) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || worker(jobs, limits, next, stop, &tx));
        }
        drop(tx);
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
                    write_line(&jobs[host].host, stderr, &text, out, &mut failure, &stop);
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
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(err);
                }
            }
        }
        report.progress_done();
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

/// `host: text` on stdout or stderr; a failed write of stdout stops the
/// run (a closed pipe ends it quietly, see `common::exit::run`).
fn write_line(
    host: &str,
    stderr: bool,
    text: &[u8],
    out: &mut dyn Write,
    failure: &mut Option<HvError>,
    stop: &AtomicBool,
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
        stop.store(true, Ordering::Relaxed);
        *failure = Some(pysk_common::Error::Stdout(e).into());
    }
}

/// Takes jobs until none is left (or the run stops), sending each one's
/// lines and outcome.
fn worker(
    jobs: &[Job],
    limits: Limits<'_>,
    next: &AtomicUsize,
    stop: &AtomicBool,
    tx: &Sender<Message>,
) {
    while !stop.load(Ordering::Relaxed) {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(index) else {
            return;
        };
        let message = match one(index, job, limits, stop, tx) {
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
    stop: &AtomicBool,
    tx: &Sender<Message>,
) -> Result<Outcome, HvError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&job.log)
        .map_err(pysk_common::error::write_err(&job.log))?;
    let started = Instant::now();
    let mut child = spawn(job, job.stdin.as_deref().or(limits.stdin))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (out, err, status) = thread::scope(|scope| {
        let err = scope.spawn(|| read_lines(stderr, index, true, limits.live_stderr, tx));
        let out = scope.spawn(|| read_lines(stdout, index, false, limits.live_stdout, tx));
        // Waited for here, not after the output's end: the backstop and
        // a stop must be able to kill an ssh whose output never ends.
        let status = wait(&mut child, limits.backstop, started, stop);
        let out = out.join().unwrap_or_default();
        (out, err.join().unwrap_or_default(), status)
    });
    let status =
        status.map_err(|e| pysk_common::Error::Internal(format!("waiting for ssh: {e}")))?;
    let duration = started.elapsed();
    let log = fs::read(&job.log).map_err(pysk_common::error::read_err(&job.log))?;
    let log = String::from_utf8_lossy(&log);
    let class = classify::classify(status, duration, limits.timeout, &log);
    Ok(Outcome {
        host: job.host.clone(),
        class,
        duration,
        message: classify::message(class, &log),
        stdout: out,
        stderr: err,
    })
}

/// Starts `job`'s ssh in a session of its own, stdin from `stdin` (its
/// own open) or /dev/null, stdout and stderr piped.
fn spawn(job: &Job, stdin: Option<&Path>) -> Result<Child, HvError> {
    let input = match stdin {
        Some(path) => Stdio::from(File::open(path).map_err(pysk_common::error::read_err(path))?),
        None => Stdio::null(),
    };
    let (program, args) = job
        .argv
        .split_first()
        .ok_or_else(|| pysk_common::Error::Internal("an empty ssh command line".into()))?;
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
        HvError::Ssh(format!(
            "{}: cannot start: {}",
            program.to_string_lossy(),
            pysk_common::error::cause(&e)
        ))
    })
}

/// Reads `pipe` to its end by lines: sent to the writer when `live`,
/// else kept and returned.
fn read_lines(
    pipe: Option<impl Read>,
    host: usize,
    stderr: bool,
    live: bool,
    tx: &Sender<Message>,
) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(pipe) = pipe else {
        return kept;
    };
    let mut reader = BufReader::new(pipe);
    let mut text = Vec::new();
    // A read error ends the output like its end does: ssh's status and
    // log still tell what happened.
    while reader.read_until(b'\n', &mut text).unwrap_or(0) > 0 {
        if !live {
            kept.append(&mut text);
            continue;
        }
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        let _ = tx.send(Message::Line {
            host,
            stderr,
            text: std::mem::take(&mut text),
        });
    }
    kept
}

/// Waits for `child`; kills its session once `backstop` (if any) has
/// passed since `started`, or as soon as `stop` is set: the run is failing
/// (its stdout is gone, say), so nobody reads this host's output any more
/// and a command that never ends would hold the run forever.
fn wait(
    child: &mut Child,
    backstop: Option<Duration>,
    started: Instant,
    stop: &AtomicBool,
) -> io::Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let overdue = backstop.is_some_and(|b| started.elapsed() >= b);
        if overdue || stop.load(Ordering::Relaxed) {
            // Not reaped yet, so the id is still ours; the session's
            // group is the ssh's own (setsid).
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return child.wait();
        }
        thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pysk_common::report::Level;

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
        }
    }

    fn limits(fanout: usize, live: bool) -> Limits<'static> {
        Limits {
            fanout,
            timeout: None,
            backstop: None,
            stdin: None,
            live_stdout: live,
            live_stderr: live,
        }
    }

    fn quiet() -> Reporter {
        Reporter::new("pysk-hv", Level::Quiet)
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
        }];
        let err = run(&jobs, limits(1, true), &quiet(), &mut Vec::new()).expect_err("no ssh");
        assert_eq!(
            err.to_string(),
            "/nonexistent/ssh: cannot start: No such file or directory"
        );
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
