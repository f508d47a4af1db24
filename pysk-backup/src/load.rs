//! Loading a dump into a server — a throw-away one of the drill's or the
//! production server for `restore-db` — through the server's own client
//! (`psql`, `pg_restore`, `mariadb`), the dump fed on its stdin by this
//! process (so the client's account needs no access to the file), and
//! counting the tables afterwards, as the dump counted them. [`pg`] and
//! [`mysql`] hold each server's part.

pub mod mysql;
pub mod pg;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::Serialize;

use crate::child::Child;
use crate::error::BackupError;

/// Runs `client` with everything `input` gives on its stdin (stdout
/// discarded): its stderr when it exited with 0, else why it failed
/// ([`crate::child::Finished::verdict`]).
pub fn feed(client: Child, mut input: impl Read) -> Result<String, String> {
    let mut running = client
        .piped_input()
        .no_output()
        .spawn()
        .map_err(|e| e.to_string())?;
    let fed = running
        .child
        .stdin
        .take()
        .map(|mut stdin| copy_into(&mut input, &mut stdin));
    let done = running.wait().map_err(|e| e.to_string())?;
    match (done.ok(), fed) {
        (false, _) => Err(done.verdict().err().unwrap_or_default()),
        (true, Some(Err(InputError(e)))) => Err(format!("reading the dump: {e}")),
        (true, _) => Ok(done.stderr),
    }
}

/// A failure to read the input (a pipe the client closed is none).
struct InputError(String);

/// Copies `input` into the client's stdin until its end, or until the
/// client stops reading (its exit status then says why); the pipe is
/// closed at the end.
fn copy_into(input: &mut impl Read, stdin: &mut impl Write) -> Result<(), InputError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InputError(pysk_common::error::cause(&e))),
        };
        if stdin.write_all(&buf[..n]).is_err() {
            return Ok(());
        }
    }
}

/// Rows per table, keyed as in the manifest.
pub type Counts = BTreeMap<String, u64>;

/// A table whose rows differ from what the manifest records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Differs {
    /// The table, as the manifest names it.
    pub table: String,
    /// The rows recorded (`None`: the table is not in the manifest).
    pub recorded: Option<u64>,
    /// The rows restored (`None`: the table was not restored).
    pub restored: Option<u64>,
}

/// How far a restored count may be from the recorded one: nothing for an
/// `exact` count; for an `estimate`, 2 % of the count or 10 rows,
/// whichever is more.
pub fn tolerance(recorded: u64, estimate: bool) -> u64 {
    match estimate {
        false => 0,
        true => recorded.div_ceil(50).max(10),
    }
}

/// The tables whose restored rows differ from the recorded ones beyond
/// the [`tolerance`], and those only one side has.
pub fn compare(recorded: &Counts, restored: &Counts, estimate: bool) -> Vec<Differs> {
    let mut names: Vec<&String> = recorded.keys().chain(restored.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|table| {
            let (want, got) = (recorded.get(table).copied(), restored.get(table).copied());
            let fits = match (want, got) {
                (Some(w), Some(g)) => w.abs_diff(g) <= tolerance(w, estimate),
                _ => false,
            };
            (!fits).then(|| Differs {
                table: table.clone(),
                recorded: want,
                restored: got,
            })
        })
        .collect()
}

/// A failure of a server's client or session in a restore, as the
/// step's error.
pub fn failed(step: &str, reason: String) -> BackupError {
    BackupError::Failed {
        step: step.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_may_differ_by_two_percent_or_ten_rows_exact_counts_not_at_all() {
        assert_eq!(tolerance(100, true), 10);
        assert_eq!(tolerance(1000, true), 20);
        assert_eq!(tolerance(1001, true), 21);
        assert_eq!(tolerance(1000, false), 0);
        let counts = |pairs: &[(&str, u64)]| -> Counts {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let recorded = counts(&[("a", 1000), ("b", 5), ("gone", 1)]);
        let restored = counts(&[("a", 1020), ("b", 16), ("new", 0)]);
        let differs = |t: &str, r, g| Differs {
            table: t.into(),
            recorded: r,
            restored: g,
        };
        assert_eq!(
            compare(&recorded, &restored, true),
            [
                differs("b", Some(5), Some(16)),
                differs("gone", Some(1), None),
                differs("new", None, Some(0)),
            ]
        );
        assert_eq!(
            compare(&recorded, &restored, false)[0],
            differs("a", Some(1000), Some(1020))
        );
        assert!(compare(&recorded, &recorded, false).is_empty());
    }

    #[test]
    fn a_client_is_judged_by_its_exit_status_and_quoted() {
        let sh = |script: &str| crate::child::program("sh", None).args(["-c", script]);
        assert_eq!(
            feed(sh("wc -c; echo said >&2"), &b"12345"[..]),
            Ok("said\n".to_owned())
        );
        assert_eq!(
            feed(sh("echo one >&2; echo two >&2; exit 3"), io::empty()),
            Err("sh exited with 3: one / two".to_owned())
        );
    }
}
