//! The root's account files as they are on disk, read whole (they are
//! small) and kept as bytes: lines pysk-passwd does not manage are written
//! back exactly as read, whatever their encoding.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use pysk_common::error::read_err;

use crate::error::PasswdError;

/// One file: where it is and what it holds (`None`: it does not exist).
#[derive(Debug, Clone)]
pub struct Text {
    /// The file.
    pub path: PathBuf,
    /// Its content.
    pub bytes: Option<Vec<u8>>,
}

impl Text {
    /// Reads `path`; a missing file is `None`, other errors fail.
    pub fn read(path: PathBuf) -> Result<Text, PasswdError> {
        let bytes = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(read_err(path)(e).into()),
        };
        Ok(Text { path, bytes })
    }

    /// Reads `path`, which must exist.
    pub fn read_required(path: PathBuf) -> Result<Text, PasswdError> {
        let text = Text::read(path)?;
        if text.bytes.is_none() {
            return Err(read_err(&text.path)(io::ErrorKind::NotFound.into()).into());
        }
        Ok(text)
    }

    /// The lines, without their newlines (a last line without one
    /// included).
    pub fn lines(&self) -> Vec<&[u8]> {
        lines(self.bytes.as_deref().unwrap_or_default())
    }
}

/// The lines of `bytes` without their newlines.
pub fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&c| c == b'\n').collect()
}

/// Everything of the root that a sync reads.
#[derive(Debug, Clone)]
pub struct Files {
    /// `etc/passwd`.
    pub passwd: Text,
    /// `etc/group`.
    pub group: Text,
    /// `etc/shadow`.
    pub shadow: Text,
    /// `etc/gshadow` (kept consistent when it exists).
    pub gshadow: Text,
    /// The vsftpd chroot list, when one is configured.
    pub chroot_list: Option<Text>,
    /// The login shells `etc/shells` lists.
    pub shells: BTreeSet<String>,
}

impl Files {
    /// Reads the files of `root`; passwd, group and shadow must exist.
    pub fn read(root: &Path, chroot_list: Option<&Path>) -> Result<Files, PasswdError> {
        let etc = root.join("etc");
        let shells = Text::read(etc.join("shells"))?;
        let shells = lines(shells.bytes.as_deref().unwrap_or_default())
            .into_iter()
            .filter_map(|l| std::str::from_utf8(l).ok())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Ok(Files {
            passwd: Text::read_required(etc.join("passwd"))?,
            group: Text::read_required(etc.join("group"))?,
            shadow: Text::read_required(etc.join("shadow"))?,
            gshadow: Text::read(etc.join("gshadow"))?,
            chroot_list: chroot_list.map(|p| Text::read(p.to_owned())).transpose()?,
            shells,
        })
    }
}

/// The `:`-separated fields of an account file line.
pub fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&c| c == b':').collect()
}

/// The name of an entry whose numeric id (field `index`) lies in `range`:
/// a managed entry. NIS (`+`, `-`) and comment lines never are.
pub fn managed_name<'a>(
    line: &'a [u8],
    index: usize,
    range: &std::ops::RangeInclusive<u32>,
) -> Option<&'a str> {
    let f = fields(line);
    let name = std::str::from_utf8(f.first()?).ok()?;
    if name.is_empty() || name.starts_with(['+', '-', '#']) {
        return None;
    }
    let id: u32 = std::str::from_utf8(f.get(index)?).ok()?.parse().ok()?;
    range.contains(&id).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_a_missing_last_newline_and_empty_lines() {
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\n"), [b"".as_slice()]);
        assert_eq!(lines(b"a\n\nb"), [&b"a"[..], b"", b"b"]);
        assert_eq!(lines(b"a\nb\n"), [&b"a"[..], b"b"]);
    }

    #[test]
    fn only_ids_in_range_are_managed() {
        let r = 10000..=19999;
        assert_eq!(managed_name(b"al:x:10001:10001::/h:/s", 2, &r), Some("al"));
        assert_eq!(managed_name(b"root:x:0:0::/root:/bin/sh", 2, &r), None);
        assert_eq!(managed_name(b"+:x:10001:::", 2, &r), None);
        assert_eq!(managed_name(b"# al:x:10001", 2, &r), None);
        assert_eq!(managed_name(b"garbage", 2, &r), None);
    }
}
