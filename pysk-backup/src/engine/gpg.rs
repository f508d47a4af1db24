//! GnuPG's private home for duplicity: `<state>/gnupg`, mode 0700, so no
//! other program's keys or agent are used; and the guard that stops the
//! `gpg-agent` each duplicity call starts there, so none outlives the
//! run.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::BackupError;

/// The private GnuPG home directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// `<state>/gnupg`, made (or reset) to mode 0700.
    pub fn open(state_dir: &Path) -> Result<Home, BackupError> {
        let dir = state_dir.join("gnupg");
        private_dir(&dir)?;
        Ok(Home { dir })
    }

    /// The directory, for `GNUPGHOME`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A guard that stops this home's agent when dropped.
    pub fn agent_guard(&self) -> AgentGuard<'_> {
        AgentGuard { home: self }
    }
}

/// Runs `gpgconf --kill all` for its home when dropped: after every
/// duplicity call, whether it succeeded or not.
#[derive(Debug)]
pub struct AgentGuard<'a> {
    home: &'a Home,
}

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        // Nothing to report when it fails: with no agent running there is
        // nothing to stop, and a missing gpgconf means no gpg started one.
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env_clear()
            .env("PATH", path)
            .env("GNUPGHOME", self.home.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Makes `dir` (and its parents) and sets it to mode 0700.
pub fn private_dir(dir: &Path) -> Result<(), BackupError> {
    let write_err = |source| pysk_common::Error::Write {
        path: dir.to_owned(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_err)?;
    Ok(())
}
