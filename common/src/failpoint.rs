//! Crash points for the kill tests: a run ends at once, as a crash would,
//! at a named point of a window that a timed kill rarely hits (between
//! the renames of a batch, say). Each tool names its own environment
//! variable, so that a test sets the crash point of one tool only.

/// Ends the process with `abort` when the environment variable `var`
/// names `name`; does nothing otherwise.
pub fn reached(var: &str, name: &str) {
    if hit(var, name) {
        std::process::abort();
    }
}

/// Whether the environment variable `var` names `name`: for a step that
/// a test makes fail with an error (so that the tool's own undoing runs)
/// rather than crash.
pub fn hit(var: &str, name: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == name)
}
