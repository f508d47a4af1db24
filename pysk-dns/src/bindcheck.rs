//! What BIND would refuse in a zone, found before its file is installed:
//! a name server inside the zone without an address record in it (no
//! glue), and whatever `named-checkzone` (switch `dns_checkzone`) finds
//! in the rendered file.

use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

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

/// Runs `program` (`named-checkzone`; no shell) on `text` staged in a
/// temporary file, as `program <zone> <file>`. The checker's message,
/// with the staged file's name replaced by `target`'s, when it refuses
/// the zone.
pub fn checkzone(program: &str, zone: &str, text: &str, target: &Path) -> Result<Checked, String> {
    let staged = stage(text).map_err(|e| format!("cannot stage the zone file: {}", cause(&e)))?;
    let out = match Command::new(program).arg(zone).arg(staged.path()).output() {
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
    let staged_name = staged.path().display().to_string();
    let lines: Vec<String> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.replace(&staged_name, &target.display().to_string()))
        .collect();
    Err(format!("{program} refuses it: {}", lines.join("; ")))
}

/// `text` in a new temporary file (mode 0600, removed when dropped).
fn stage(text: &str) -> io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("pysk-dns-check.")
        .tempfile()?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(file)
}
