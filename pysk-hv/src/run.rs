//! What every subcommand that reaches hosts shares: its [`Run`] (hosts,
//! ssh, fanout, timeout, state, `--json`, `--dry-run`) and the start of
//! such a run, `prepare`: the hosts picked (the inventory's, by
//! [`targets`]), their warnings said, no hosts left a warning and nothing
//! to do, and a private temporary directory for the ssh logs (and a
//! spooled stdin); then `jobs` gives each host's ssh and
//! `Run::limits` how they run.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::inventory::{Host, Inventory};
use pysk_common::report::Reporter;

use crate::error::HvError;
use crate::fanout::{self, Job, Limits};
use crate::ssh::{self, Ssh};
use crate::targets::{self, Rerun, Selection};

/// The options every subcommand that reaches hosts shares.
#[derive(Debug, Clone)]
pub struct Run {
    /// The inventory file.
    pub inventory: PathBuf,
    /// The hosts asked for.
    pub selection: Selection,
    /// Where `last-run.json` is kept.
    pub state_dir: PathBuf,
    /// How hosts are reached.
    pub ssh: Ssh,
    /// Hosts at once.
    pub fanout: usize,
    /// Where `fanout` came from: `--fanout`, else `hv_fanout`.
    pub fanout_from: &'static str,
    /// The remote command's time limit.
    pub timeout: Option<Duration>,
    /// `--json`.
    pub json: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// The run may change hosts (exec, copy, fetch, install, conf apply;
    /// never a dry run): it checks the state directory before any host
    /// and records each host's class in `last-run.json`.
    pub record: bool,
}

impl Run {
    /// How the jobs of this run go: its fanout and timeout (the backstop
    /// past the remote limit), `stdin` for every ssh (`None`:
    /// /dev/null), [`fanout::KEEP`] of each stream kept, and which remote
    /// streams are written as they come.
    pub(crate) fn limits<'a>(
        &self,
        stdin: Option<&'a Path>,
        live_stdout: bool,
        live_stderr: bool,
    ) -> Limits<'a> {
        Limits {
            fanout: self.fanout,
            fanout_from: self.fanout_from,
            timeout: self.timeout,
            backstop: self.timeout.map(|t| t + ssh::KILL_AFTER + fanout::GRACE),
            stdin,
            keep: fanout::KEEP,
            live_stdout,
            live_stderr,
        }
    }
}

/// A run's hosts, and the private directory their ssh logs go to.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The inventory they were picked from.
    pub inventory: Inventory,
    /// The hosts picked, in inventory order.
    pub hosts: Vec<Host>,
    /// Owner-only, removed when dropped.
    pub private: tempfile::TempDir,
}

/// Picks the hosts of `run` and says its warnings; `None` (said as a
/// warning) when no host is left, else the hosts and a private temporary
/// directory.
pub(crate) fn prepare(run: &Run, report: &Reporter) -> Result<Option<Prepared>, HvError> {
    let inventory = Inventory::load(&run.inventory)?;
    let picked = targets::pick(&inventory, &run.inventory, &run.selection, &run.state_dir)?;
    for warning in &picked.warnings {
        report.warn(warning);
    }
    if picked.hosts.is_empty() {
        nothing_left(&run.selection, report);
        return Ok(None);
    }
    if run.record {
        writable(&run.state_dir)?;
    }
    let private = private_dir()?;
    Ok(Some(Prepared {
        inventory,
        hosts: picked.hosts,
        private,
    }))
}

/// Says that no host is left: with `--rerun` alone, that the last run
/// left nothing to rerun (information: a clean state, not a problem),
/// else a warning (the hosts named were all excluded).
fn nothing_left(selection: &Selection, report: &Reporter) {
    let rerun_only =
        selection.nodes.is_empty() && selection.groups.is_empty() && selection.exclude.is_empty();
    match selection.rerun {
        Some(Rerun::Failed) if rerun_only => {
            report.info("nothing to rerun: every host of the last run was ok");
        }
        Some(Rerun::Unreachable) if rerun_only => {
            report.info("nothing to rerun: every host of the last run was reached");
        }
        _ => report.warn("no hosts left to run on"),
    }
}

/// The state directory made when missing and a file created (and
/// removed) in it, so that a run that records fails before any host
/// when it cannot.
fn writable(state_dir: &Path) -> Result<(), HvError> {
    let fail = || pysk_common::error::write_err(state_dir);
    fs::create_dir_all(state_dir).map_err(fail())?;
    tempfile::Builder::new()
        .prefix(".pysk-hv.")
        .tempfile_in(state_dir)
        .map_err(fail())?;
    Ok(())
}

/// A new directory `pysk-hv.<pid>.XXXXXX` in the temporary directory,
/// mode 0700 whatever the umask (the ssh logs and a spooled stdin go
/// there); first the ones of this user's processes that are gone are
/// removed.
fn private_dir() -> Result<tempfile::TempDir, HvError> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PRIVATE}{}.", std::process::id()))
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(pysk_common::error::write_err(&tmp))?;
    // The mode again, in case the umask took from it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(pysk_common::error::write_err(dir.path()))?;
    interrupt::remove_on_signal(dir.path());
    Ok(dir)
}

/// SIGINT and SIGTERM during a run: the private directories removed,
/// then the signal taken as it would have been (the ssh processes die
/// with this one, see `fanout`'s `PR_SET_PDEATHSIG`); the last run's
/// record is left as it was.
mod interrupt {
    use std::fs::{self, File};
    use std::io::Read;
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::{Mutex, Once, PoisonError};

    use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

    /// The directories to remove.
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    /// The write end of the pipe the handler wakes the watcher through.
    static WAKE: AtomicI32 = AtomicI32::new(-1);
    /// The handlers and their watcher, set up once.
    static SETUP: Once = Once::new();

    /// Removes `dir` when SIGINT or SIGTERM arrives.
    pub(super) fn remove_on_signal(dir: &Path) {
        DIRS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(dir.to_owned());
        SETUP.call_once(|| {
            // Without the pipe or the thread the signals keep their
            // default action: the run ends as before, the directory
            // left behind for the next run to remove.
            let Ok((read, write)) = nix::unistd::pipe() else {
                return;
            };
            let spawned = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || watch(read));
            if spawned.is_err() {
                return;
            }
            WAKE.store(write.as_raw_fd(), Ordering::SeqCst);
            std::mem::forget(write);
            let action = SigAction::new(
                SigHandler::Handler(on_signal),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            for sig in [Signal::SIGINT, Signal::SIGTERM] {
                // SAFETY: the handler only calls write(2), which is
                // async-signal-safe.
                let _ = unsafe { signal::sigaction(sig, &action) };
            }
        });
    }

    /// The handler: the signal's number to the watcher.
    extern "C" fn on_signal(sig: std::ffi::c_int) {
        let fd = WAKE.load(Ordering::SeqCst);
        let byte = [u8::try_from(sig).unwrap_or(0)];
        // SAFETY: `fd` is the pipe's write end, never closed.
        let _ = nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, &byte);
    }

    /// Waits for a signal's number, removes the directories, then dies of
    /// that signal.
    fn watch(read: OwnedFd) {
        let mut byte = [0u8];
        if File::from(read).read_exact(&mut byte).is_err() {
            return;
        }
        for dir in DIRS.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = fs::remove_dir_all(dir);
        }
        let sig = Signal::try_from(i32::from(byte[0])).unwrap_or(Signal::SIGTERM);
        // SAFETY: the default action, set from this one thread.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
        let _ = signal::raise(sig);
        std::process::exit(128 + sig as i32);
    }
}

/// The start of a private directory's name.
const PRIVATE: &str = "pysk-hv.";

/// Removes the private directories in `tmp` that belong to this user and
/// name a process that no longer exists (left by a run killed with
/// SIGKILL); anything that cannot be read or removed is left.
fn remove_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let uid = nix::unistd::getuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PRIVATE))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !alive(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The process `pid` exists (or cannot be told apart from one that does).
fn alive(pid: i32) -> bool {
    use nix::errno::Errno;
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// Each host's ssh running `remote`, its log in `private`.
pub(crate) fn jobs(
    run: &Run,
    hosts: &[Host],
    private: &Path,
    remote: &str,
) -> Result<Vec<Job>, HvError> {
    hosts
        .iter()
        .map(|host| {
            let log = private.join(format!("{}.log", host.name));
            let argv = run
                .ssh
                .argv(host, &log, remote)
                .map_err(|why| pysk_common::Error::Internal(format!("{}: {why}", host.name)))?;
            Ok(Job {
                host: host.name.clone(),
                argv,
                log,
                stdin: None,
                stdout_to: None,
                stderr_to: None,
            })
        })
        .collect()
}
