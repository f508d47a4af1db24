//! Secrets: passwords and passphrases, from files only their owner can
//! read; never from argv or the environment (both are visible to other
//! processes of the same user, and the environment to every child).
//!
//! A [`Secret`] never prints its content: its `Debug` shows `***` and it has
//! no `Display`, so it cannot end up in a log line or an error message by
//! accident.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::Error;

/// A password or passphrase.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for handing to the library that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    /// A secret made by the tool itself (a generated password).
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads a secret from `path`, refusing a file that its group or others may
/// read or write (exit 77, naming the file and its mode), and stripping one
/// trailing newline.
pub fn read_file(path: &Path) -> Result<Secret, Error> {
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_err)?;
    if meta.mode() & 0o077 != 0 {
        return Err(Error::SecretExposed {
            path: path.to_owned(),
            mode: meta.mode(),
        });
    }
    let bytes = fs::read(path).map_err(read_err)?;
    let mut text = String::from_utf8(bytes).map_err(|_| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "secret is not valid UTF-8",
        ))
    })?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(Secret(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{self, ToolError};
    use std::os::unix::fs::PermissionsExt;

    fn secret_file(dir: &Path, content: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("password");
        fs::write(&path, content).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn reads_an_owner_only_file_and_strips_one_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = secret_file(dir.path(), "s3cret pass\n\n", 0o600);
        assert_eq!(read_file(&path).expect("read").expose(), "s3cret pass\n");
        let path = secret_file(dir.path(), "no-newline", 0o400);
        assert_eq!(read_file(&path).expect("read").expose(), "no-newline");
    }

    #[test]
    fn refuses_group_or_world_readable_file_without_echoing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for mode in [0o640, 0o604, 0o660, 0o644] {
            let path = secret_file(dir.path(), "hunter2\n", mode);
            let err = read_file(&path).expect_err("exposed");
            assert_eq!(err.exit_code(), exit::NOPERM);
            let msg = err.to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("mode {mode:04o}")), "{msg}");
            assert!(!msg.contains("hunter2"));
            assert!(!format!("{err:?}").contains("hunter2"));
        }
    }

    #[test]
    fn debug_never_shows_the_secret_and_missing_file_is_noinput() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = secret_file(dir.path(), "hunter2", 0o600);
        let secret = read_file(&path).expect("read");
        assert_eq!(format!("{secret:?}"), "***");
        let err = read_file(&dir.path().join("missing")).expect_err("missing");
        assert_eq!(err.exit_code(), exit::NOINPUT);
    }
}
