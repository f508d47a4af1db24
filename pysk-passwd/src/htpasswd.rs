//! `htpasswd`: `name:hash` for each user that is not locked, FTP accounts
//! left out, for the panel's web login. The database is validated as for
//! a sync, except against a root's files.
//!
//! Without `--output` the lines are the data asked for, on stdout. With
//! `--output FILE` the file is replaced atomically and what changed is
//! reported per user on stderr; `--dry-run` prints that instead and
//! writes nothing; `--json` prints the summary document instead (with
//! `"dry_run": true` in a dry run). Hashes are never shown in any of them.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pysk_common::atomic::{self, Written};
use pysk_common::error::read_err;
use pysk_common::exit::Outcome;
use pysk_common::report::{Reporter, print_json};

use crate::database;
use crate::error::PasswdError;
use crate::plan::{Changes, Policy, changes};
use crate::summary::HtpasswdSummary;
use crate::sync::{print, validated};
use crate::validate::{Account, Rules};

/// What `htpasswd` reads and writes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The user database, or `-` for stdin.
    pub users: PathBuf,
    /// The file to replace; `None`: stdout.
    pub output: Option<PathBuf>,
    /// Print what would change in `output`; write nothing.
    pub dry_run: bool,
    /// Print the summary of the change to `output` as the `--json`
    /// document.
    pub json: bool,
    /// The switches the database is validated with.
    pub policy: Policy,
}

/// Runs `htpasswd`: the lines on stdout, or `--output` replaced (or,
/// with `--dry-run`, compared) and what changed reported.
pub fn run(
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<Outcome, PasswdError> {
    let (db, origin) = database::load(&options.users)?;
    let rules = Rules {
        uids: &options.policy.uids,
        ftp_shell: &options.policy.ftp_shell,
        shells: None::<&BTreeSet<String>>,
        taken: &HashSet::new(),
    };
    let text = lines(&validated(&db, &origin, &rules, report)?);
    let Some(path) = &options.output else {
        print(out, &text)?;
        return Ok(Outcome::Success);
    };
    let changes = changes_in(path, &text)?;
    let written = !options.dry_run && write(path, &text)?;
    if options.json {
        print_json(&HtpasswdSummary {
            dry_run: options.dry_run,
            path: path.display().to_string(),
            written,
            changes,
        })?;
    } else if options.dry_run {
        let said: String = said(path, changes).map(|l| format!("{l}\n")).collect();
        print(out, &said)?;
    } else {
        said(path, changes).for_each(|line| report.info(line));
    }
    Ok(Outcome::Success)
}

/// The `name:hash` lines of the users that are not locked.
fn lines(accounts: &[Account]) -> String {
    accounts
        .iter()
        .filter(|a| a.owner.is_none() && !a.hash.starts_with(['!', '*']))
        .map(|a| format!("{}:{}\n", a.name, a.hash))
        .collect()
}

/// Replaces `path` with `text`: whether it was written (not when it held
/// that already). A new file is not world-readable; an existing one keeps
/// its mode and owner.
fn write(path: &Path, text: &str) -> Result<bool, PasswdError> {
    let write = atomic::Options {
        mode: (!path.exists()).then_some(0o640),
        ..atomic::Options::default()
    };
    let written = atomic::replace(path, text.as_bytes(), write)?;
    Ok(matches!(written, Written::Replaced))
}

/// The users that replacing `path` with `text` adds, changes (their hash)
/// and removes; a missing file is an empty one.
fn changes_in(path: &Path, text: &str) -> Result<Changes, PasswdError> {
    let old = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read_err(path)(e).into()),
    };
    Ok(changes(&old, text.as_bytes(), |_| true))
}

/// `changes` to `path` as the report says them, one line per user:
/// `<path>: <name>: added`, `changed` or `removed`.
fn said(path: &Path, changes: Changes) -> impl Iterator<Item = String> {
    let shown = path.display().to_string();
    [
        (changes.added, "added"),
        (changes.changed, "changed"),
        (changes.removed, "removed"),
    ]
    .into_iter()
    .flat_map(move |(names, what)| {
        let shown = shown.clone();
        names
            .into_iter()
            .map(move |n| format!("{shown}: {n}: {what}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_users_and_never_show_a_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "alice:$1$old\nbob:$1$same\ncarol:$1$gone\n").expect("write");
        let text = "bob:$1$same\nalice:$1$new\ndave:$1$x\n";
        let said: Vec<String> = said(&path, changes_in(&path, text).expect("read")).collect();
        let p = path.display();
        assert_eq!(
            said,
            [
                format!("{p}: dave: added"),
                format!("{p}: alice: changed"),
                format!("{p}: carol: removed"),
            ]
        );
        assert!(!said.concat().contains('$'));
        let fresh = changes_in(&dir.path().join("new"), "a:$1$x\n").expect("missing is empty");
        assert_eq!(fresh.added, ["a"]);
    }
}
