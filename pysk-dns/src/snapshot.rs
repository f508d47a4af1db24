//! The state directory: the last good document of every server, kept so
//! that a server that cannot be reached never takes its zones with it.
//!
//! ```text
//! <state>/snapshots/<server>.json   {"fetched": <unix time>, "document": {…}}
//! <state>/serials.json              see serial.rs
//! <state>/.lock                     one fetch or build at a time
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::Document;
use pysk_common::atomic::{self, Options};
use pysk_common::error::{read_err, write_err};

use crate::error::DnsError;

/// A server's last good document and when it was fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the epoch of the last successful fetch.
    pub fetched: u64,
    /// The document, as validated then.
    pub document: Document,
}

impl Snapshot {
    /// How long ago it was fetched, as of `now` (seconds since the epoch,
    /// from `pysk_common::date::unix_now`).
    pub fn age(&self, now: u64) -> Duration {
        Duration::from_secs(now.saturating_sub(self.fetched))
    }
}

/// Where `server`'s snapshot lives.
pub fn path(state_dir: &Path, server: &str) -> PathBuf {
    dir(state_dir).join(format!("{server}.json"))
}

/// Where a damaged snapshot at `path` is set aside at `now` (seconds
/// since the epoch): `<server>.json.damaged-<now>`.
pub fn aside_path(path: &Path, now: u64) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".damaged-{now}"));
    path.with_file_name(name)
}

/// Reads `server`'s snapshot; `None` when it has none yet. A snapshot that
/// does not parse is [`DnsError::State`]: pysk-dns wrote it, so something
/// else broke it; `fetch` and `build` set that server aside (its zones
/// keep their files) and go on with the others.
pub fn load(state_dir: &Path, server: &str) -> Result<Option<Snapshot>, DnsError> {
    let path = path(state_dir, server);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(path)(e).into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| DnsError::State {
            path,
            reason: e.to_string(),
        })
}

/// The directory of the snapshots in `state_dir`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("snapshots")
}

/// Replaces `server`'s snapshot atomically.
pub fn save(state_dir: &Path, server: &str, snapshot: &Snapshot) -> Result<(), DnsError> {
    let path = path(state_dir, server);
    let dir = dir(state_dir);
    fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let mut bytes = serde_json::to_vec(snapshot)
        .map_err(|e| pysk_common::Error::Internal(format!("a snapshot does not serialize: {e}")))?;
    bytes.push(b'\n');
    let options = Options {
        mode: Some(0o640),
        ..Options::default()
    };
    atomic::replace(&path, &bytes, options)?;
    Ok(())
}

/// An age the way an admin reads it: `3 d 4 h`, `2 h 5 min`, `40 s`.
pub fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(Duration::from_secs(42)), "42 s");
        assert_eq!(human_age(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(
            human_age(Duration::from_secs(3 * 86400 + 4 * 3600)),
            "3 d 4 h"
        );
    }
}
