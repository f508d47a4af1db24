//! What BIND would refuse in a zone, found before its file is installed:
//! a name server inside the zone without an address record in it (no
//! glue), and whatever `named-checkzone` (switch `dns_checkzone`) finds
//! in the rendered file.
//!
//! Starting one checker per zone costs about 10 ms of CPU, 90 s for the
//! 9,000 files of a first build of a large fleet. So when the checker is
//! BIND's `named-checkzone`, the changed zones are first loaded in
//! batches by the `named-checkconf -z` next to it ([`loaded_by_checkconf`]:
//! BIND's own loader, as `named` runs it); only the zones it does not
//! report as loaded are then checked one by one, which gives each refused
//! zone the checker's own message and verdict (`named`'s defaults are
//! stricter in places, an MX naming a CNAME among them, where
//! `named-checkzone` only warns). Any other checker runs per zone.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pysk_common::error::cause;

use crate::document::Data;
use crate::name;
use crate::zone::Assembled;

/// Why BIND would refuse `zone`'s name servers, if it would: one inside
/// the zone (its apex, or `ns1.<zone>`) needs an address record in the
/// zone, or no resolver can reach it.
pub fn missing_glue(zone: &Assembled) -> Option<String> {
    let missing: Vec<String> = zone
        .ns
        .iter()
        .filter(|ns| name::is_within(ns, &zone.name))
        .filter(|ns| {
            !zone
                .records
                .iter()
                .any(|e| e.owner == **ns && matches!(e.data, Data::A(_) | Data::Aaaa(_)))
        })
        .map(|ns| name::fqdn(ns))
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "its name server {} (from {}) lies inside the zone without an address record in it",
        missing.join(" "),
        zone.ns_servers.join(", ")
    ))
}

/// What the check of one zone file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The checker accepts it.
    Passed,
    /// The checker is not installed; nothing was checked.
    Absent,
}

/// What the checker is given as the zone file: the rendered text comes
/// on its standard input, so no file is ever staged (a killed build
/// leaves none, a dry run creates none). `-` would do too, but the
/// checker's messages then name a stream address, not a file.
const STDIN: &str = "/dev/stdin";

/// Runs `program` (`named-checkzone`; no shell) as `program <zone>
/// /dev/stdin` with `text` on its standard input. The checker's message,
/// with `/dev/stdin` replaced by `target`'s name, when it refuses the
/// zone.
pub fn checkzone(program: &str, zone: &str, text: &str, target: &Path) -> Result<Checked, String> {
    let out = match run(program, zone, text) {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checked::Absent),
        Err(e) => return Err(format!("{program}: cannot run: {}", cause(&e))),
    };
    if out.status.success() {
        return Ok(Checked::Passed);
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.replace(STDIN, &target.display().to_string()))
        .collect();
    Err(format!("{program} refuses it: {}", lines.join("; ")))
}

/// `program <zone> /dev/stdin`, fed `text` from a second thread while its
/// output is read (a checker that stops reading early makes the write
/// fail, which its exit status then explains).
fn run(program: &str, zone: &str, text: &str) -> io::Result<Output> {
    let mut child = Command::new(program)
        .arg(zone)
        .arg(STDIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                let _ = stdin.write_all(text.as_bytes());
            }
        });
        child.wait_with_output()
    })
}

/// The `named-checkconf` that loads zones as `program` checks them: the
/// one next to `program` when `program` is BIND's `named-checkzone`.
pub fn checkconf_for(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    (path.file_name()? == "named-checkzone").then(|| path.with_file_name("named-checkconf"))
}

/// The zones of `zones` (name, file text) that `checkconf -z` reports as
/// loaded, run once over a configuration naming all of them. Each text
/// and the configuration are handed over as anonymous memory files
/// (`memfd_create`), opened by the checker as `/proc/<our pid>/fd/<n>`:
/// no file is staged anywhere, a killed build leaves none. A zone the
/// checker does not report as loaded (refused, or its message not
/// understood) is not in the set; so is every zone when it cannot run.
pub fn loaded_by_checkconf(checkconf: &Path, zones: &[(&str, &str)]) -> HashSet<String> {
    let Ok(files) = zones
        .iter()
        .map(|(_, text)| memory_file(text))
        .collect::<io::Result<Vec<File>>>()
    else {
        return HashSet::new();
    };
    let pid = std::process::id();
    let mut conf = String::new();
    for ((zone, _), file) in zones.iter().zip(&files) {
        let fd = file.as_raw_fd();
        let _ = writeln!(
            conf,
            "zone \"{zone}\" {{ type master; file \"/proc/{pid}/fd/{fd}\"; }};"
        );
    }
    let Ok(conf) = memory_file(&conf) else {
        return HashSet::new();
    };
    let out = Command::new(checkconf)
        .arg("-z")
        .arg(format!("/proc/{pid}/fd/{}", conf.as_raw_fd()))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else {
        return HashSet::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("zone ")?.split_once("/IN: loaded serial "))
        .map(|(zone, _)| zone.to_owned())
        .collect()
}

/// How many of `zones` changed zones one `named-checkconf -z` loads:
/// each run costs about 15 ms to start, so one batch for each of rayon's
/// threads; but each zone is an open memory file while it runs, so at
/// most a quarter of the open-file limit shared between the threads (and
/// at least 16).
pub fn batch_size(zones: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill in.
    let open_files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    let threads = rayon::current_num_threads().max(1);
    zones
        .div_ceil(threads)
        .min(open_files / 4 / threads)
        .max(16)
}

/// An anonymous file in memory holding `text` (closed on exec; the
/// checker opens it through our `/proc/<pid>/fd`).
fn memory_file(text: &str) -> io::Result<File> {
    // SAFETY: the name is a valid C string; the call has no other input.
    let fd = unsafe { libc::memfd_create(c"pysk-dns-check".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(text.as_bytes())?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_uses_the_checkconf_next_to_named_checkzone_only() {
        assert_eq!(
            checkconf_for("named-checkzone"),
            Some(PathBuf::from("named-checkconf"))
        );
        assert_eq!(
            checkconf_for("/usr/sbin/named-checkzone"),
            Some(PathBuf::from("/usr/sbin/named-checkconf"))
        );
        assert_eq!(checkconf_for("/etc/bind/strict-checkzone"), None);
        assert_eq!(checkconf_for(""), None);
    }

    fn zone(name: &str, extra: &str) -> String {
        format!(
            "$ORIGIN {name}.\n$TTL 300\n@ IN SOA ns1.example.net. hostmaster.example.net. \
             ( 1 3600 900 604800 300 )\n@ IN NS ns1.example.net.\nwww IN A 192.0.2.1\n{extra}"
        )
    }

    #[test]
    fn named_checkconf_loads_a_batch_and_leaves_out_what_it_refuses() {
        let checkconf = Path::new("named-checkconf");
        if Command::new(checkconf).arg("-v").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "named-checkconf (bind9-utils) is not installed"
            );
            return;
        }
        let (good, bad, cname) = (
            zone("example.org", ""),
            zone("example.com", "x IN FOO bar\n"),
            zone("example.net", "@ IN MX 5 alias\nalias IN CNAME www\n"),
        );
        let zones = [
            ("example.org", good.as_str()),
            ("example.com", bad.as_str()),
            ("example.net", cname.as_str()),
        ];
        // named's own defaults refuse an MX naming a CNAME, which
        // named-checkzone only warns about: that zone is left to the
        // checker alone, whose verdict stands.
        let loaded = loaded_by_checkconf(checkconf, &zones);
        assert_eq!(loaded, HashSet::from(["example.org".to_owned()]));
        assert!(loaded_by_checkconf(Path::new("/nonexistent/named-checkconf"), &zones).is_empty());
    }
}
