//! The rule for sending anything in clear: only to this machine.
//!
//! A password, a records document or a mailbox may cross a network only
//! inside TLS. Plain text is allowed to a loopback host, where it never
//! leaves the machine, or when the admin says so explicitly with the
//! option `--insecure-plaintext` (or the tool's `*_insecure_plaintext`
//! switch). The host is judged by its name as written: `localhost` or a
//! loopback address; a name that merely resolves to one is not trusted, as
//! the resolver's answer can change.

use std::net::IpAddr;

/// Whether `host` (a name or an address, IPv6 optionally in brackets) is
/// this machine: `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// Whether plain text may be sent to `host`: it is a loopback host, or
/// `insecure_plaintext` was asked for.
pub fn plaintext_allowed(host: &str, insecure_plaintext: bool) -> bool {
    insecure_plaintext || is_loopback(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_get_plaintext_unless_asked() {
        for local in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "[::1]",
        ] {
            assert!(plaintext_allowed(local, false), "{local}");
        }
        for remote in [
            "192.0.2.1",
            "example.org",
            "localhost.example.org",
            "[2001:db8::1]",
        ] {
            assert!(!plaintext_allowed(remote, false), "{remote}");
            assert!(plaintext_allowed(remote, true), "{remote}");
        }
    }
}
