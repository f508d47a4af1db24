//! What a killed drill left behind: its temporary directories
//! (`$TMPDIR/pysk-drill-*`, which hold a copy of the production data) and
//! any throw-away server still running from one (one started before the
//! servers died with their drill). Swept at the start of each drill,
//! under the lock, so no other drill is using them: a server whose pid
//! file lies in such a directory, and whose command line names it (a pid
//! reused by another process is left alone), is killed, then the
//! directory is removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use pysk_common::report::Reporter;

/// How a drill's temporary directory is named (`fetch::temp_dir`).
const PREFIX: &str = "pysk-drill-";

/// Where each throw-away server writes its pid, below its drill's
/// directory.
const PID_FILES: [&str; 2] = ["postgresql/data/postmaster.pid", "mariadb/mariadbd.pid"];

/// How long a killed server may take to be gone.
const GONE: Duration = Duration::from_secs(10);

/// Kills the servers of earlier drills' directories in `tmp` and removes
/// those directories; what cannot be removed is warned about.
pub fn sweep(tmp: &Path, report: &Reporter) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    for dir in stale {
        for pid_file in PID_FILES {
            if let Some(pid) = server(&dir, &dir.join(pid_file)) {
                report.warn(format_args!(
                    "stopping a killed drill's server (pid {pid}) in {}",
                    dir.display()
                ));
                stop(pid);
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => report.verbose(format_args!(
                "removed a killed drill's directory {}",
                dir.display()
            )),
            Err(e) => report.warn(format_args!(
                "{}: {}",
                dir.display(),
                pysk_common::error::cause(&e)
            )),
        }
    }
}

/// The pid in `pid_file` when that process runs with `dir` in its
/// command line.
fn server(dir: &Path, pid_file: &Path) -> Option<i32> {
    let text = fs::read_to_string(pid_file).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let named = String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy());
    (pid > 1 && named).then_some(pid)
}

/// Kills `pid` and waits, bounded, until it is gone (or a zombie).
fn stop(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let start = Instant::now();
    while start.elapsed() < GONE {
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
