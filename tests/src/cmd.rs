//! The one way end-to-end tests run a pysk tool: [`tool`] builds the
//! command with a clean environment (no switches from the machine running
//! the tests, no crash points left set), and [`TestCommand::succeeds`] /
//! [`TestCommand::fails_with`] run it and check its exit code, showing its
//! stderr when the code is not the one expected.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bin;

/// A pysk tool's command line, being built.
#[derive(Debug)]
pub struct TestCommand {
    name: String,
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

/// The built binary `name` (for example `pysk-logs`) with no configuration
/// (`PYSK_CONFIG_DIR` points at a directory that does not exist), every
/// other `PYSK_*` variable (the crash points) removed, and stdin empty.
pub fn tool(name: &str) -> TestCommand {
    let mut cmd = Command::new(bin(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PYSK_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PYSK_CONFIG_DIR", "/nonexistent");
    TestCommand {
        name: name.to_owned(),
        cmd,
        stdin: None,
    }
}

impl TestCommand {
    /// Reads switches and the inventory from `dir` (`--config-dir`).
    pub fn config_dir(mut self, dir: &Path) -> Self {
        self.cmd.env("PYSK_CONFIG_DIR", dir);
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable (a crash point, say).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Feeds `bytes` to the tool's stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The command as built, for tests that spawn and kill it or pipe it
    /// into another program.
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Starts the tool with stdout and stderr captured and its stdin fed.
    pub fn spawn(mut self) -> Child {
        let stdin = if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self
            .cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("a piped stdin");
            // A tool that stops reading early is not a failed feed.
            let _ = pipe.write_all(&bytes);
        }
        child
    }

    /// Runs the tool to its end, whatever its exit code.
    pub fn output(self) -> Output {
        let name = self.name.clone();
        self.spawn()
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {name}: {e}"))
    }

    /// Runs the tool and checks that it exits 0.
    pub fn succeeds(self) -> Output {
        self.fails_with(0)
    }

    /// Runs the tool and checks that it exits with `code`.
    pub fn fails_with(self, code: i32) -> Output {
        let name = self.name.clone();
        let out = self.output();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{name} exited with {:?}, not {code}; stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A run's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A run's exit code (a run killed by a signal has none: the test fails).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// Asserts that the run's stderr contains `text`, showing it otherwise.
pub fn assert_stderr(out: &Output, text: &str) {
    let err = stderr(out);
    assert!(err.contains(text), "{text:?} not in: {err}");
}

/// Asserts that the run's stderr is exactly `text`.
pub fn assert_stderr_is(out: &Output, text: &str) {
    assert_eq!(stderr(out), text, "the run's stderr");
}

/// Runs `cmd` with `input` on its stdin and its output captured; fails
/// the test when it takes longer than `bound` (the process is killed).
pub fn run_fed(mut cmd: Command, input: &[u8], bound: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let feed = {
        let mut pipe = child.stdin.take().expect("a piped stdin");
        let input = input.to_vec();
        // A program that stops reading early is not a failed feed.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} took longer than {bound:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    let _ = feed.join();
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Reads `pipe` to its end in a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
