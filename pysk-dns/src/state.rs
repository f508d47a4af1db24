//! Where `fetch` and `build` work: the inventory, the state directory
//! (see [`crate::snapshot`] for its layout), and the lock that keeps one
//! fetch or build at a time in it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use pysk_common::atomic;
use pysk_common::error::{read_err, write_err};
use pysk_common::inventory::Inventory;
use pysk_common::lock::Lock;

use crate::error::DnsError;

/// The inventory and state directory of a run, as resolved by
/// [`crate::settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The inventory of managed servers.
    pub hosts: PathBuf,
    /// Snapshots, serials and the lock.
    pub dir: PathBuf,
    /// How long to wait for another run's lock.
    pub wait: Duration,
}

impl Location {
    /// The state directory's lock file.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    /// Loads the inventory, makes the state directory and takes its lock,
    /// which is held until the returned [`Lock`] is dropped.
    pub fn open(&self) -> Result<(Inventory, Lock), DnsError> {
        let inventory = Inventory::load(&self.hosts)?;
        std::fs::create_dir_all(&self.dir).map_err(write_err(&self.dir))?;
        let lock = Lock::acquire(&self.lock_file(), self.wait)?;
        Ok((inventory, lock))
    }

    /// For a dry run, which creates nothing: loads the inventory and takes
    /// the lock only when its file already exists (waiting for it as a
    /// real run would). Without one, nothing is locked and the run plans
    /// against what is there (an absent state directory: no state yet).
    pub fn open_to_look(&self) -> Result<(Inventory, Option<Lock>), DnsError> {
        let inventory = Inventory::load(&self.hosts)?;
        let lock = Lock::existing(&self.lock_file(), self.wait)?;
        Ok((inventory, lock))
    }
}

/// The directories a build writes in, where a killed run's temporary
/// files are cleared at the start of the next: the zone directory, the
/// include's, the state directory and its snapshots (which `fetch` writes
/// under the same lock).
pub fn written_dirs(options: &crate::build::Options) -> [PathBuf; 4] {
    [
        options.zone_dir.clone(),
        options
            .include
            .parent()
            .unwrap_or(Path::new("."))
            .to_owned(),
        options.state_dir.clone(),
        crate::snapshot::dir(&options.state_dir),
    ]
}

/// A JSON file pysk-dns keeps in its state directory (`serials.json`,
/// `owners.json`): its content, or the empty value when there is none
/// yet; a file that does not parse is damaged state (exit 65).
pub fn load_json<T: DeserializeOwned + Default>(path: PathBuf) -> Result<T, DnsError> {
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DnsError::State {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(read_err(path)(e).into()),
    }
}

/// The text of a state file holding `value` (`what` names it in a fault):
/// what [`save_json`] writes, and what `build --dry-run` diffs.
pub fn json_text<T: Serialize>(value: &T, what: &str) -> Result<String, DnsError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| pysk_common::Error::Internal(format!("the {what} do not serialize: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// Replaces the state file at `path` with `value` atomically (nothing is
/// written when it already holds this).
pub fn save_json<T: Serialize>(path: &Path, value: &T, what: &str) -> Result<(), DnsError> {
    let text = json_text(value, what)?;
    atomic::replace(path, text.as_bytes(), atomic::Options::default())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pysk_common::exit::{self, ToolError};

    fn location(dir: &std::path::Path) -> Location {
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, "web1.example.net 192.0.2.1\n").expect("hosts");
        Location {
            hosts,
            dir: dir.join("state"),
            wait: Duration::ZERO,
        }
    }

    #[test]
    fn a_dry_run_creates_nothing_and_locks_only_an_existing_lock_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let location = location(tmp.path());
        let (inventory, lock) = location.open_to_look().expect("looks");
        assert_eq!(inventory.hosts.len(), 1);
        assert!(lock.is_none());
        assert!(!location.dir.exists(), "no state directory made");
        std::fs::create_dir(&location.dir).expect("mkdir");
        let (_, lock) = location.open_to_look().expect("looks");
        assert!(lock.is_none());
        assert!(!location.lock_file().exists(), "no lock file made");

        let (_, held) = location.open().expect("a real run");
        assert!(location.lock_file().exists());
        let err = location.open_to_look().expect_err("held by the real run");
        assert_eq!(err.exit_code(), exit::TEMPFAIL);
        drop(held);
        let (_, lock) = location.open_to_look().expect("looks");
        assert!(lock.is_some(), "an existing lock file is taken");
    }
}
