//! `pysk-hv`: commands across the fleet over the system's OpenSSH, with
//! each host's result told apart: ok, exit N, a signal, unreachable, host
//! key, auth, timed out.
//!
//! - [`nodeset`]: node sets as pdsh and clush write them (`web[1-5]`).
//! - [`ssh`]: each host's ssh command line and the remote command, quoted
//!   for the host's shell, under a remote `timeout`.
//! - [`classify`]: how a host's run ended, from ssh's exit status, the
//!   time it took and ssh's own log.

pub mod classify;
pub mod nodeset;
pub mod ssh;
