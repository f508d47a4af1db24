//! Where a new account's password comes from: a file only its owner may
//! read (`--password-file`), or a new random one written once to a file
//! of mode 0600 (`--generate-password`), for both servers alike. The
//! password is never printed and never put on a command line.

use std::path::Path;

use pysk_common::secret::Secret;

use crate::error::DbError;

/// Random bytes of a generated password (URL-safe base64: 24
/// characters, 144 bits).
const GENERATED_BYTES: usize = 18;

/// A new random password; written to `out` (mode 0600, atomically) unless
/// `dry_run`. `out` must not exist: a password is written once, and an
/// earlier one is given back with `--password-file`.
pub fn generate(out: &Path, dry_run: bool) -> Result<Secret, DbError> {
    use base64::Engine;
    if out.exists() {
        return Err(DbError::Conflict(format!(
            "{} exists: give it as --password-file",
            out.display()
        )));
    }
    let mut bytes = [0u8; GENERATED_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(pysk_common::error::read_err("/dev/urandom"))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    if !dry_run {
        let private = pysk_common::atomic::Options {
            mode: Some(0o600),
            ..pysk_common::atomic::Options::default()
        };
        pysk_common::atomic::replace(out, format!("{text}\n").as_bytes(), private)?;
    }
    Ok(Secret::from(text))
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

/// `--password-file`'s password, or a new one written to
/// `--generate-password`'s file (not for a dry run, which writes nothing).
pub fn from_options(
    file: Option<&Path>,
    generate_to: Option<&Path>,
    dry_run: bool,
) -> Result<Secret, DbError> {
    match (file, generate_to) {
        (Some(file), _) => read(file),
        (None, Some(out)) => generate(out, dry_run),
        (None, None) => Err(pysk_common::Error::option(
            "--password-file",
            "either it or --generate-password is needed",
        )
        .into()),
    }
}
