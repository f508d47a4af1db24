//! The reverse-DNS cache file AWStats loads as `DNSStaticCacheFile`.
//!
//! One entry a line, `EPOCH ADDRESS NAME`, where `NAME` is `*` when the
//! address has no (valid) name: the lines AWStats' loader reads with
//! `^(?:\d{0,10}\s+)?([0-9A-F:.]+)\s+(\S+)$`. The epoch says when the entry
//! was looked up, so `resolve` knows when to ask again. Lines without an
//! epoch (AWStats' own format) are kept and count as old.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use crate::error::{LogsError, input_err};

/// What is known about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it was looked up, seconds since the epoch (0: unknown).
    pub time: i64,
    /// Its host name, or `None` for AWStats' `*` (no name).
    pub name: Option<Box<str>>,
}

/// The whole cache, by address.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    /// The entries.
    pub entries: HashMap<IpAddr, Entry>,
}

/// What loading a cache file found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Entries read.
    pub entries: usize,
    /// Lines that are no entry (reported, not kept).
    pub bad_lines: usize,
    /// The first bad line's number, for the report.
    pub first_bad: usize,
}

impl Cache {
    /// Reads the cache at `path`; a missing file is an empty cache.
    pub fn load(path: &Path) -> Result<(Cache, Loaded), LogsError> {
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Cache::default(), Loaded::default()));
            }
            Err(e) => return Err(input_err(path)(e)),
        };
        let mut cache = Cache::default();
        let mut loaded = Loaded::default();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(line) {
                Some((addr, entry)) => {
                    cache.entries.insert(addr, entry);
                    loaded.entries += 1;
                }
                None => {
                    loaded.bad_lines += 1;
                    if loaded.first_bad == 0 {
                        loaded.first_bad = i + 1;
                    }
                }
            }
        }
        Ok((cache, loaded))
    }

    /// The cache file's content: entries sorted by address.
    pub fn render(&self) -> Vec<u8> {
        let mut sorted: Vec<(&IpAddr, &Entry)> = self.entries.iter().collect();
        sorted.sort_unstable_by_key(|(addr, _)| **addr);
        let mut out = Vec::with_capacity(sorted.len() * 48);
        for (addr, entry) in sorted {
            let name = entry.name.as_deref().unwrap_or("*");
            out.extend_from_slice(format!("{} {addr} {name}\n", entry.time).as_bytes());
        }
        out
    }
}

fn parse_line(line: &[u8]) -> Option<(IpAddr, Entry)> {
    let text = std::str::from_utf8(line).ok()?;
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let (time, addr, name) = match fields.as_slice() {
        [time, addr, name] if time.len() <= 10 && time.bytes().all(|b| b.is_ascii_digit()) => {
            (time.parse().ok()?, *addr, *name)
        }
        [addr, name] => (0, *addr, *name),
        _ => return None,
    };
    let addr: IpAddr = addr.parse().ok()?;
    let name = match name {
        "*" | "ip" => None,
        n => Some(valid_name(n)?.into_boxed_str()),
    };
    Some((addr, Entry { time, name }))
}

/// The host name `name` (a PTR answer, untrusted) as it may be written to
/// the cache: lower-case, without the final dot; `None` when it is not a
/// valid host name (bad characters, empty or over-long labels, over 253
/// characters), so nothing raw ever reaches the file.
pub fn valid_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    pysk_common::inventory::is_host_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_both_formats_and_renders_what_awstats_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dnscache.txt");
        fs::write(
            &path,
            "1700000000 192.0.2.1 host1.example.org\n\
             192.0.2.2 *\n\
             1700000001 2001:db8::1 Six.Example.NET.\n\
             garbage line here\n\
             1700000002 192.0.2.3 bad\x01name\n\
             \n",
        )
        .expect("write");
        let (cache, loaded) = Cache::load(&path).expect("load");
        assert_eq!(loaded.entries, 3);
        assert_eq!(loaded.bad_lines, 2);
        assert_eq!(loaded.first_bad, 4);
        assert_eq!(
            String::from_utf8(cache.render()).expect("utf-8"),
            "1700000000 192.0.2.1 host1.example.org\n\
             0 192.0.2.2 *\n\
             1700000001 2001:db8::1 six.example.net\n"
        );
    }

    #[test]
    fn hostile_ptr_names_never_pass() {
        assert_eq!(
            valid_name("Host.Example.org.").as_deref(),
            Some("host.example.org")
        );
        for bad in [
            "",
            ".",
            "a..b",
            "evil\nname",
            "with space.example",
            "semi;colon",
            "under_score.example",
            "-lead.example",
            &"x".repeat(64),
            &format!("{}.example", "a.".repeat(130)),
        ] {
            assert_eq!(valid_name(bad), None, "{bad:?}");
        }
    }
}
