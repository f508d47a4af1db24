//! What BIND would refuse in a zone, found before its file is installed:
//! a name server inside the zone without an address record in it (no
//! glue), and whatever `named-checkzone` (switch `dns_checkzone`) finds
//! in the rendered file.

use std::io::{self, Write};
use std::path::Path;
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
