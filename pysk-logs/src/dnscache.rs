//! The reverse-DNS cache file AWStats loads as `DNSStaticCacheFile`.
//!
//! One entry a line, `EPOCH ADDRESS NAME`, where `NAME` is `*` when the
//! address has no (valid) name: the lines AWStats' loader reads with
//! `^(?:\d{0,10}\s+)?([0-9A-F:.]+)\s+(\S+)$`. The epoch says when the entry
//! was looked up, so `resolve` knows when to ask again. Lines without an
//! epoch (AWStats' own format) are kept and count as old.
//!
//! A cache of a million addresses must fit in well under 100 MiB, so the
//! entries are a sorted vector of 28-byte records (the address as 16 bytes,
//! IPv4 mapped into IPv6) and the names live in one string arena.

use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use pysk_common::atomic;

use crate::error::LogsError;
use crate::lines::{self, Event};
use pysk_common::error::read_err;

/// A record's name: none yet, or a span of the arena.
const NO_NAME: u32 = u32::MAX;

/// One address's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    addr: [u8; 16],
    time: u32,
    name: u32,
    len: u8,
}

/// The whole cache.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    records: Vec<Record>,
    names: String,
    /// Whether anything changed since it was loaded.
    changed: bool,
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

/// What the cache knows of one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// When it was looked up, seconds since the epoch (0: unknown).
    pub time: u32,
    /// Its host name, or `None` for AWStats' `*` (no name).
    pub name: Option<&'a str>,
}

/// The key an address is stored under.
pub fn key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The address a key stands for.
pub fn addr(key: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(key).to_canonical()
}

impl Cache {
    /// Reads the cache at `path`, line by line; a missing file is an empty
    /// cache.
    pub fn load(path: &Path) -> Result<(Cache, Loaded), LogsError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Cache::default(), Loaded::default()));
            }
            Err(e) => return Err(read_err(path)(e).into()),
        };
        // Reserved, not touched: capacity that is never used costs no
        // memory, while growing by doubling would copy everything at the
        // largest moment. No name is longer than its line.
        let size = file
            .metadata()
            .map_or(0, |m| usize::try_from(m.len()).unwrap_or(0));
        let mut cache = Cache {
            records: Vec::with_capacity(size / 16),
            names: String::with_capacity(size),
            changed: false,
        };
        let mut loaded = Loaded::default();
        let mut line_no = 0usize;
        let bad = |loaded: &mut Loaded, line_no: usize| {
            loaded.bad_lines += 1;
            if loaded.first_bad == 0 {
                loaded.first_bad = line_no;
            }
        };
        lines::for_each(file, 4096, |event| -> io::Result<()> {
            match event {
                Event::Line(line) => {
                    line_no += 1;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        return Ok(());
                    }
                    match parse_line(line) {
                        Some((addr, time, name)) => {
                            let record = cache.record(key(addr), time, name.as_deref());
                            cache.records.push(record);
                            loaded.entries += 1;
                        }
                        None => bad(&mut loaded, line_no),
                    }
                }
                Event::LongStart(_) => {
                    line_no += 1;
                    bad(&mut loaded, line_no);
                }
                Event::LongMore(_) | Event::LongEnd => {}
            }
            Ok(())
        })
        .map_err(read_err(path))?;
        // Sorted, and for an address listed twice the later line wins.
        cache.records.reverse();
        cache.records.sort_by_key(|r| r.addr);
        cache.records.dedup_by_key(|r| r.addr);
        Ok((cache, loaded))
    }

    fn record(&mut self, addr: [u8; 16], time: u32, name: Option<&str>) -> Record {
        let (name, len) = match name {
            Some(n) if n.len() <= usize::from(u8::MAX) => {
                let start = u32::try_from(self.names.len()).unwrap_or(NO_NAME);
                self.names.push_str(n);
                (start, u8::try_from(n.len()).unwrap_or(0))
            }
            _ => (NO_NAME, 0),
        };
        Record {
            addr,
            time,
            name,
            len,
        }
    }

    /// How many addresses it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no address.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn position(&self, key: [u8; 16]) -> Result<usize, usize> {
        self.records.binary_search_by_key(&key, |r| r.addr)
    }

    fn entry_at(&self, i: usize) -> Entry<'_> {
        let r = &self.records[i];
        let name = (r.name != NO_NAME)
            .then(|| {
                self.names
                    .get(r.name as usize..r.name as usize + usize::from(r.len))
            })
            .flatten();
        Entry { time: r.time, name }
    }

    /// What it knows of the address stored under `key`.
    pub fn get(&self, key: [u8; 16]) -> Option<Entry<'_>> {
        self.position(key).ok().map(|i| self.entry_at(i))
    }

    /// Adds entries (time 0, no name) for the `keys` it does not hold yet,
    /// and room for their names; `keys` must be sorted.
    pub fn add_missing(&mut self, keys: &[[u8; 16]]) {
        let before = self.records.len();
        self.records.reserve(keys.len());
        self.names.reserve(keys.len() * 64);
        for &k in keys {
            if self.records[..before]
                .binary_search_by_key(&k, |r| r.addr)
                .is_err()
            {
                self.records.push(Record {
                    addr: k,
                    time: 0,
                    name: NO_NAME,
                    len: 0,
                });
            }
        }
        if self.records.len() > before {
            self.records.sort_unstable_by_key(|r| r.addr);
            self.changed = true;
        }
    }

    /// Records what was found for the address stored under `key`.
    pub fn set(&mut self, key: [u8; 16], time: u32, name: Option<&str>) {
        self.changed = true;
        let record = self.record(key, time, name);
        match self.position(key) {
            Ok(i) => self.records[i] = record,
            Err(i) => self.records.insert(i, record),
        }
    }

    /// Writes the cache to `path` atomically, entries sorted by address;
    /// when nothing changed since it was loaded and the file exists, writes
    /// nothing.
    pub fn save(&self, path: &Path) -> Result<(), LogsError> {
        if !self.changed && path.exists() {
            return Ok(());
        }
        atomic::replace_with(path, atomic::Options::default(), None, |file| {
            let mut out = BufWriter::with_capacity(1 << 20, file);
            for i in 0..self.records.len() {
                let e = self.entry_at(i);
                writeln!(
                    out,
                    "{} {} {}",
                    e.time,
                    addr(self.records[i].addr),
                    e.name.unwrap_or("*")
                )?;
            }
            out.flush()
        })?;
        Ok(())
    }
}

fn parse_line(line: &[u8]) -> Option<(IpAddr, u32, Option<String>)> {
    let text = std::str::from_utf8(line).ok()?;
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let (time, addr, name) = match fields.as_slice() {
        [time, addr, name] if time.len() <= 10 && time.bytes().all(|b| b.is_ascii_digit()) => {
            (time.parse::<u64>().ok()?, *addr, *name)
        }
        [addr, name] => (0, *addr, *name),
        _ => return None,
    };
    let addr: IpAddr = addr.parse().ok()?;
    let name = match name {
        "*" | "ip" => None,
        n => Some(valid_name(n)?),
    };
    Some((addr, u32::try_from(time).unwrap_or(u32::MAX), name))
}

/// The host name `name` (a PTR answer, untrusted) as it may be written to
/// the cache: lower-case, without the final dot; `None` when it is not a
/// valid host name (bad characters, empty or over-long labels, over 253
/// characters), so nothing raw ever reaches the file.
pub fn valid_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    pysk_common::hostname::is_host_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_both_formats_and_saves_what_awstats_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dnscache.txt");
        std::fs::write(
            &path,
            "1700000000 192.0.2.1 host1.example.org\n\
             192.0.2.2 *\n\
             1700000001 2001:db8::1 six.example.net\n\
             garbage line here\n\
             1700000002 192.0.2.3 bad\x01name\n\
             1700000002 192.0.2.4 Upper.Case.Example\n\
             1700000009 192.0.2.1 later.example.org\n\
             \n",
        )
        .expect("write");
        let (mut cache, loaded) = Cache::load(&path).expect("load");
        assert_eq!(loaded.entries, 5);
        assert_eq!(loaded.bad_lines, 2);
        assert_eq!(loaded.first_bad, 4);
        assert_eq!(cache.len(), 4, "192.0.2.1 is listed twice");
        cache.set(
            key("192.0.2.9".parse().expect("ip")),
            1_700_000_100,
            Some("new.example"),
        );
        cache.add_missing(&[key("192.0.2.8".parse().expect("ip"))]);
        cache.save(&path).expect("save");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "1700000009 192.0.2.1 later.example.org\n\
             0 192.0.2.2 *\n\
             1700000002 192.0.2.4 upper.case.example\n\
             0 192.0.2.8 *\n\
             1700000100 192.0.2.9 new.example\n\
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
