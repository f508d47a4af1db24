//! Exit codes and the outer shell of every tool's `main`.
//!
//! The codes are those of `sysexits.h`, as DESIGN.md lists them, defined
//! here once. A tool's `main.rs` is two lines: it calls [`run`] with its name
//! and its `try_main`, and returns what `run` returns.

use std::error::Error as StdError;
use std::io;
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// Finished, but some work failed (a host unreachable, a file unreadable)
/// and was reported.
pub const PARTIAL: u8 = 1;
/// The command line was wrong.
pub const USAGE: u8 = 2;
/// Input data was bad (`EX_DATAERR`).
pub const DATAERR: u8 = 65;
/// An input file did not exist or was unreadable (`EX_NOINPUT`).
pub const NOINPUT: u8 = 66;
/// A service was unavailable (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// A fault inside the tool, not in its input (`EX_SOFTWARE`).
pub const SOFTWARE: u8 = 70;
/// An output file could not be created (`EX_CANTCREAT`).
pub const CANTCREAT: u8 = 73;
/// An I/O error (`EX_IOERR`).
pub const IOERR: u8 = 74;
/// Temporary failure, try again later; another run holds the lock
/// (`EX_TEMPFAIL`).
pub const TEMPFAIL: u8 = 75;
/// Permission denied (`EX_NOPERM`).
pub const NOPERM: u8 = 77;
/// Configuration error (`EX_CONFIG`).
pub const CONFIG: u8 = 78;

/// How a run that did not fail outright ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done.
    Success,
    /// The run finished, but some work failed and was reported on stderr;
    /// the tool exits [`PARTIAL`].
    Partial,
    /// The run speaks another program's exit codes on purpose (a
    /// monitoring plugin's 0 to 3, `pysk-ssl check --nagios`): exit with
    /// this code.
    Foreign(u8),
}

/// The exit code for a failure to read an input: missing (66), not
/// permitted (77), not valid data such as a corrupt gzip stream (65),
/// else an I/O error (74).
pub fn read_failure(err: &io::Error) -> u8 {
    match err.kind() {
        io::ErrorKind::NotFound => NOINPUT,
        io::ErrorKind::PermissionDenied => NOPERM,
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => DATAERR,
        _ => IOERR,
    }
}

/// The exit code for a failure to write an output: not permitted (77), a
/// closed pipe (74), else the output cannot be created (73).
pub fn write_failure(err: &io::Error) -> u8 {
    match err.kind() {
        io::ErrorKind::PermissionDenied => NOPERM,
        io::ErrorKind::BrokenPipe => IOERR,
        _ => CANTCREAT,
    }
}

/// What every tool's error enum provides on top of `std::error::Error`:
/// the exit code the failure maps to.
///
/// The `Display` of an error is `<context>: <cause>`, where the context
/// names the file, host or line it came from; [`run`] prefixes the tool.
pub trait ToolError: StdError {
    /// The sysexits code for this failure.
    fn exit_code(&self) -> u8;
}

/// Writes what every tool's error enum has alike, for an enum `$error`
/// whose variant `Common(pysk_common::Error)` holds the failures every tool
/// can meet (reading, writing, stdout, a bad setting): the conversion
/// `From<pysk_common::Error>`, so that `?` lifts them.
#[macro_export]
macro_rules! tool_error_basics {
    ($error:ident) => {
        impl From<$crate::Error> for $error {
            fn from(e: $crate::Error) -> Self {
                $error::Common(e)
            }
        }
    };
}

/// The exit-code paragraph of a tool's `--help`, from the codes the tool
/// uses and what each means for it, so that every tool words it alike.
pub fn help(codes: &[(u8, &str)]) -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, meaning) in codes {
        out.push_str(&format!("  {code:>2}  {meaning}\n"));
    }
    out
}

/// Whether `err`, or any error in its `source()` chain, is an I/O error of
/// kind `BrokenPipe`: the reader of our stdout went away.
pub fn is_broken_pipe(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Runs a tool's `try_main` and turns its outcome into the process's exit
/// code.
///
/// An error is printed as `<tool>: <error>` on stderr and exits with its
/// [`ToolError::exit_code`]; an error caused by a closed stdout pipe (the
/// reader, say `head`, had enough) ends the run quietly with 0, as `cat`
/// and ripgrep do. A stdout that was closed before the start (`>&-`) is
/// never seen here: the Rust runtime opens `/dev/null` on a closed fd 0,
/// 1 or 2 before `main`, so such a run behaves as with `>/dev/null`.
pub fn run<E, F>(tool: &str, try_main: F) -> ExitCode
where
    E: ToolError + 'static,
    F: FnOnce() -> Result<Outcome, E>,
{
    match try_main() {
        Ok(Outcome::Success) => ExitCode::from(OK),
        Ok(Outcome::Partial) => ExitCode::from(PARTIAL),
        Ok(Outcome::Foreign(code)) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(OK),
        Err(err) => {
            eprintln!("{tool}: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    #[derive(Debug)]
    struct Wrapped(io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "writing stdout: {}", self.0)
        }
    }
    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    impl ToolError for Wrapped {
        fn exit_code(&self) -> u8 {
            IOERR
        }
    }

    #[test]
    fn broken_pipe_is_found_through_the_source_chain() {
        let wrapped = Wrapped(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&wrapped));
        let other = Wrapped(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
    }

    /// The child half of `closed_stdout_pipe_ends_quietly_with_zero`: when
    /// started by that test it writes lines until stdout fails, through
    /// [`run`], and exits with what `run` returns. Run on its own it does
    /// nothing.
    #[test]
    fn flood_stdout_child() {
        if std::env::var_os("PYSK_TEST_FLOOD").is_none() {
            return;
        }
        let code = run("pysk-test", || -> Result<Outcome, Wrapped> {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            out.write_all(b"FLOOD\n").map_err(Wrapped)?;
            loop {
                out.write_all(b"a line of output that nobody reads\n")
                    .map_err(Wrapped)?;
            }
        });
        // `ExitCode` is opaque; success is the only value we compare to.
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 99 });
    }

    #[test]
    fn closed_stdout_pipe_ends_quietly_with_zero() {
        let exe = std::env::current_exe().expect("test binary path");
        // A real pipe: the test binary re-runs only the child test, its
        // stdout goes into a reader that skips the test harness's own lines
        // up to our marker, reads one line (as `head -n1` would) and exits.
        let script = r#""$0" --exact exit::tests::flood_stdout_child --nocapture --test-threads=1 2>"$1" | sed -n '/FLOOD$/{n;p;q;}' >/dev/null; echo "${PIPESTATUS[0]}""#;
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr_path = dir.path().join("stderr");
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(&exe)
            .arg(&stderr_path)
            .env("PYSK_TEST_FLOOD", "1")
            .output()
            .expect("run bash");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
        let stderr = std::fs::read_to_string(&stderr_path).expect("stderr file");
        assert!(!stderr.contains("pysk-test:"), "stderr was: {stderr}");
        assert!(!stderr.contains("panicked"), "stderr was: {stderr}");
    }
}
