//! Where a new account's password comes from: a file only its owner may
//! read (`--password-file`), or a new random one (`--generate-password`)
//! made in memory and written once, mode 0600, only when the run is
//! about to apply a plan that uses it — a run refused on the way writes
//! nothing; once written, the file is the password of later runs. The password is never printed and never put on a command
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
    /// `--generate-password`'s file, to be written by [`Password::keep`]
    /// (`None` when the password was read from a file).
    pub generated: Option<PathBuf>,
    /// Read from `--generate-password`'s file, written by an earlier run:
    /// the password of that run's account, never to be put on another.
    pub reused: bool,
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
        // A name no other run can hold: a run killed before it removed
        // its temporary file must not block the next one with that pid.
        let tmp = dir.join(format!(".pysk-db-password.{}", random_suffix()?));
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

/// Sixteen random hex digits, for a temporary file's name.
fn random_suffix() -> Result<String, DbError> {
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(pysk_common::error::read_err("/dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

/// The password of `--generate-password OUT`: the one written to OUT by
/// an earlier run when OUT exists (so a second run finds nothing to
/// change), else a new random one made in memory, to be written by
/// [`Password::keep`].
fn generate(out: &Path) -> Result<Password, DbError> {
    use base64::Engine;
    if fs::symlink_metadata(out).is_ok() {
        return Ok(Password {
            secret: read(out)?,
            generated: None,
            reused: true,
        });
    }
    let mut bytes = [0u8; GENERATED_BYTES];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(pysk_common::error::read_err("/dev/urandom"))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(Password {
        secret: Secret::from(text),
        generated: Some(out.to_owned()),
        reused: false,
    })
}

/// The password in `path`: its one line, without the newline (spaces
/// count). Refused when others may read the file (exit 77), and when it
/// is empty or holds another line, a carriage return or any other
/// control character (exit 65): such a password is a slip nobody could
/// type.
pub fn read(path: &Path) -> Result<Secret, DbError> {
    let password = pysk_common::secret::read_file(path)?;
    let text = password.expose();
    let why = if text.is_empty() {
        "is empty"
    } else if text.chars().any(char::is_control) {
        "holds a line break or another control character (one line is the password)"
    } else {
        return Ok(password);
    };
    Err(DbError::Conflict(format!(
        "the password file {} {why}",
        path.display()
    )))
}

/// `--password-file`'s password, or a new one for `--generate-password`'s
/// file.
pub fn from_options(file: Option<&Path>, generate_to: Option<&Path>) -> Result<Password, DbError> {
    match (file, generate_to) {
        (Some(file), _) => Ok(Password {
            secret: read(file)?,
            generated: None,
            reused: false,
        }),
        (None, Some(out)) => generate(out),
        (None, None) => Err(pysk_common::Error::option(
            "--password-file",
            "either it or --generate-password is needed",
        )
        .into()),
    }
}
