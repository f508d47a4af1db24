//! Which password fields may be written to shadow: crypt(3) hashes in a
//! form libxcrypt knows, with the right lengths, or a locked form. A
//! plaintext password, or anything else, is refused.
//!
//! The cost of a hash is paid by the system at every login attempt, so it
//! is capped: a hash asking for minutes of CPU or gigabytes of memory
//! per attempt would let anyone holding the database make logins a
//! denial of service. The caps are the largest costs libxcrypt's own
//! `crypt_gensalt` makes for yescrypt (cost 11) and a few seconds of CPU
//! for the others: [`MAX_SHA_ROUNDS`], [`MAX_BCRYPT_COST`],
//! [`MAX_YESCRYPT_N`] (and yescrypt's parameters only in the forms
//! `crypt_gensalt` writes), [`MAX_YESCRYPT_SALT`].

/// The most `rounds=` a `$5$`/`$6$` hash may ask for (libxcrypt takes up
/// to 999,999,999; its default is 5,000; this is about two seconds).
pub const MAX_SHA_ROUNDS: u32 = 5_000_000;
/// The highest bcrypt cost (libxcrypt takes up to 31, 2^31 rounds).
pub const MAX_BCRYPT_COST: u8 = 15;
/// The highest yescrypt `N` character, in crypt's base64 order: `F`, the
/// `N` of libxcrypt's highest cost (11, 1 GiB of memory per attempt; its
/// default, cost 5, is `9`).
pub const MAX_YESCRYPT_N: u8 = b'F';
/// The longest yescrypt salt, characters: 64 bytes in crypt's base64.
pub const MAX_YESCRYPT_SALT: usize = 86;

/// crypt's base64 alphabet, in its order.
const B64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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
        ["", "5", rest @ ..] => (
            sha_crypt(rest, 43),
            "malformed SHA-256 ($5$) hash, or rounds above 5000000",
        ),
        ["", "6", rest @ ..] => (
            sha_crypt(rest, 86),
            "malformed SHA-512 ($6$) hash, or rounds above 5000000",
        ),
        ["", "y", params, salt, digest] => (
            yescrypt(params, salt, digest),
            "malformed yescrypt ($y$) hash, or its cost above what is allowed",
        ),
        ["", "2b" | "2y", cost, rest] => (
            cost.len() == 2
                && cost
                    .parse::<u8>()
                    .is_ok_and(|c| (4..=MAX_BCRYPT_COST).contains(&c))
                && rest.len() == 53
                && all_b64(rest),
            "malformed bcrypt ($2b$/$2y$) hash, or its cost above 15",
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
                .is_some_and(|n| (1000..=MAX_SHA_ROUNDS).contains(&n))
                && sha_like(salt, digest, 16, digest_len)
        }
        [salt, digest] => sha_like(salt, digest, 16, digest_len),
        _ => false,
    }
}

/// `$y$`: the parameters exactly as libxcrypt's `crypt_gensalt` writes them
/// for its cost 1 to 11 (`j75` … `jFT`: flavour `j`, `N` at most `F`, `r`
/// as `5` or `T`, no further parameter, since `r`, `p`, `t` and the rest
/// are numbers of any length that could ask for gigabytes of memory or
/// minutes of CPU per login attempt), a salt of at most
/// [`MAX_YESCRYPT_SALT`], the digest.
fn yescrypt(params: &str, salt: &str, digest: &str) -> bool {
    let rank = |c: u8| B64.iter().position(|&b| b == c);
    let params_ok = match params.as_bytes() {
        [b'j', n, b'5' | b'T'] => rank(*n).is_some_and(|n| rank(MAX_YESCRYPT_N) >= Some(n)),
        _ => false,
    };
    params_ok
        && (1..=MAX_YESCRYPT_SALT).contains(&salt.len())
        && all_b64(salt)
        && digest.len() == 43
        && all_b64(digest)
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
            "$6$rounds=5000000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "$2b$15$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$y$jFT$abcdefgh$xvFaZSd9axMQo69BDau3Yg5J6B.kJ983D6DP6bkyDD0",
            // What `mkpasswd -m yescrypt -R 1` writes (r = 8).
            "$y$j75$l8JdGrNLkYd.4IcVinHgk1$i6A8M0EMX20nF0gr5a1J32sbRdgRibE8KdSo.LJUX/0",
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
            "$6$rounds=5000001$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "$6$rounds=999999999$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "$2b$16$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$y$jGT$abcdefgh$xvFaZSd9axMQo69BDau3Yg5J6B.kJ983D6DP6bkyDD0",
            "$y$j9T/////////$abcdefgh$9WNEpu8Mx2S4KNGvbVWKM6clOSoY6.YEl7AYF4DGV04",
            // A time cost `t` after r, and a large r: short, but minutes of
            // CPU or gigabytes of memory per login attempt.
            "$y$j9T0zz$abcdefgh$9WNEpu8Mx2S4KNGvbVWKM6clOSoY6.YEl7AYF4DGV04",
            "$y$j9zz$abcdefgh$9WNEpu8Mx2S4KNGvbVWKM6clOSoY6.YEl7AYF4DGV04",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        let long_salt = SHA512.replace("saltsalt", "saltsaltsaltsaltX");
        assert!(check(&long_salt).is_err());
        let long_params = YESCRYPT.replace("j9T", &format!("j9T{}", "/".repeat(3000)));
        assert!(check(&long_params).is_err());
    }
}
