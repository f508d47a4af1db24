//! Zone files and the `named.conf` include, as text.
//!
//! A zone file is produced in two halves around the SOA serial, so that
//! its content can be hashed without the serial (see `serial`) and the
//! serial filled in afterwards.

use std::fmt::Write as _;
use std::path::Path;

use crate::document::Data;
use crate::name::{fqdn, relative};
use crate::zone::Assembled;

/// The first line of every file pysk-dns writes; a zone file without it is
/// never removed as stale.
pub const MARKER: &str = concat!("; written by ", env!("CARGO_PKG_NAME"));

/// The SOA fields that come from switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaTimers {
    /// The primary name server; empty: the zone's first name server.
    pub primary: String,
    /// The responsible mailbox in DNS form; empty: `hostmaster.<zone>`.
    pub hostmaster: String,
    /// Refresh, seconds.
    pub refresh: u32,
    /// Retry, seconds.
    pub retry: u32,
    /// Expire, seconds.
    pub expire: u32,
    /// Negative-caching TTL, seconds.
    pub minimum: u32,
}

/// A zone file split around its serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneText {
    /// Everything before the serial.
    pub head: String,
    /// Everything after it.
    pub tail: String,
}

impl ZoneText {
    /// The whole file with `serial` in place.
    pub fn with_serial(&self, serial: u32) -> String {
        format!("{}{serial}{}", self.head, self.tail)
    }
}

/// Renders `zone`'s file.
pub fn zone_file(zone: &Assembled, soa: &SoaTimers) -> ZoneText {
    let apex = &zone.name;
    let mut head = String::with_capacity(256 + zone.records.len() * 64);
    let _ = writeln!(
        head,
        "{MARKER}: do not edit, the next build replaces it.\n\
         ; Zone {apex}, from the snapshots of {}.\n\
         $ORIGIN {}\n$TTL {}",
        zone.servers.join(", "),
        fqdn(apex),
        zone.ttl
    );
    let primary = if soa.primary.is_empty() {
        zone.ns
            .first()
            .map(|n| fqdn(n))
            .unwrap_or_else(|| ".".to_owned())
    } else {
        soa.primary.clone()
    };
    let hostmaster = if soa.hostmaster.is_empty() {
        format!("hostmaster.{apex}.")
    } else {
        soa.hostmaster.clone()
    };
    let _ = write!(head, "@\t{}\tIN\tSOA\t{primary} {hostmaster} ( ", zone.ttl);
    let mut tail = format!(
        " {} {} {} {} )\n",
        soa.refresh, soa.retry, soa.expire, soa.minimum
    );
    for ns in &zone.ns {
        let _ = writeln!(
            tail,
            "@\t{}\tIN\tNS\t{}\t; {}",
            zone.ttl,
            fqdn(ns),
            zone.ns_servers.join(", ")
        );
    }
    let mut origin = apex.as_str();
    for e in &zone.records {
        if e.section != origin {
            origin = &e.section;
            let _ = writeln!(tail, "$ORIGIN {}", fqdn(origin));
        }
        let _ = write!(
            tail,
            "{}\t{}\tIN\t{}\t",
            relative(&e.owner, origin),
            e.ttl,
            e.data.type_name()
        );
        rdata(&mut tail, &e.data);
        let _ = writeln!(tail, "\t; {}", e.servers.join(", "));
    }
    ZoneText { head, tail }
}

/// The servers a zone file written by pysk-dns names in its second line
/// (`; Zone <zone>, from the snapshots of <servers>.`); none for any
/// other file.
pub fn servers_of(text: &str) -> Vec<&str> {
    let Some(line) = text.lines().nth(1).filter(|l| l.starts_with("; Zone ")) else {
        return Vec::new();
    };
    let Some((_, list)) = line.split_once(", from the snapshots of ") else {
        return Vec::new();
    };
    list.strip_suffix('.')
        .unwrap_or(list)
        .split(", ")
        .filter(|s| !s.is_empty())
        .collect()
}

/// Writes a record's data in zone file syntax; names absolute.
fn rdata(out: &mut String, data: &Data) {
    let _ = match data {
        Data::Ns(n) | Data::Cname(n) => write!(out, "{}", fqdn(n)),
        Data::A(a) => write!(out, "{a}"),
        Data::Aaaa(a) => write!(out, "{a}"),
        Data::Mx(p, n) => write!(out, "{p} {}", fqdn(n)),
        Data::Srv(p, w, port, n) => write!(out, "{p} {w} {port} {}", fqdn(n)),
        // An empty text is one empty string: BIND refuses a TXT without any.
        Data::Txt(t) if t.is_empty() => write!(out, "\"\""),
        Data::Txt(t) => {
            // A character-string holds at most 255 bytes (RFC 1035 3.3.14).
            for (i, chunk) in t.as_bytes().chunks(255).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                quoted(out, chunk);
            }
            Ok(())
        }
        Data::Caa(flags, tag, value) => {
            let _ = write!(out, "{flags} {tag} ");
            quoted(out, value.as_bytes());
            Ok(())
        }
    };
}

/// A character-string in quotes: `"` and `\` escaped, every byte outside
/// printable ASCII as `\DDD`, so no byte can end the string or the line.
fn quoted(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

/// The `named.conf` include: one `zone` statement per zone file, each
/// with `options` (for example `allow-transfer { 192.0.2.53; };`).
pub fn include(zones: &[&str], zone_dir: &Path, options: &str) -> String {
    let mut out = format!(
        "// {}: do not edit, the next build replaces it.\n",
        &MARKER[2..]
    );
    for zone in zones {
        let file = zone_dir.join(format!("db.{zone}"));
        let _ = write!(
            out,
            "zone \"{zone}\" {{ type master; file \"{}\";",
            file.display()
        );
        if !options.is_empty() {
            let _ = write!(out, " {options}");
        }
        out.push_str(" };\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_hostile_text_is_split_and_escaped() {
        let mut out = String::new();
        let text = format!("{}\"\\\u{e9}", "a".repeat(300));
        rdata(&mut out, &Data::Txt(text));
        let expected = format!(
            "\"{}\" \"{}\\\"\\\\\\195\\169\"",
            "a".repeat(255),
            "a".repeat(45)
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn an_empty_text_is_one_empty_string() {
        let mut out = String::new();
        rdata(&mut out, &Data::Txt(String::new()));
        assert_eq!(out, "\"\"");
        let head = "; written by pysk-dns: x\n; Zone a.org, from the snapshots of web1.example.net, inventory.\n";
        assert_eq!(servers_of(head), ["web1.example.net", "inventory"]);
        assert!(servers_of("; Zone a.org by hand\n").is_empty());
    }
}
