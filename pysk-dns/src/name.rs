//! Domain names as pysk-dns keeps them: lowercase ASCII, absolute, without
//! the trailing dot (the root is the empty string), checked label by label
//! before anything is built from them.

use std::cmp::Ordering;

use pysk_common::hostname::{self, MAX_NAME};

/// Which characters a name's labels may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Host names (RFC 952/1123): letters, digits, inner hyphens.
    Host,
    /// Names that may also carry `_` (SRV's `_sip._tcp`, TXT's `_dmarc`,
    /// DKIM's `_domainkey`, as RFC 2782, 7489 and 6376 use them).
    Service,
}

impl Rule {
    /// Whether labels may carry `_`: the flag of the one host-name rule
    /// ([`hostname::check_label`]).
    pub fn underscore(self) -> bool {
        self == Rule::Service
    }
}

/// Checks one label by the one host-name rule; `wildcard` allows it to be
/// `*`.
fn check_label(label: &str, rule: Rule, wildcard: bool) -> Result<(), String> {
    if label == "*" {
        return if wildcard {
            Ok(())
        } else {
            Err("a wildcard may only be the first label of an owner name".to_owned())
        };
    }
    hostname::check_label(label, rule.underscore())
}

/// Checks an absolute name given without or with its trailing dot and
/// returns it in pysk-dns' form. `wildcard` allows a leading `*` label.
pub fn absolute(name: &str, rule: Rule, wildcard: bool) -> Result<String, String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("the root is not allowed here".to_owned());
    }
    if bare.len() > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} octets"));
    }
    for (i, label) in bare.split('.').enumerate() {
        check_label(label, rule, wildcard && i == 0)?;
    }
    Ok(bare.to_ascii_lowercase())
}

/// Resolves a name written in a zone document the way a zone file reads
/// it: `@` is `origin`, a name ending in `.` is absolute, any other is
/// relative to `origin`. `root` allows the value `.` (a null MX or SRV
/// target, RFC 7505 and 2782).
pub fn in_zone(
    name: &str,
    origin: &str,
    rule: Rule,
    wildcard: bool,
    root: bool,
) -> Result<String, String> {
    if name == "@" {
        return Ok(origin.to_owned());
    }
    if name == "." {
        return if root {
            Ok(String::new())
        } else {
            Err("the root is not allowed here".to_owned())
        };
    }
    if name.ends_with('.') {
        return absolute(name, rule, wildcard);
    }
    if name.is_empty() {
        return Err("empty name (use @ for the zone itself)".to_owned());
    }
    absolute(&format!("{name}.{origin}"), rule, wildcard)
}

/// Whether `name` is `zone` or lies below it.
pub fn is_within(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The parent of `name` (`a.b.c` → `b.c`), `None` for a single label.
pub fn parent(name: &str) -> Option<&str> {
    name.split_once('.').map(|(_, rest)| rest)
}

/// `name` as a zone file writes it below `$ORIGIN origin.`: `@` for the
/// origin itself, the leading labels for a name within it, else absolute.
pub fn relative<'a>(name: &'a str, origin: &str) -> std::borrow::Cow<'a, str> {
    if name == origin {
        "@".into()
    } else if is_within(name, origin) {
        name[..name.len() - origin.len() - 1].into()
    } else {
        fqdn(name).into()
    }
}

/// `name` with its trailing dot, as zone files and named.conf want it.
pub fn fqdn(name: &str) -> String {
    format!("{name}.")
}

/// DNSSEC's canonical order (RFC 4034 §6.1): by labels from the right,
/// so that a zone's names are listed apex first, each followed by the
/// names below it.
pub fn canonical_cmp(a: &str, b: &str) -> Ordering {
    a.rsplit('.').cmp(b.rsplit('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_as_a_zone_file_reads_them() {
        let o = "example.org";
        assert_eq!(in_zone("@", o, Rule::Host, false, false).as_deref(), Ok(o));
        assert_eq!(
            in_zone("WWW", o, Rule::Host, false, false).as_deref(),
            Ok("www.example.org")
        );
        assert_eq!(
            in_zone("mail.example.net.", o, Rule::Host, false, false).as_deref(),
            Ok("mail.example.net")
        );
        assert_eq!(in_zone(".", o, Rule::Host, false, true).as_deref(), Ok(""));
        assert!(in_zone(".", o, Rule::Host, false, false).is_err());
        assert_eq!(
            in_zone("*.dev", o, Rule::Host, true, false).as_deref(),
            Ok("*.dev.example.org")
        );
        assert!(in_zone("dev.*", o, Rule::Host, true, false).is_err());
    }

    #[test]
    fn hostile_and_malformed_names_are_refused() {
        let o = "example.org";
        for bad in [
            "a\n$INCLUDE /etc/shadow",
            "a b",
            "-lead",
            "trail-",
            "a..b",
            "bücher",
            "semi;colon",
            "quo\"te",
            "",
        ] {
            assert!(
                in_zone(bad, o, Rule::Service, false, false).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(in_zone(&"a".repeat(64), o, Rule::Host, false, false).is_err());
        assert!(in_zone(&"a".repeat(63), o, Rule::Host, false, false).is_ok());
        let long = vec!["a".repeat(60); 4].join(".");
        assert!(in_zone(&long, o, Rule::Host, false, false).is_err());
        assert!(in_zone("_dmarc", o, Rule::Host, false, false).is_err());
        assert!(in_zone("_dmarc", o, Rule::Service, false, false).is_ok());
        assert!(in_zone("xn--bcher-kva", o, Rule::Host, false, false).is_ok());
    }

    #[test]
    fn relations_between_names() {
        assert!(is_within("a.example.org", "example.org"));
        assert!(is_within("example.org", "example.org"));
        assert!(!is_within("badexample.org", "example.org"));
        assert_eq!(relative("a.b.example.org", "example.org"), "a.b");
        assert_eq!(relative("example.org", "example.org"), "@");
        assert_eq!(relative("ns.example.net", "example.org"), "ns.example.net.");
        assert_eq!(relative("", "example.org"), ".");
        assert_eq!(parent("a.b.c"), Some("b.c"));
        assert_eq!(parent("c"), None);
        let mut v = vec![
            "b.example.org",
            "example.org",
            "a.b.example.org",
            "z.example.org",
        ];
        v.sort_by(|a, b| canonical_cmp(a, b));
        assert_eq!(
            v,
            [
                "example.org",
                "b.example.org",
                "a.b.example.org",
                "z.example.org"
            ]
        );
    }
}
