//! Where `fetch` and `build` work: the inventory, the state directory
//! (see [`crate::snapshot`] for its layout), and the lock that keeps one
//! fetch or build at a time in it.

use std::path::PathBuf;
use std::time::Duration;

use pysk_common::error::write_err;
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
    /// Loads the inventory, makes the state directory and takes its lock,
    /// which is held until the returned [`Lock`] is dropped.
    pub fn open(&self) -> Result<(Inventory, Lock), DnsError> {
        let inventory = Inventory::load(&self.hosts)?;
        std::fs::create_dir_all(&self.dir).map_err(write_err(&self.dir))?;
        let lock = Lock::acquire(&self.dir.join(".lock"), self.wait)?;
        Ok((inventory, lock))
    }
}
