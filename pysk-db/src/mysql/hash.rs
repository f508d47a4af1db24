//! MariaDB account hashes made on the client, so that the plaintext never
//! reaches the server, its general log or its processlist: the statement
//! carries only the hash, as a literal (the server takes no placeholder
//! there). Both hashes are deterministic, so a stored one is checked by
//! making it again and comparing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use curve25519_dalek::EdwardsPoint;
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// How accounts are made (`db_mysql_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// MariaDB's `ed25519` plugin (`auth_ed25519`).
    Ed25519,
    /// `mysql_native_password`: SHA-1 twice.
    Native,
}

impl Auth {
    /// The switch's value as an [`Auth`]; the error says what it takes.
    pub fn parse(text: &str) -> Result<Auth, String> {
        match text {
            "ed25519" => Ok(Auth::Ed25519),
            "mysql_native_password" => Ok(Auth::Native),
            _ => Err("not ed25519 or mysql_native_password".to_owned()),
        }
    }

    /// The plugin's name, as `mysql.user.plugin` holds it.
    pub fn plugin(self) -> &'static str {
        match self {
            Auth::Ed25519 => "ed25519",
            Auth::Native => "mysql_native_password",
        }
    }

    /// The stored form of `password` for this plugin.
    pub fn hash(self, password: &[u8]) -> String {
        match self {
            Auth::Ed25519 => ed25519(password),
            Auth::Native => native(password),
        }
    }

    /// Whether `text` has the form of this plugin's hash (43 base64
    /// characters; `*` and 40 upper-case hex digits), checked before it is
    /// written into a statement.
    pub fn well_formed(self, text: &str) -> bool {
        match self {
            Auth::Ed25519 => {
                text.len() == 43
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            }
            Auth::Native => {
                text.len() == 41
                    && text.starts_with('*')
                    && text[1..]
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            }
        }
    }

    /// The clause of `CREATE USER` / `ALTER USER` that sets `hash`.
    pub fn clause(self, hash: &str) -> String {
        match self {
            Auth::Ed25519 => format!("IDENTIFIED VIA ed25519 USING '{hash}'"),
            Auth::Native => format!("IDENTIFIED BY PASSWORD '{hash}'"),
        }
    }
}

/// The `ed25519` plugin's stored value: the Ed25519 public key of the
/// secret scalar SHA-512(password) (clamped), in base64 without padding —
/// what MariaDB's `auth_ed25519` computes from the password's bytes.
fn ed25519(password: &[u8]) -> String {
    let digest = Sha512::digest(password);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&digest[..32]);
    let point = EdwardsPoint::mul_base_clamped(scalar).compress();
    STANDARD_NO_PAD.encode(point.as_bytes())
}

/// `mysql_native_password`'s stored value: `*` and SHA1(SHA1(password)) in
/// upper-case hex.
fn native(password: &[u8]) -> String {
    let twice = Sha1::digest(Sha1::digest(password));
    let mut text = String::with_capacity(41);
    text.push('*');
    for byte in twice {
        text.push_str(&format!("{byte:02X}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashes_are_the_ones_mariadb_makes() {
        // MariaDB's own test suite, and values a MariaDB 10.11 server made
        // from `ref-only-Pw9` (USING PASSWORD(...) and IDENTIFIED BY).
        assert_eq!(
            Auth::Ed25519.hash(b""),
            "4LH+dBF+G5W2CKTyId8xR3SyDqZoQjUNUVNxx8aWbG4"
        );
        assert_eq!(
            Auth::Ed25519.hash(b"ref-only-Pw9"),
            "KGIANtHZdpa3Q/5hgiJVdAqd5tn3n5J1AH2PXjvnB3c"
        );
        assert_eq!(
            Auth::Native.hash(b"ref-only-Pw9"),
            "*DD65490CEDB91359AC76D68612F1F2184CC5EBD7"
        );
        for auth in [Auth::Ed25519, Auth::Native] {
            assert!(auth.well_formed(&auth.hash("pässwörd".as_bytes())));
            assert!(!auth.well_formed("abc' OR 1 --"));
        }
        assert!(!Auth::Native.well_formed("*dd65490cedb91359ac76d68612f1f2184cc5ebd7"));
        assert_eq!(Auth::parse("ed25519"), Ok(Auth::Ed25519));
        assert_eq!(
            Auth::parse("mysql_native_password").map(Auth::plugin),
            Ok("mysql_native_password")
        );
        assert!(Auth::parse("sha256").is_err());
    }
}
