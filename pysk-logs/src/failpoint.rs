//! Crash points for the kill tests: the windows of a batch commit (and of
//! a fetch) that a timed kill rarely hits.

/// Ends the run at once, as a crash would, when the environment variable
/// `PYSK_LOGS_FAILPOINT` names `name`; does nothing otherwise.
pub fn reached(name: &str) {
    pysk_common::failpoint::reached("PYSK_LOGS_FAILPOINT", name);
}
