//! SCRAM-SHA-256 verifiers (RFC 5802, 7677) as PostgreSQL stores them:
//! made on the client, so that the password never reaches the server or
//! its log, and checked against a stored one by recomputing it with the
//! stored salt and iteration count, so that a run with the same password
//! changes nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new verifier for `password` (random salt, 4096 iterations, as libpq
/// makes them).
pub fn verifier(password: &[u8]) -> String {
    postgres_protocol::password::scram_sha_256(password)
}

/// Whether the stored verifier `stored` is one of `password`; `None` when
/// `stored` is no SCRAM verifier (an MD5 hash, garbage), which a run then
/// replaces.
pub fn matches(stored: &str, password: &[u8]) -> Option<bool> {
    let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
    let (iterations_salt, keys) = rest.split_once('$')?;
    let (iterations, salt) = iterations_salt.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let iterations: u32 = iterations.parse().ok().filter(|n| *n > 0)?;
    let salt = STANDARD.decode(salt).ok()?;
    let stored_key = STANDARD.decode(stored_key).ok()?;
    let server_key = STANDARD.decode(server_key).ok()?;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(&prepared(password), &salt, iterations, &mut salted);
    let key = |label: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&salted).ok()?;
        mac.update(label);
        Some(mac.finalize().into_bytes())
    };
    let client = Sha256::digest(key(b"Client Key")?);
    let server = key(b"Server Key")?;
    let same = client.as_slice().ct_eq(&stored_key) & server.as_slice().ct_eq(&server_key);
    Some(bool::from(same))
}

/// The password as SCRAM hashes it: SASLprep'd, or its bytes as they are
/// when that fails (as PostgreSQL and libpq do).
fn prepared(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password) {
        Ok(text) => stringprep::saslprep(text)
            .map(|p| p.into_owned().into_bytes())
            .unwrap_or_else(|_| password.to_vec()),
        Err(_) => password.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_made_here_or_by_the_server_matches_its_password_only() {
        let made = verifier(b"s3cret pass");
        assert_eq!(matches(&made, b"s3cret pass"), Some(true));
        assert_eq!(matches(&made, b"s3cret pas"), Some(false));
        // Made by PostgreSQL 15 from ALTER ROLE ... PASSWORD with this
        // password; SASLprep maps U+00A0 to a space and U+2163 to "IV".
        let server = "SCRAM-SHA-256$4096:2yAPjq0//Bcz4Tw+FLUfew==$SH+5/Wel4s6ottO4ZdsCKZRRWS3anUAxZL+/MQ1CEFI=:CRrV8PClYFMyZCgBT7ddaogrK1qTPyEz9aPiCwmmm7E=";
        assert_eq!(
            matches(server, "Ca\u{00A0}rol\u{00DF}-\u{2163}".as_bytes()),
            Some(true)
        );
        assert_eq!(matches(server, "Ca rolß-IV".as_bytes()), Some(true));
        assert_eq!(matches(server, b"Carol"), Some(false));
        for not_scram in [
            "md5abc",
            "",
            "SCRAM-SHA-256$x:y$z:w",
            "SCRAM-SHA-256$0:AA==$AA==:AA==",
        ] {
            assert_eq!(matches(not_scram, b"x"), None, "{not_scram}");
        }
    }
}
