//! GnuPG's private home for duplicity: `<state>/gnupg`, mode 0700, so no
//! other program's keys or agent are used; and its `gpg-agent`, which
//! the tool starts itself from a clean environment (an agent that gpg
//! started would inherit duplicity's, the passphrase with it) before the
//! first duplicity call of a command and stops when the engine is done,
//! so none outlives the run.

use std::cell::Cell;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::BackupError;

/// The private GnuPG home directory.
#[derive(Debug)]
pub struct Home {
    dir: PathBuf,
    /// Whether this home's agent was started (and is to be stopped).
    agent: Cell<bool>,
}

impl Home {
    /// `<state>/gnupg`, made (or reset) to mode 0700.
    pub fn open(state_dir: &Path) -> Result<Home, BackupError> {
        let dir = state_dir.join("gnupg");
        private_dir(&dir)?;
        Ok(Home {
            dir,
            agent: Cell::new(false),
        })
    }

    /// The directory, for `GNUPGHOME`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts this home's agent with a clean environment, once: later
    /// calls find it running. When it cannot start, gpg starts one
    /// itself: the backup still works, and [`Home::stop_agent`] still
    /// stops it.
    pub fn start_agent(&self) {
        if !self.agent.replace(true) {
            let _ = self.gpgconf(&["--launch", "gpg-agent"]);
        }
    }

    /// Stops this home's agent (`gpgconf --kill all`) if one was started.
    pub fn stop_agent(&self) {
        // Nothing to report when it fails: with no agent running there is
        // nothing to stop, and a missing gpgconf means no gpg started one.
        if self.agent.replace(false) {
            let _ = self.gpgconf(&["--kill", "all"]);
        }
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

impl Drop for Home {
    fn drop(&mut self) {
        self.stop_agent();
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
