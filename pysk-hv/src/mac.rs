//! `pysk-hv mac`: a locally administered unicast MAC address for a new
//! virtual server, random or derived from a name, never one the virtual
//! servers' definitions (switches `hv_vm_dir` and `hv_unit_dir`, where
//! `create` writes its units) already use.
//!
//! A MAC in use is one written in any regular file below those
//! directories (symbolic links are not followed) as `mac=` or `macaddr=` (qemu
//! command lines in systemd units and monit scripts) or as libvirt's
//! `<mac address='…'/>`, in any case. A name gives the first six bytes
//! of its SHA-256, made locally administered and unicast; when that MAC
//! is in use, `NAME#1`, `NAME#2`… are tried in turn.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use pysk_common::error::read_err;
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::error::HvError;

/// The tool's lock file in `hv_state_dir`, held by `create` from
/// deriving the MAC to writing the unit.
pub const LOCK: &str = "pysk-hv.lock";

/// Where random MACs come from.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// How many random MACs are drawn before giving up (each of 2^46 is
/// equally likely, so a second draw is already rare).
const RANDOM_DRAWS: u32 = 64;

/// How many `NAME#N` are tried after `NAME` itself.
const DERIVED_TRIES: u32 = 10_000;

/// How much of a file is read at once.
const CHUNK: usize = 64 * 1024;

/// How much of a chunk's end is read again with the next, so that a MAC
/// cut by the chunk boundary is found whole (longer than any match).
const OVERLAP: usize = 256;

/// A MAC address; shown as six lowercase hex pairs separated by colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The locally administered unicast MAC of six bytes: bit 1 of the
    /// first octet set (local), bit 0 cleared (unicast).
    pub fn local_unicast(mut bytes: [u8; 6]) -> Mac {
        bytes[0] = (bytes[0] & 0xfc) | 0x02;
        Mac(bytes)
    }

    /// The MAC `name` gives: the first six bytes of its SHA-256, made
    /// locally administered and unicast.
    pub fn derived(name: &str) -> Mac {
        let digest = Sha256::digest(name.as_bytes());
        let mut bytes = [0; 6];
        bytes.copy_from_slice(&digest[..6]);
        Mac::local_unicast(bytes)
    }

    /// The MAC written at the start of `text`: six pairs of hex digits
    /// separated by colons, in any case.
    pub fn parse_prefix(text: &[u8]) -> Option<Mac> {
        let text = text.get(..17)?;
        let mut bytes = [0; 6];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = &text[i * 3..i * 3 + 2];
            if i > 0 && text[i * 3 - 1] != b':' {
                return None;
            }
            if !pair.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Mac(bytes))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The MACs in use, each with the first file that names it.
pub type InUse = BTreeMap<Mac, PathBuf>;

/// What `mac` needs (resolved in `settings::mac`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The directories whose definitions' MACs are in use (switches
    /// `hv_vm_dir` and `hv_unit_dir`).
    pub dirs: Vec<PathBuf>,
    /// Derive the MAC from this name; `None`: random.
    pub name: Option<String>,
    /// `--json`.
    pub json: bool,
    /// Where the tool's lock is (switch `hv_state_dir`).
    pub state_dir: PathBuf,
    /// How long to wait for a `create` holding the lock.
    pub wait: Duration,
}

/// The `--json` document of `mac`.
#[derive(Debug, Serialize)]
struct Document<'a> {
    mac: String,
    derived_from: Option<&'a str>,
    used: Vec<String>,
}

/// Prints a MAC no definition in `hv_vm_dir` uses: derived from the
/// name (the next `NAME#N` when taken, said on stderr), else random.
pub fn run(options: &Options, report: &Reporter, out: &mut impl Write) -> Result<Outcome, HvError> {
    // A create holding the lock may be writing a MAC: wait for it; make
    // no lock file, as nothing is changed here.
    let _lock = Lock::existing(&options.state_dir.join(LOCK), options.wait)?;
    let used = in_use(&options.dirs, report)?;
    let (mac, from) = match &options.name {
        Some(name) => {
            let (mac, from) = derive_free(name, &used)?;
            let first = Mac::derived(name);
            if let Some(file) = used.get(&first) {
                report.warn(format_args!(
                    "{first} from {name} is in use ({}): {mac} from {from} instead",
                    file.display()
                ));
            }
            (mac, Some(from))
        }
        None => (random_free(&used)?, None),
    };
    let text = if options.json {
        pysk_common::report::json(&Document {
            mac: mac.to_string(),
            derived_from: from.as_deref(),
            used: used.keys().map(ToString::to_string).collect(),
        })?
    } else {
        mac.to_string()
    };
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}

/// The first of `name`, `name#1`, `name#2`… whose MAC is not in use:
/// the MAC and the name it came from.
pub fn derive_free(name: &str, used: &InUse) -> Result<(Mac, String), HvError> {
    (0..=DERIVED_TRIES)
        .map(|n| match n {
            0 => name.to_owned(),
            n => format!("{name}#{n}"),
        })
        .map(|from| (Mac::derived(&from), from))
        .find(|(mac, _)| !used.contains_key(mac))
        .ok_or_else(|| {
            HvError::Common(pysk_common::Error::Internal(format!(
                "no free MAC from {name} in {DERIVED_TRIES} tries"
            )))
        })
}

/// A random locally administered unicast MAC not in use.
pub fn random_free(used: &InUse) -> Result<Mac, HvError> {
    for _ in 0..RANDOM_DRAWS {
        let mut bytes = [0; 6];
        File::open(RANDOM_SOURCE)
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(read_err(RANDOM_SOURCE))?;
        let mac = Mac::local_unicast(bytes);
        if !used.contains_key(&mac) {
            return Ok(mac);
        }
    }
    Err(HvError::Common(pysk_common::Error::Internal(format!(
        "{RANDOM_DRAWS} random MACs all in use: is {RANDOM_SOURCE} random?"
    ))))
}

/// Every MAC the regular files below `dirs` name. A directory that does
/// not exist holds none (said on stderr); a file or directory below it
/// that cannot be read is an error naming it.
pub fn in_use(dirs: &[PathBuf], report: &Reporter) -> Result<InUse, HvError> {
    let mut used = InUse::new();
    for dir in dirs {
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                report.info(format_args!(
                    "{}: no such directory: no MAC in use there",
                    dir.display()
                ));
            }
            Err(e) => return Err(read_err(dir)(e).into()),
            Ok(_) => scan_dir(dir, &mut used)?,
        }
    }
    Ok(used)
}

/// Adds the MACs of every regular file below `dir`, in name order;
/// symbolic links and special files are passed over.
fn scan_dir(dir: &Path, used: &mut InUse) -> Result<(), HvError> {
    let mut entries = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(read_err(dir))?;
    entries.sort();
    for path in entries {
        let kind = fs::symlink_metadata(&path)
            .map_err(read_err(&path))?
            .file_type();
        if kind.is_dir() {
            scan_dir(&path, used)?;
        } else if kind.is_file() {
            scan_file(&path, used)?;
        }
    }
    Ok(())
}

/// Adds the MACs `path` names, read a chunk at a time (a disk image
/// left in the directory is read through, never held whole).
pub fn scan_file(path: &Path, used: &mut InUse) -> Result<(), HvError> {
    let mut file = File::open(path).map_err(read_err(path))?;
    let mut buf = vec![0; OVERLAP + CHUNK];
    let mut kept = 0;
    loop {
        let n = match file.read(&mut buf[kept..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(path)(e).into()),
        };
        let end = kept + n;
        for mac in scan(&buf[..end]) {
            used.entry(mac).or_insert_with(|| path.to_owned());
        }
        kept = end.min(OVERLAP);
        buf.copy_within(end - kept..end, 0);
    }
}

/// The MACs `text` names as `mac=`, `macaddr=` (an optional quote after
/// the `=`) or `<mac address='…'`, in any case.
pub fn scan(text: &[u8]) -> Vec<Mac> {
    (0..text.len())
        .filter(|&i| starts_with(&text[i..], b"mac"))
        .filter_map(|i| {
            let tag = i > 0 && text[i - 1] == b'<';
            value(&text[i + 3..], tag).and_then(Mac::parse_prefix)
        })
        .collect()
}

/// Where the value starts after `mac`: after `=` or `addr=`, or in a tag
/// after ` address=`; an opening quote skipped.
fn value(rest: &[u8], tag: bool) -> Option<&[u8]> {
    let rest = if let Some(rest) = rest.strip_prefix(b"=") {
        rest
    } else if starts_with(rest, b"addr=") {
        &rest[5..]
    } else if tag {
        let after = skip_blanks(rest);
        if after.len() == rest.len() || !starts_with(after, b"address") {
            return None;
        }
        skip_blanks(skip_blanks(&after[7..]).strip_prefix(b"=")?)
    } else {
        return None;
    };
    Some(match rest.first() {
        Some(b'\'' | b'"') => &rest[1..],
        _ => rest,
    })
}

/// `text` without its leading blanks (spaces, tabs, newlines).
fn skip_blanks(text: &[u8]) -> &[u8] {
    let n = text.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &text[n..]
}

/// Whether `text` starts with `prefix`, in any case.
fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pysk_common::exit::ToolError;
    use pysk_common::report::Level;

    fn mac(text: &str) -> Mac {
        Mac::parse_prefix(text.as_bytes()).expect("a MAC")
    }

    fn macs(text: &str) -> Vec<String> {
        scan(text.as_bytes())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_mac_reads_in_any_case_and_shows_in_lowercase() {
        assert_eq!(mac("52:54:00:AB:cd:0F").to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(Mac::parse_prefix(b"52:54:00:ab:cd:0"), None);
        assert_eq!(Mac::parse_prefix(b"52-54-00-ab-cd-0f"), None);
        assert_eq!(Mac::parse_prefix(b"52:54:00:ab:cd:g0"), None);
    }

    #[test]
    fn every_mac_made_is_locally_administered_and_unicast() {
        assert_eq!(
            Mac::local_unicast([0xff; 6]).to_string(),
            "fe:ff:ff:ff:ff:ff"
        );
        assert_eq!(Mac::local_unicast([0; 6]).to_string(), "02:00:00:00:00:00");
        for name in ["", "web1", "web1#1", "db.example.org"] {
            assert_eq!(Mac::derived(name).0[0] & 3, 2, "{name}");
        }
    }

    #[test]
    fn a_name_gives_the_first_six_bytes_of_its_sha256() {
        // SHA-256("abc") = ba7816bf8f01…; 0xba & 0xfc | 2 = 0xba.
        assert_eq!(Mac::derived("abc").to_string(), "ba:78:16:bf:8f:01");
        // SHA-256("") = e3b0c44298fc…; 0xe3 & 0xfc | 2 = 0xe2.
        assert_eq!(Mac::derived("").to_string(), "e2:b0:c4:42:98:fc");
    }

    #[test]
    fn qemu_and_libvirt_spellings_are_found_and_others_are_not() {
        let text = "ExecStart=/usr/bin/qemu-system-x86_64 -device virtio-net-pci,netdev=n0,MAC=52:54:00:00:00:01 \\\n\
                    -net nic,macaddr='52:54:00:00:00:02' -nic tap,mac=\"52:54:00:00:00:03\"\n\
                    <interface type='bridge'>\n  <MAC\n address = \"52:54:00:00:00:04\"/>\n\
                    <mac address='52:54:00:00:00:05'/>\n\
                    address=52:54:00:00:00:06 mac 52:54:00:00:00:07 mac=52:54:00:00:00 <macaddress='52:54:00:00:00:08'/>";
        assert_eq!(
            macs(text),
            [
                "52:54:00:00:00:01",
                "52:54:00:00:00:02",
                "52:54:00:00:00:03",
                "52:54:00:00:00:04",
                "52:54:00:00:00:05"
            ]
        );
    }

    #[test]
    fn a_mac_across_a_chunk_boundary_is_found_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("big.img");
        let mut data = vec![b'x'; CHUNK - 6];
        data.extend_from_slice(b"mac=52:54:00:aa:bb:cc\n");
        data.extend(vec![0u8; 3 * CHUNK]);
        data.extend_from_slice(b"<mac address='52:54:00:aa:bb:cd'/>");
        fs::write(&file, data).expect("write");
        let mut used = InUse::new();
        scan_file(&file, &mut used).expect("scan");
        let found: Vec<String> = used.keys().map(ToString::to_string).collect();
        assert_eq!(found, ["52:54:00:aa:bb:cc", "52:54:00:aa:bb:cd"]);
        assert!(used.values().all(|p| *p == file));
    }

    #[test]
    fn every_regular_file_below_the_directory_counts_and_links_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("qemu/autostart");
        fs::create_dir_all(&sub).expect("mkdir");
        fs::write(dir.path().join("a.service"), "mac=02:00:00:00:00:01").expect("write");
        fs::write(
            dir.path().join("qemu/b.xml"),
            "<mac address='02:00:00:00:00:02'/>",
        )
        .expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("c"), "mac=02:00:00:00:00:03").expect("write");
        std::os::unix::fs::symlink(outside.path().join("c"), sub.join("c.xml")).expect("link");
        let report = Reporter::new("pysk-hv", Level::Quiet);
        let used = in_use(&[dir.path().to_path_buf()], &report).expect("scan");
        let found: Vec<(String, PathBuf)> = used
            .iter()
            .map(|(m, p)| (m.to_string(), p.clone()))
            .collect();
        assert_eq!(
            found,
            [
                ("02:00:00:00:00:01".to_owned(), dir.path().join("a.service")),
                (
                    "02:00:00:00:00:02".to_owned(),
                    dir.path().join("qemu/b.xml")
                ),
            ]
        );
        assert!(
            in_use(&[dir.path().join("none")], &report)
                .expect("none")
                .is_empty()
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = scan_file(dir.path(), &mut InUse::new()).expect_err("a directory");
        assert_eq!(err.exit_code(), pysk_common::exit::IOERR);
        assert!(
            err.to_string()
                .starts_with(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_derived_mac_in_use_gives_way_to_the_next_name() {
        let mut used = InUse::new();
        assert_eq!(
            derive_free("web1", &used).expect("free"),
            (Mac::derived("web1"), "web1".to_owned())
        );
        used.insert(Mac::derived("web1"), PathBuf::from("a"));
        used.insert(Mac::derived("web1#1"), PathBuf::from("b"));
        assert_eq!(
            derive_free("web1", &used).expect("free"),
            (Mac::derived("web1#2"), "web1#2".to_owned())
        );
    }

    #[test]
    fn random_macs_are_local_unicast_and_differ() {
        let used = InUse::new();
        let a = random_free(&used).expect("random");
        let b = random_free(&used).expect("random");
        assert_eq!(a.0[0] & 3, 2);
        assert_eq!(b.0[0] & 3, 2);
        assert_ne!(a, b);
    }

    #[test]
    fn the_output_is_the_mac_or_the_json_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("vm"), format!("mac={}", Mac::derived("x"))).expect("write");
        let report = Reporter::new("pysk-hv", Level::Quiet);
        let mut options = Options {
            dirs: vec![dir.path().to_owned()],
            name: Some("y".to_owned()),
            json: false,
            state_dir: dir.path().join("state"),
            wait: Duration::ZERO,
        };
        let mut out = Vec::new();
        run(&options, &report, &mut out).expect("run");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            format!("{}\n", Mac::derived("y"))
        );
        options.name = Some("x".to_owned());
        options.json = true;
        let mut out = Vec::new();
        run(&options, &report, &mut out).expect("run");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            format!(
                "{{\n  \"version\": 1,\n  \"mac\": \"{}\",\n  \"derived_from\": \"x#1\",\n  \"used\": [\n    \"{}\"\n  ]\n}}\n",
                Mac::derived("x#1"),
                Mac::derived("x")
            )
        );
    }
}
