//! Which password fields may be written to shadow: crypt(3) hashes in a
//! form libxcrypt knows, with the right lengths, or a locked form. A
//! plaintext password, or anything else, is refused.

/// The characters of crypt's base64 alphabet.
fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'/'
}

fn all_b64(s: &str) -> bool {
    s.bytes().all(is_b64)
}

/// Checks a password field: a hash (`$1$`, `$5$`, `$6$`, `$y$`, `$2b$`,
/// `$2y$`), or a locked form: `!` before a hash or alone, `*` alone or
/// before a hash. Returns what is wrong, never the field itself.
pub fn check(field: &str) -> Result<(), &'static str> {
    let unlocked = field.trim_start_matches('!');
    let hash = unlocked.strip_prefix('*').unwrap_or(unlocked);
    if hash.is_empty() {
        return if field.is_empty() {
            Err("empty (an account without a password); use \"!\" to lock it")
        } else {
            Ok(())
        };
    }
    if !hash.starts_with('$') {
        return Err("not a crypt(3) hash (plaintext is never accepted)");
    }
    check_hash(hash)
}

fn check_hash(hash: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = hash.split('$').collect();
    // parts[0] is empty: the hash starts with '$'.
    let (good, what) = match parts.as_slice() {
        ["", "1", salt, digest] => (sha_like(salt, digest, 8, 22), "malformed MD5 ($1$) hash"),
        ["", "5", rest @ ..] => (sha_crypt(rest, 43), "malformed SHA-256 ($5$) hash"),
        ["", "6", rest @ ..] => (sha_crypt(rest, 86), "malformed SHA-512 ($6$) hash"),
        ["", "y", params, salt, digest] => (
            !params.is_empty()
                && all_b64(params)
                && !salt.is_empty()
                && all_b64(salt)
                && digest.len() == 43
                && all_b64(digest),
            "malformed yescrypt ($y$) hash",
        ),
        ["", "2b" | "2y", cost, rest] => (
            cost.len() == 2
                && cost.parse::<u8>().is_ok_and(|c| (4..=31).contains(&c))
                && rest.len() == 53
                && all_b64(rest),
            "malformed bcrypt ($2b$/$2y$) hash",
        ),
        _ => (
            false,
            "not a hash form libxcrypt accepts ($1$ $5$ $6$ $y$ $2b$ $2y$)",
        ),
    };
    if good { Ok(()) } else { Err(what) }
}

/// `$5$`/`$6$`: an optional `rounds=N$`, a salt of up to 16, the digest.
fn sha_crypt(rest: &[&str], digest_len: usize) -> bool {
    match rest {
        [rounds, salt, digest] => {
            rounds
                .strip_prefix("rounds=")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1000..=999_999_999).contains(&n))
                && sha_like(salt, digest, 16, digest_len)
        }
        [salt, digest] => sha_like(salt, digest, 16, digest_len),
        _ => false,
    }
}

fn sha_like(salt: &str, digest: &str, max_salt: usize, digest_len: usize) -> bool {
    salt.len() <= max_salt && all_b64(salt) && digest.len() == digest_len && all_b64(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with perl's crypt() (libxcrypt) for the password "secret".
    const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const YESCRYPT: &str = "$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.";

    #[test]
    fn accepts_hashes_and_locked_forms() {
        for ok in [
            SHA512,
            YESCRYPT,
            "$1$abcdefgh$0123456789abcdefghijkl",
            "$5$rounds=5000$salt$0123456789012345678901234567890123456789012",
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "!",
            "*",
            "!*",
            "!$2y$12$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let locked = format!("!{SHA512}");
        assert_eq!(check(&locked), Ok(()));
    }

    #[test]
    fn refuses_plaintext_and_damaged_hashes() {
        for bad in [
            "",
            "secret",
            "!secret",
            "$6$saltsalt$short",
            "$6$salt:salt$x",
            "$7$x$y",
            "$2b$3$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$y$$salt$OIk7Kt0BOkdqVq/E6nyAgkcCwY1bBN3zHE3xhZV2gWD",
            "$5$rounds=x$salt$0123456789012345678901234567890123456789012",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        let long_salt = SHA512.replace("saltsalt", "saltsaltsaltsaltX");
        assert!(check(&long_salt).is_err());
    }
}
