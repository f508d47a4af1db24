//! Zones no managed server may publish: top-level domains and other
//! public suffixes, the special-use and locally served names, and the
//! admin's own (`dns_reserved_zones`).
//!
//! A server claiming `com` would fold every other server's `*.com` zone
//! into a file under its own SOA; one claiming `localhost` makes
//! `named-checkconf` refuse the whole configuration. Such a zone is left
//! out whole and reported naming the server; the rest of its document
//! applies.

use crate::name;

/// Special-use (RFC 6761, 6762, 7686, 8375, 9476) and locally served
/// (RFC 6303, 7793) zones. A zone equal to or below one of them is
/// refused. RFC 6761's documentation names (`example`, `example.com`,
/// `example.net`, `example.org`) are not listed: they behave as ordinary
/// domains and documentation uses them.
pub const SPECIAL_USE: &[&str] = &[
    // RFC 6761, 6762, 7686, 8375, 9476
    "localhost",
    "invalid",
    "test",
    "local",
    "onion",
    "alt",
    "home.arpa",
    // RFC 6303: IPv4 locally served reverse zones
    "0.in-addr.arpa",
    "10.in-addr.arpa",
    "127.in-addr.arpa",
    "254.169.in-addr.arpa",
    "16.172.in-addr.arpa",
    "17.172.in-addr.arpa",
    "18.172.in-addr.arpa",
    "19.172.in-addr.arpa",
    "20.172.in-addr.arpa",
    "21.172.in-addr.arpa",
    "22.172.in-addr.arpa",
    "23.172.in-addr.arpa",
    "24.172.in-addr.arpa",
    "25.172.in-addr.arpa",
    "26.172.in-addr.arpa",
    "27.172.in-addr.arpa",
    "28.172.in-addr.arpa",
    "29.172.in-addr.arpa",
    "30.172.in-addr.arpa",
    "31.172.in-addr.arpa",
    "168.192.in-addr.arpa",
    "2.0.192.in-addr.arpa",
    "100.51.198.in-addr.arpa",
    "113.0.203.in-addr.arpa",
    "255.in-addr.arpa",
    // RFC 6303: IPv6 locally served reverse zones (::, ::1, fd00::/8,
    // fe80::/10, 2001:db8::/32)
    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
    "d.f.ip6.arpa",
    "8.e.f.ip6.arpa",
    "9.e.f.ip6.arpa",
    "a.e.f.ip6.arpa",
    "b.e.f.ip6.arpa",
    "8.b.d.0.1.0.0.2.ip6.arpa",
    // RFC 7793: shared address space 100.64.0.0/10
    "64.100.in-addr.arpa",
    "65.100.in-addr.arpa",
    "66.100.in-addr.arpa",
    "67.100.in-addr.arpa",
    "68.100.in-addr.arpa",
    "69.100.in-addr.arpa",
    "70.100.in-addr.arpa",
    "71.100.in-addr.arpa",
    "72.100.in-addr.arpa",
    "73.100.in-addr.arpa",
    "74.100.in-addr.arpa",
    "75.100.in-addr.arpa",
    "76.100.in-addr.arpa",
    "77.100.in-addr.arpa",
    "78.100.in-addr.arpa",
    "79.100.in-addr.arpa",
    "80.100.in-addr.arpa",
    "81.100.in-addr.arpa",
    "82.100.in-addr.arpa",
    "83.100.in-addr.arpa",
    "84.100.in-addr.arpa",
    "85.100.in-addr.arpa",
    "86.100.in-addr.arpa",
    "87.100.in-addr.arpa",
    "88.100.in-addr.arpa",
    "89.100.in-addr.arpa",
    "90.100.in-addr.arpa",
    "91.100.in-addr.arpa",
    "92.100.in-addr.arpa",
    "93.100.in-addr.arpa",
    "94.100.in-addr.arpa",
    "95.100.in-addr.arpa",
    "96.100.in-addr.arpa",
    "97.100.in-addr.arpa",
    "98.100.in-addr.arpa",
    "99.100.in-addr.arpa",
    "100.100.in-addr.arpa",
    "101.100.in-addr.arpa",
    "102.100.in-addr.arpa",
    "103.100.in-addr.arpa",
    "104.100.in-addr.arpa",
    "105.100.in-addr.arpa",
    "106.100.in-addr.arpa",
    "107.100.in-addr.arpa",
    "108.100.in-addr.arpa",
    "109.100.in-addr.arpa",
    "110.100.in-addr.arpa",
    "111.100.in-addr.arpa",
    "112.100.in-addr.arpa",
    "113.100.in-addr.arpa",
    "114.100.in-addr.arpa",
    "115.100.in-addr.arpa",
    "116.100.in-addr.arpa",
    "117.100.in-addr.arpa",
    "118.100.in-addr.arpa",
    "119.100.in-addr.arpa",
    "120.100.in-addr.arpa",
    "121.100.in-addr.arpa",
    "122.100.in-addr.arpa",
    "123.100.in-addr.arpa",
    "124.100.in-addr.arpa",
    "125.100.in-addr.arpa",
    "126.100.in-addr.arpa",
    "127.100.in-addr.arpa",
];

/// Why no server may publish `zone` (absolute, lower case, no trailing
/// dot), given the admin's `dns_reserved_zones`; `None` when it may.
pub fn why(zone: &str, admin: &[String]) -> Option<String> {
    if let Some(r) = admin.iter().find(|r| name::is_within(zone, r)) {
        return Some(format!("{r} is reserved by dns_reserved_zones"));
    }
    if let Some(r) = SPECIAL_USE.iter().find(|r| name::is_within(zone, r)) {
        return Some(format!("{r} is a special-use or locally served zone"));
    }
    let suffix = psl::suffix(zone.as_bytes());
    if suffix.is_some_and(|s| s.is_known() && s.as_bytes() == zone.as_bytes()) {
        return Some("a public suffix".to_owned());
    }
    (!zone.contains('.')).then(|| "a top-level domain".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_suffixes_special_use_and_the_admins_zones_are_refused() {
        let admin = vec!["corp.example.net".to_owned()];
        for zone in [
            "com",
            "co.uk",
            "github.io",
            "localhost",
            "foo.localhost",
            "home.arpa",
            "127.in-addr.arpa",
            "1.168.192.in-addr.arpa",
            "b.e.f.ip6.arpa",
            "in-addr.arpa",
            "corp.example.net",
            "www.corp.example.net",
            "unknowntld",
        ] {
            assert!(why(zone, &admin).is_some(), "{zone}");
        }
        for zone in [
            "example.org",
            "example.com",
            "shop.example.org",
            "example.co.uk",
            "example.net",
            "2.0.193.in-addr.arpa",
        ] {
            assert_eq!(why(zone, &admin), None, "{zone}");
        }
    }
}
