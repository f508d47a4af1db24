//! DNS names of certificates: the one host-name rule of `common`, a
//! wildcard only as a whole left-most label, and RFC 6125 matching.

use pysk_common::Error;
use pysk_common::hostname;

/// `text` as a certificate name: lowercase, without a final dot, a valid
/// host name; `*.` in front only when `wildcard`. A bad one is an error
/// of `origin` (`NAME`, `--san`).
pub fn checked(origin: &str, text: &str, wildcard: bool) -> Result<String, Error> {
    parse(text, wildcard).map_err(|why| Error::option(origin, why))
}

/// [`checked`]'s rule, with the reason as text (for errors that name a
/// file and line instead of an option).
pub fn parse(text: &str, wildcard: bool) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let rest = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => &name,
    };
    hostname::check(rest).map_err(|why| format!("{text:?}: {why}"))?;
    if rest.contains('_') || !rest.contains('.') {
        return Err(format!("{text:?}: not a fully qualified host name"));
    }
    Ok(name)
}

/// Whether the certificate name `pattern` covers `name` (RFC 6125 6.4):
/// equal ignoring case, or `*.rest` where `name` is one more label in
/// front of `rest`; no partial wildcards (`w*.example.org`), none over a
/// single label (`*.org`).
pub fn covers(pattern: &str, name: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let name = name.strip_suffix('.').unwrap_or(name);
    if pattern.eq_ignore_ascii_case(name) {
        return !pattern.contains('*');
    }
    let Some(rest) = pattern.strip_prefix("*.") else {
        return false;
    };
    if rest.contains('*') || !rest.contains('.') {
        return false;
    }
    match name.split_once('.') {
        Some((first, tail)) => !first.is_empty() && tail.eq_ignore_ascii_case(rest),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label_only() {
        assert!(covers("www.example.org", "WWW.example.org"));
        assert!(covers("*.example.org", "www.example.org"));
        assert!(!covers("*.example.org", "example.org"));
        assert!(!covers("*.example.org", "a.b.example.org"));
        assert!(!covers("w*.example.org", "www.example.org"));
        assert!(!covers("*.org", "example.org"));
        assert!(!covers("*.example.org", "*.example.org"));
        assert!(!covers("example.org", "www.example.org"));
    }

    #[test]
    fn names_are_checked_and_kept_lowercase() {
        assert_eq!(
            checked("NAME", "WWW.Example.org.", false).expect("ok"),
            "www.example.org"
        );
        assert_eq!(
            checked("--san", "*.example.org", true).expect("ok"),
            "*.example.org"
        );
        assert!(checked("NAME", "*.example.org", false).is_err());
        assert!(checked("NAME", "localhost", false).is_err());
        assert!(checked("NAME", "a/b.example", false).is_err());
        let err = checked("--san", "bad..name", true).expect_err("empty label");
        assert!(err.to_string().starts_with("--san: \"bad..name\""), "{err}");
    }
}
