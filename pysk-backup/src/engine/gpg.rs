//! GnuPG's private home for duplicity: `<state>/gnupg`, mode 0700, so no
//! other program's keys or agent are used; and the guard around each
//! duplicity call: it starts that home's `gpg-agent` itself, from a clean
//! environment (an agent that gpg started would inherit duplicity's, the
//! passphrase with it), and stops it afterwards, so none outlives the
//! run.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

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

    /// Starts this home's agent with a clean environment; the guard
    /// stops it when dropped.
    pub fn agent_guard(&self) -> AgentGuard<'_> {
        // When it cannot start, gpg starts one itself: the backup still
        // works, and the guard still stops it.
        let _ = self.gpgconf(&["--launch", "gpg-agent"]);
        AgentGuard { home: self }
    }

    /// Runs `gpgconf ARGS` for this home, with nothing but `PATH`, `LANG`
    /// and `GNUPGHOME` in its environment.
    fn gpgconf(&self, args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
        crate::child::command("gpgconf")
            .args(args)
            .env("GNUPGHOME", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
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
        // Nothing to report when it fails: with no agent running there is
        // nothing to stop, and a missing gpgconf means no gpg started one.
        let _ = self.home.gpgconf(&["--kill", "all"]);
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
