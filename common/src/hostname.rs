//! The one rule for host names, and for the labels of domain names.
//!
//! A host name (RFC 952/1123) is dot-separated labels of ASCII letters,
//! digits and inner hyphens, 1 to 63 characters each, at most 253 in all.
//! Domain names that are not host names (`_dmarc.example.org`, SRV's
//! `_sip._tcp`) may also carry `_` in a label. The same rule keeps a
//! `--host` value or a virtual host safe to use as a file name.

/// The longest name in text form, without the trailing dot (RFC 1035).
pub const MAX_NAME: usize = 253;
/// The longest label (RFC 1035).
pub const MAX_LABEL: usize = 63;

/// Checks one label; `underscore` also allows `_` (service and policy
/// names). The error says what is wrong.
pub fn check_label(label: &str, underscore: bool) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label".to_owned());
    }
    if label.len() > MAX_LABEL {
        return Err(format!("label longer than {MAX_LABEL} octets"));
    }
    if !label.is_ascii() {
        return Err("not ASCII: give internationalised names as punycode (xn--…)".to_owned());
    }
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || (c == b'_' && underscore);
    if let Some(c) = label.bytes().find(|&c| !ok(c)) {
        return Err(format!(
            "character {:?} not allowed in a {} label",
            char::from(c),
            if underscore {
                "domain name"
            } else {
                "host name"
            }
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label must not begin or end with a hyphen".to_owned());
    }
    Ok(())
}

/// Checks a host name (without a trailing dot); the error says what is
/// wrong.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_owned());
    }
    if name.len() > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} octets"));
    }
    name.split('.')
        .try_for_each(|label| check_label(label, false))
}

/// Whether `name` is a host name pysk accepts (see [`check`]).
pub fn is_host_name(name: &str) -> bool {
    check(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc_1123() {
        for good in ["a", "web-1.example.org", "1.2.3.4", "xn--bcher-kva.example"] {
            assert!(is_host_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["a".repeat(63).as_str(); 4].join(".");
        for bad in [
            "",
            ".",
            "a..b",
            "-a",
            "a-",
            "a_b",
            "a b",
            "a/b",
            "..",
            "ä.example",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(!is_host_name(bad), "{bad:?}");
        }
        assert_eq!(
            check("foo_bar"),
            Err("character '_' not allowed in a host name label".to_owned())
        );
    }

    #[test]
    fn underscore_only_where_asked_for() {
        assert!(check_label("_dmarc", true).is_ok());
        assert!(check_label("_dmarc", false).is_err());
        assert!(check_label("-x", true).is_err());
    }
}
