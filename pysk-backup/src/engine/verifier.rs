//! The record of the passphrase a duplicity chain was made with:
//! `<state>/passphrase.verifier` (0600), written when a chain is started,
//! holding a PBKDF2-HMAC-SHA256 hash of the passphrase with a random salt
//! (never the passphrase). duplicity encrypts an incremental with
//! whatever passphrase it is given, working from its local signatures, so
//! without this check a changed passphrase file would add sets that
//! neither passphrase restores. Removing the file lets the next run start
//! a new chain with the passphrase of the day.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::BackupError;

/// PBKDF2 rounds: a guess costs about as much as this many hashes.
const ROUNDS: u32 = 600_000;
/// The first word of the file, naming the scheme.
const SCHEME: &str = "pbkdf2-sha256";

/// What the check of a passphrase found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No record: no chain was started by this machine (or the admin
    /// removed it to start a new one).
    Missing,
    /// The passphrase is the chain's.
    Matches,
}

/// The file: `<state>/passphrase.verifier`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("passphrase.verifier")
}

/// Checks `passphrase` against the record; another passphrase is
/// `Denied` (77).
pub fn check(state_dir: &Path, passphrase: &[u8]) -> Result<Found, BackupError> {
    let file = path(state_dir);
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(source) => return Err(pysk_common::Error::Read { path: file, source }.into()),
    };
    let unreadable = || BackupError::Failed {
        step: "checking the passphrase".to_owned(),
        reason: format!(
            "{} is not a passphrase record; remove it to start a new chain",
            file.display()
        ),
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let [SCHEME, rounds, salt, hash] = words[..] else {
        return Err(unreadable());
    };
    let rounds: u32 = rounds.parse().map_err(|_| unreadable())?;
    let (salt, want) = (
        unhex(salt).ok_or_else(unreadable)?,
        unhex(hash).ok_or_else(unreadable)?,
    );
    // In constant time: how much of the hash matches tells nothing.
    let derived = derive(passphrase, &salt, rounds);
    match bool::from(derived[..].ct_eq(&want[..])) {
        true => Ok(Found::Matches),
        false => Err(BackupError::Denied(format!(
            "the chain on the target was made with another passphrase ({} records it); \
             put that passphrase back, or remove {} to start a new chain with this one",
            file.display(),
            file.display()
        ))),
    }
}

/// Records `passphrase` as the chain's: a fresh salt, the file written
/// (0600) and renamed into place.
pub fn record(state_dir: &Path, passphrase: &[u8]) -> Result<(), BackupError> {
    let file = path(state_dir);
    let write_err = |source| pysk_common::Error::Write {
        path: file.clone(),
        source,
    };
    let mut salt = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|source| pysk_common::Error::Read {
            path: "/dev/urandom".into(),
            source,
        })?;
    let line = format!(
        "{SCHEME} {ROUNDS} {} {}\n",
        hex(&salt),
        hex(&derive(passphrase, &salt, ROUNDS))
    );
    let new = file.with_extension("verifier.new");
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&new)
        .map_err(write_err)?;
    out.write_all(line.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(write_err)?;
    fs::rename(&new, &file).map_err(write_err)?;
    Ok(())
}

/// PBKDF2-HMAC-SHA256 of `passphrase`, 32 bytes.
fn derive(passphrase: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(passphrase, salt, rounds, &mut key);
    key
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hexadecimal; `None` when it is not.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    digits.len().is_multiple_of(2).then_some(())?;
    let pair = |p: &[u8]| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok();
    digits.chunks(2).map(pair).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_passphrase_matches_and_another_is_denied() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(check(dir.path(), b"one").expect("missing"), Found::Missing);
        record(dir.path(), b"one").expect("record");
        assert_eq!(check(dir.path(), b"one").expect("matches"), Found::Matches);
        let err = check(dir.path(), b"two").expect_err("another passphrase");
        assert!(matches!(err, BackupError::Denied(_)), "{err}");
        let text = fs::read_to_string(path(dir.path())).expect("read");
        assert!(
            text.starts_with("pbkdf2-sha256 600000 ") && !text.contains("one"),
            "{text}"
        );
    }
}
