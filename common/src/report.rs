//! Where results go: diagnostics on stderr, as `pysk-<tool>: <what>: <why>`,
//! and the `--json` summary on stdout.
//!
//! Trouble (warnings and errors) is always printed, so cron mails it; the
//! summary of a run, and what a real run changed, is printed unless
//! `--quiet`, so a quiet successful run prints nothing; details only with
//! `--verbose`. Stdout carries only what was asked for: data, a dry run's
//! plan or diff, or the one `--json` document ([`print_json`]).

use std::fmt::Display;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::Error;

/// The version of every `--json` document; it changes only when a field's
/// meaning does (new fields may appear in the same version).
pub const JSON_VERSION: u32 = 1;

/// A summary with the document version in front.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    version: u32,
    #[serde(flatten)]
    summary: &'a T,
}

/// The `--json` document of `summary`: a JSON object whose first field is
/// `"version": 1`, followed by the summary's own fields. `summary` must
/// serialize as an object (a struct with named fields).
pub fn json(summary: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string_pretty(&Versioned {
        version: JSON_VERSION,
        summary,
    })
    .map_err(|e| Error::Internal(format!("summary does not serialize as JSON: {e}")))
}

/// Prints `summary` as the run's `--json` document on stdout (see
/// [`json`]), one document and a newline.
pub fn print_json(summary: &impl Serialize) -> Result<(), Error> {
    let text = json(summary)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(Error::Stdout)
}

/// How much a run says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `--quiet`: only trouble.
    Quiet,
    /// The default: trouble and a summary.
    Normal,
    /// `-v`: also what is being done.
    Verbose,
    /// `-vv` and more: also details of each step.
    Debug,
}

/// What kind of message a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something failed or was set aside; always shown.
    Warning,
    /// A summary line; hidden by `--quiet`.
    Info,
    /// What is being done; shown with `-v`.
    Verbose,
    /// Details; shown with `-vv`.
    Debug,
}

/// Writes a tool's diagnostics to stderr according to its [`Level`].
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    tool: &'static str,
    level: Level,
}

impl Reporter {
    /// A reporter for `tool` (for example `pysk-logs`) at `level`.
    pub fn new(tool: &'static str, level: Level) -> Reporter {
        Reporter { tool, level }
    }

    /// The level in force.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether a progress display may be drawn: stderr is a terminal and
    /// the run is not quiet.
    pub fn progress_allowed(&self) -> bool {
        self.level > Level::Quiet && std::io::stderr().is_terminal()
    }

    /// Redraws the progress line `msg` (`\r<tool>: <msg>`, no newline) when
    /// [`Reporter::progress_allowed`]; call [`Reporter::progress_done`]
    /// after the last one.
    pub fn progress(&self, msg: impl Display) {
        if self.progress_allowed() {
            eprint!("\r{}: {msg}", self.tool);
        }
    }

    /// Ends the progress line, so what follows starts on a line of its own.
    pub fn progress_done(&self) {
        if self.progress_allowed() {
            eprintln!();
        }
    }

    /// The line `msg` of `kind` becomes at this level, or `None` when the
    /// level hides it.
    pub fn format(&self, kind: Kind, msg: &dyn Display) -> Option<String> {
        let shown = match kind {
            Kind::Warning => true,
            Kind::Info => self.level >= Level::Normal,
            Kind::Verbose => self.level >= Level::Verbose,
            Kind::Debug => self.level >= Level::Debug,
        };
        shown.then(|| format!("{}: {msg}", self.tool))
    }

    fn emit(&self, kind: Kind, msg: &dyn Display) {
        if let Some(line) = self.format(kind, msg) {
            eprintln!("{line}");
        }
    }

    /// Reports trouble: always printed.
    pub fn warn(&self, msg: impl Display) {
        self.emit(Kind::Warning, &msg);
    }

    /// Reports a summary: not printed with `--quiet`.
    pub fn info(&self, msg: impl Display) {
        self.emit(Kind::Info, &msg);
    }

    /// Reports a step: printed with `-v`.
    pub fn verbose(&self, msg: impl Display) {
        self.emit(Kind::Verbose, &msg);
    }

    /// Reports a detail: printed with `-vv`.
    pub fn debug(&self, msg: impl Display) {
        self.emit(Kind::Debug, &msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_shows_only_trouble_and_verbose_adds_steps() {
        let quiet = Reporter::new("pysk-test", Level::Quiet);
        assert_eq!(
            quiet
                .format(Kind::Warning, &"host a: unreachable")
                .as_deref(),
            Some("pysk-test: host a: unreachable")
        );
        assert_eq!(quiet.format(Kind::Info, &"3 files"), None);
        let normal = Reporter::new("pysk-test", Level::Normal);
        assert!(normal.format(Kind::Info, &"3 files").is_some());
        assert_eq!(normal.format(Kind::Verbose, &"step"), None);
        let verbose = Reporter::new("pysk-test", Level::Verbose);
        assert!(verbose.format(Kind::Verbose, &"step").is_some());
        assert_eq!(verbose.format(Kind::Debug, &"detail"), None);
        assert!(!quiet.progress_allowed());
    }

    #[test]
    fn json_documents_start_with_their_version() {
        #[derive(Serialize)]
        struct Summary {
            files: u32,
            vhosts: Vec<&'static str>,
        }
        let doc = json(&Summary {
            files: 2,
            vhosts: vec!["a.example"],
        })
        .expect("serializes");
        assert_eq!(
            doc,
            "{\n  \"version\": 1,\n  \"files\": 2,\n  \"vhosts\": [\n    \"a.example\"\n  ]\n}"
        );
    }
}
