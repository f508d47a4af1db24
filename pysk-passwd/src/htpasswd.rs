//! `htpasswd`: `name:hash` for each user that is not locked, FTP accounts
//! left out, for the panel's web login. The database is validated as for
//! a sync, except against a root's files.
//!
//! Without `--output` the lines are the data asked for, on stdout. With
//! `--output FILE` the file is replaced atomically and what changed is
//! reported per user on stderr; `--dry-run` prints that instead and
//! writes nothing. Hashes are never shown in either.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pysk_common::atomic;
use pysk_common::error::read_err;
use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::database;
use crate::error::PasswdError;
use crate::plan::{Policy, changes};
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
    /// The switches the database is validated with.
    pub policy: Policy,
}

/// Runs `htpasswd`.
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
        root: None,
    };
    let text = lines(&validated(&db, &origin, &rules, report)?);
    let Some(path) = &options.output else {
        print(out, &text)?;
        return Ok(Outcome::Success);
    };
    let said = changed(path, &text)?;
    if options.dry_run {
        print(
            out,
            &said.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )?;
        return Ok(Outcome::Success);
    }
    // A new file is not world-readable; an existing one keeps its mode and
    // owner.
    let mode = (!path.exists()).then_some(0o640);
    let write = atomic::Options {
        mode,
        ..atomic::Options::default()
    };
    atomic::replace(path, text.as_bytes(), write)?;
    for line in said {
        report.info(line);
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

/// What replacing `path` with `text` changes, one line per user:
/// `<path>: <name>: added`, `changed` (its hash) or `removed`.
fn changed(path: &Path, text: &str) -> Result<Vec<String>, PasswdError> {
    let old = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read_err(path)(e).into()),
    };
    let c = changes(&old, text.as_bytes(), |_| true);
    let shown = &path.display().to_string();
    Ok([
        (c.added, "added"),
        (c.changed, "changed"),
        (c.removed, "removed"),
    ]
    .into_iter()
    .flat_map(|(names, what)| {
        names
            .into_iter()
            .map(move |n| format!("{shown}: {n}: {what}"))
    })
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_users_and_never_show_a_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "alice:$1$old\nbob:$1$same\ncarol:$1$gone\n").expect("write");
        let said = changed(&path, "bob:$1$same\nalice:$1$new\ndave:$1$x\n").expect("read");
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
        let fresh = changed(&dir.path().join("new"), "a:$1$x\n").expect("missing is empty");
        assert_eq!(fresh.len(), 1);
    }
}
