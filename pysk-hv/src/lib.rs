//! `pysk-hv`: commands across the fleet over the system's OpenSSH, with
//! each host's result told apart: ok, exit N, a signal, unreachable, host
//! key, auth, timed out.
//!
//! - [`targets`]: the hosts a command runs on, from the inventory: `-w`
//!   node sets ([`nodeset`]), `-g` groups, `-x`, `--rerun` of the last
//!   run's failed or unreachable hosts.
//! - [`ssh`]: each host's ssh command line and the remote command, quoted
//!   for the host's shell, under a remote `timeout`.
//! - [`classify`]: how a host's run ended, from ssh's exit status, the
//!   time it took and ssh's own log.
//! - [`fanout`]: one ssh per host, at most F at once, one writer.
//! - [`summary`]: what a run tells: stderr lines, `--gather`, `--json`,
//!   `last-run.json`.

pub mod classify;
pub mod error;
pub mod fanout;
pub mod nodeset;
pub mod ssh;
pub mod summary;
pub mod targets;
