//! Where a new account's password comes from: a file only its owner may
//! read (`--password-file`), or a new random one (`--generate-password`)
//! made in memory and written once, mode 0600, only when the run is
//! about to apply a plan that uses it — a run refused on the way writes
//! nothing. The password is never printed and never put on a command
//! line.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pysk_common::error::write_err;
use pysk_common::secret::Secret;

use crate::error::DbError;

/// Random bytes of a generated password (URL-safe base64: 24
/// characters, 144 bits).
const GENERATED_BYTES: usize = 18;

/// A new account's password, and where it is to be written when it was
/// generated here.
#[derive(Debug, Clone)]
pub struct Password {
    /// The password.
    pub secret: Secret,
    /// `--generate-password`'s file, written by [`Password::keep`].
    pub generated: Option<PathBuf>,
}

impl Password {
    /// Writes a generated password to its file, which must still not
    /// exist: the whole file appears at once (a private temporary file
    /// hard-linked to the name, which fails rather than replace a file
    /// made meanwhile). Nothing to do for a password read from a file.
    pub fn keep(&self) -> Result<(), DbError> {
        let Some(out) = &self.generated else {
            return Ok(());
        };
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = dir.join(format!(".pysk-db-password.{}", std::process::id()));
        let written = write_private(&tmp, self.secret.expose());
        let linked = written.and_then(|()| {
            fs::hard_link(&tmp, out).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => exists(out),
                _ => write_err(out)(e).into(),
            })
        });
        let _ = fs::remove_file(&tmp);
        linked?;
        pysk_common::atomic::sync_dir(dir).map_err(write_err(dir))?;
        Ok(())
    }
}

/// Writes `text` and a newline to a new file of mode 0600, synced.
fn write_private(path: &Path, text: &str) -> Result<(), DbError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err(path))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err(path))?;
    Ok(())
}

/// The refusal of a `--generate-password` file that exists.
fn exists(out: &Path) -> DbError {
    DbError::Conflict(format!(
        "{} exists: give it as --password-file",
        out.display()
    ))
}

/// A new random password for `out`, made in memory; `out` must not
/// exist (a password is written once, and an earlier one is given back
/// with `--password-file`).
fn generate(out: &Path) -> Result<Password, DbError> {
    use base64::Engine;
    if fs::symlink_metadata(out).is_ok() {
        return Err(exists(out));
    }
    let mut bytes = [0u8; GENERATED_BYTES];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(pysk_common::error::read_err("/dev/urandom"))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(Password {
        secret: Secret::from(text),
        generated: Some(out.to_owned()),
    })
}

/// The password in `path`, refused when others may read the file (exit
/// 77) or when it is empty (exit 65): an empty password is no password.
pub fn read(path: &Path) -> Result<Secret, DbError> {
    let password = pysk_common::secret::read_file(path)?;
    if password.expose().is_empty() {
        return Err(DbError::Conflict(format!(
            "the password file {} is empty",
            path.display()
        )));
    }
    Ok(password)
}

/// `--password-file`'s password, or a new one for `--generate-password`'s
/// file.
pub fn from_options(file: Option<&Path>, generate_to: Option<&Path>) -> Result<Password, DbError> {
    match (file, generate_to) {
        (Some(file), _) => Ok(Password {
            secret: read(file)?,
            generated: None,
        }),
        (None, Some(out)) => generate(out),
        (None, None) => Err(pysk_common::Error::option(
            "--password-file",
            "either it or --generate-password is needed",
        )
        .into()),
    }
}
