//! The dumpers as child processes: a clean environment, the account they
//! run as, killed with us (so a killed run leaves no dumper behind), their
//! stderr gathered on a thread and judged with their exit status; and the
//! file a dump is written to, hashed and counted as it is written.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;

use nix::sys::signal::Signal;
use nix::unistd::User;
use sha2::{Digest, Sha256};

use pysk_common::error::{cause, write_err};

use crate::error::BackupError;

/// The most of a dumper's stderr kept, and the lines of it quoted in an
/// error.
const STDERR_KEPT: usize = 64 * 1024;
const STDERR_LINES: usize = 5;

/// `program` with `args`, its environment cleared but `PATH` and
/// `LANG=C.UTF-8`, in `/`, as `account` when given (its home as `HOME`),
/// stdout and stderr piped, and killed when this process dies.
pub fn command<I, S>(program: &str, args: I, account: Option<&User>) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    match account {
        Some(user) => {
            cmd.uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", &user.dir);
        }
        None => {
            cmd.env("HOME", "/root");
        }
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
    cmd
}

/// A dumper running, its stderr read on a thread.
#[derive(Debug)]
pub struct Running {
    /// The child.
    pub child: Child,
    program: String,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// Starts `cmd`; a program that cannot be run is `Unavailable` (69).
pub fn spawn(mut cmd: Command) -> Result<Running, BackupError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| BackupError::Unavailable {
        what: program.clone(),
        reason: pysk_common::error::cause(&e),
    })?;
    let stderr = child.stderr.take().map(read_stderr);
    Ok(Running {
        child,
        program,
        stderr,
    })
}

fn read_stderr(mut pipe: ChildStderr) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = STDERR_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

impl Running {
    /// Waits for the child: `Err` with the reason when it exited other than
    /// 0 or wrote anything on stderr (its first lines quoted).
    pub fn finish(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| {
            format!(
                "{}: waiting for it: {}",
                self.program,
                pysk_common::error::cause(&e)
            )
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let said = quote(&stderr);
        let how = match (status.code(), status.signal()) {
            (Some(0), _) if said.is_empty() => return Ok(()),
            (Some(0), _) => "exited with 0 but wrote on stderr".to_owned(),
            (Some(code), _) => format!("exited with {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => format!("ended with {status}"),
        };
        Err(match said.is_empty() {
            true => format!("{} {how}", self.program),
            false => format!("{} {how}: {said}", self.program),
        })
    }
}

/// The first lines of `stderr`, joined with ` / `, `…` when there were
/// more.
fn quote(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut said = lines
        .iter()
        .take(STDERR_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join(" / ");
    if lines.len() > STDERR_LINES {
        said.push_str(" / …");
    }
    said
}

/// A dump's file as it is written: 0600, new, hashed and counted.
#[derive(Debug)]
pub struct DumpFile {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
}

impl DumpFile {
    /// Creates `path` (it must not exist), mode 0600.
    pub fn create(path: &Path) -> Result<DumpFile, BackupError> {
        Ok(DumpFile {
            file: super::set::create_file(path)?,
            path: path.to_owned(),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Syncs the file: its size and SHA-256 (hex).
    pub fn finish(self) -> Result<(u64, String), BackupError> {
        self.file.sync_all().map_err(write_err(&self.path))?;
        let sha: String = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((self.bytes, sha))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for DumpFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
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

/// Copies the child's stdout to `out` (and to `feed`, as long as its
/// reader takes it) until its end, the tail noted. A failed write of
/// `out` is the error; a feed that stops taking is left to its reader's
/// exit status.
pub fn copy(
    child: &mut Child,
    out: &mut impl Write,
    mut feed: Option<ChildStdin>,
    tail: &mut Tail,
) -> Result<(), String> {
    let mut stdout = child.stdout.take().ok_or("no output pipe")?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the dump: {}", cause(&e))),
        };
        out.write_all(&buf[..n]).map_err(|e| cause(&e))?;
        tail.push(&buf[..n]);
        if let Some(pipe) = feed.as_mut()
            && pipe.write_all(&buf[..n]).is_err()
        {
            feed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_child_is_quoted_a_few_lines_at_most() {
        let script = "for i in 1 2 3 4 5 6 7; do echo line $i >&2; done; exit 3";
        let run = spawn(command("sh", ["-c", script], None)).expect("spawn");
        let why = run.finish().expect_err("fails");
        assert_eq!(
            why,
            "sh exited with 3: line 1 / line 2 / line 3 / line 4 / line 5 / …"
        );
        let run = spawn(command("sh", ["-c", "echo careful >&2"], None)).expect("spawn");
        assert_eq!(
            run.finish().expect_err("stderr"),
            "sh exited with 0 but wrote on stderr: careful"
        );
        let run = spawn(command("sh", ["-c", "kill -9 $$"], None)).expect("spawn");
        assert_eq!(
            run.finish().expect_err("killed"),
            "sh was killed by signal 9"
        );
        assert!(matches!(
            spawn(command("pysk-no-such-program", [""; 0], None)),
            Err(BackupError::Unavailable { .. })
        ));
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
