//! What every subcommand that reaches hosts shares: its [`Run`] (hosts,
//! ssh, fanout, timeout, state, `--json`, `--dry-run`) and the start of
//! such a run, `prepare`: the hosts picked (the inventory's, by
//! [`targets`]), their warnings said, no hosts left a warning and nothing
//! to do, and a private temporary directory for the ssh logs (and a
//! spooled stdin); then `jobs` gives each host's ssh and
//! `Run::limits` how they run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::inventory::{Host, Inventory};
use pysk_common::report::Reporter;

use crate::error::HvError;
use crate::fanout::{self, Job, Limits};
use crate::ssh::{self, Ssh};
use crate::targets::{self, Selection};

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
    /// The remote command's time limit.
    pub timeout: Option<Duration>,
    /// `--json`.
    pub json: bool,
    /// `--dry-run`.
    pub dry_run: bool,
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
        report.warn("no hosts left to run on");
        return Ok(None);
    }
    let private = tempfile::Builder::new()
        .prefix("pysk-hv.")
        .tempdir()
        .map_err(pysk_common::error::write_err(std::env::temp_dir()))?;
    Ok(Some(Prepared {
        inventory,
        hosts: picked.hosts,
        private,
    }))
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
