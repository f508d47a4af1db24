//! duplicity's `--log-fd` output, the form meant for programs: records
//! separated by a blank line, each starting `LEVEL CODE [data]`, the data
//! continued on lines without a prefix, the message for people on lines
//! starting with `. `. Codes and data are what frontends rely on
//! (duplicity's `log.py`: "these values should never change").

use std::collections::HashMap;

use crate::engine::{Chain, Entry, Set, said};

/// `InfoCode.collection_status`: the chains.
const COLLECTION_STATUS: u32 = 3;
/// `InfoCode.file_list`: one file of `list-current-files`.
const FILE_LIST: u32 = 10;

/// One record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `ERROR`, `WARNING`, `NOTICE`, `INFO`, `DEBUG`.
    pub level: String,
    /// duplicity's code for the record.
    pub code: u32,
    /// The data: the rest of the first line, then every unprefixed line.
    pub data: Vec<String>,
    /// The message for people, without its `. ` prefixes.
    pub message: Vec<String>,
}

/// The records of a log.
pub fn records(log: &str) -> Vec<Record> {
    let mut all = Vec::new();
    let mut current: Option<Record> = None;
    for line in log.lines() {
        if line.is_empty() {
            all.extend(current.take());
        } else if let Some(record) = current.as_mut() {
            match line.strip_prefix('.') {
                Some(text) => record
                    .message
                    .push(text.strip_prefix(' ').unwrap_or(text).into()),
                None => record.data.push(line.to_owned()),
            }
        } else {
            current = start(line);
        }
    }
    all.extend(current);
    all
}

/// A record's first line, `LEVEL CODE [data]`.
fn start(line: &str) -> Option<Record> {
    let mut words = line.splitn(3, ' ');
    let level = words.next()?.to_owned();
    let code = words.next()?.trim().parse().ok()?;
    let rest = words.next().unwrap_or("").trim();
    Some(Record {
        level,
        code,
        data: (!rest.is_empty())
            .then(|| rest.to_owned())
            .into_iter()
            .collect(),
        message: Vec::new(),
    })
}

/// The `ERROR` records: code and message, a Python traceback in it left
/// out (its exception line kept).
pub fn errors(records: &[Record]) -> Vec<(u32, String)> {
    records
        .iter()
        .filter(|r| r.level == "ERROR")
        .map(|r| (r.code, said::python_cause(&r.message)))
        .collect()
}

/// The backup statistics (`SourceFiles 7`, `TotalDestinationSizeChange
/// 3420 (3.34 KB)`): each key with its number, the fraction dropped.
pub fn statistics(records: &[Record]) -> HashMap<String, u64> {
    let mut stats = HashMap::new();
    for line in records.iter().flat_map(|r| &r.message) {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let whole = value.split('.').next().unwrap_or(value);
        if let (true, Ok(n)) = (key.chars().all(|c| c.is_ascii_alphabetic()), whole.parse()) {
            stats.insert(key.to_owned(), n);
        }
    }
    stats
}

/// The chains of `collection-status`, each with its sets, oldest first.
pub fn chains(records: &[Record]) -> Vec<Chain> {
    let mut chains: Vec<Chain> = Vec::new();
    let data = records
        .iter()
        .filter(|r| r.code == COLLECTION_STATUS && r.level == "INFO");
    for line in data.flat_map(|r| &r.data) {
        if line.starts_with("chain-complete") || line.starts_with("chain-no-sig") {
            chains.push(Chain {
                complete: line.starts_with("chain-complete"),
                sets: Vec::new(),
            });
        } else if let (Some(chain), Some(set)) = (chains.last_mut(), set(line)) {
            chain.sets.push(set);
        }
    }
    chains.sort_by(|a, b| {
        a.sets
            .first()
            .map(|s| &s.time)
            .cmp(&b.sets.first().map(|s| &s.time))
    });
    chains
}

/// ` full 20261129T234600Z 1 enc` as a set.
fn set(line: &str) -> Option<Set> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let kind = match *words.first()? {
        "full" => "full",
        "inc" => "incremental",
        _ => return None,
    };
    Some(Set {
        kind: kind.to_owned(),
        time: rfc3339(words.get(1)?)?,
        id: None,
        volumes: words.get(2)?.parse().ok(),
    })
}

/// The files of `list-current-files`: `20261129T234558Z 'a/f.txt' reg`.
pub fn files(records: &[Record]) -> Vec<Entry> {
    let data = records
        .iter()
        .filter(|r| r.code == FILE_LIST && r.level == "INFO");
    data.filter_map(|r| file(r.data.first()?)).collect()
}

/// One file line; the source's root (`.`) is left out.
fn file(line: &str) -> Option<Entry> {
    let (time, rest) = line.split_once(' ')?;
    let (quoted, kind) = rest.rsplit_once(' ')?;
    let path = unescape(quoted.strip_prefix('\'')?.strip_suffix('\'')?);
    let kind = match kind {
        "reg" => "file",
        "sym" => "symlink",
        "dir" => "dir",
        other => other,
    };
    (path != ".").then(|| Entry {
        path,
        kind: kind.to_owned(),
        mtime: rfc3339(time).unwrap_or_else(|| time.to_owned()),
        size: None,
    })
}

/// Undoes Python's `unicode-escape` (how duplicity's `util.escape` writes
/// a path): `\\`, `\n`, `\t`, `\r`, `\xNN`, `\uNNNN`, `\UNNNNNNNN`.
pub fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| {
            let digits: String = chars.by_ref().take(n).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
        };
        let decoded = match chars.next() {
            Some('n') => Some('\n'),
            Some('t') => Some('\t'),
            Some('r') => Some('\r'),
            Some('x') => hex(&mut chars, 2),
            Some('u') => hex(&mut chars, 4),
            Some('U') => hex(&mut chars, 8),
            other => other,
        };
        out.push(decoded.unwrap_or('\u{fffd}'));
    }
    out
}

/// The paths of `WARNING` records duplicity could not read or stat
/// (`WarningCode.cannot_read` 10, `cannot_stat` 9), as written.
pub fn unreadable(records: &[Record]) -> Vec<String> {
    let warnings = records
        .iter()
        .filter(|r| r.level == "WARNING" && matches!(r.code, 9 | 10));
    warnings
        .filter_map(|r| r.data.first())
        .filter_map(|d| Some(unescape(d.strip_prefix('\'')?.strip_suffix('\'')?)))
        .collect()
}

/// The messages of `verify --compare-data`'s differences, after
/// `Difference found: `.
pub fn differences(records: &[Record]) -> Vec<String> {
    let notices = records.iter().filter(|r| r.level == "NOTICE");
    notices
        .flat_map(|r| r.message.first())
        .filter_map(|m| m.strip_prefix("Difference found: "))
        .map(str::to_owned)
        .collect()
}

/// duplicity's `20261129T234600Z` as `2026-11-29T23:46:00Z`.
pub fn rfc3339(stamp: &str) -> Option<String> {
    let b = stamp.as_bytes();
    if b.len() != 16 {
        return None;
    }
    let shape = b[8] == b'T' && b[15] == b'Z';
    let digits = b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    (shape && digits).then(|| {
        let s = stamp;
        format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "NOTICE 1\n. Last full backup date: Sun Nov 29 23:46:00 2026\n\n\
INFO 3 \nbackend BackendWrapper\narchive-dir (. dir)\nchain-complete\n full 20261129T234600Z 1 enc\n \
inc 20261129T234606Z 2 enc\norphaned-sets-num 0\nincomplete-sets-num 0\n. Collection Status\n. ---\n\n";

    #[test]
    fn collection_status_gives_the_chain_and_its_sets() {
        let chains = chains(&records(STATUS));
        assert_eq!(chains.len(), 1);
        assert!(chains[0].complete);
        let sets: Vec<_> = chains[0]
            .sets
            .iter()
            .map(|s| (s.kind.as_str(), s.time.as_str(), s.volumes))
            .collect();
        assert_eq!(
            sets,
            [
                ("full", "2026-11-29T23:46:00Z", Some(1)),
                ("incremental", "2026-11-29T23:46:06Z", Some(2))
            ]
        );
    }

    #[test]
    fn file_lines_are_unescaped_and_the_root_left_out() {
        let log = "INFO 10 20261129T234558Z '.' dir\n. x\n\nINFO 10 20261129T234604Z 'a b/it\\x27s \\xe9\\u20ac' reg\n. y\n\n";
        let files = files(&records(log));
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "a b/it's é€");
        assert_eq!(
            (files[0].kind.as_str(), files[0].mtime.as_str()),
            ("file", "2026-11-29T23:46:04Z")
        );
    }

    #[test]
    fn errors_and_statistics_are_read_by_code_and_key() {
        let log = "NOTICE 1\n. --[ Backup Statistics ]--\n. SourceFiles 7\n. TotalDestinationSizeChange 3420 (3.34 KB)\n. ElapsedTime 0.01 (0.01 seconds)\n\nERROR 21\n. Invalid data - SHA1 hash mismatch for file:\n.  vol1\n. \n";
        let recs = records(log);
        assert_eq!(
            errors(&recs),
            [(
                21,
                "Invalid data - SHA1 hash mismatch for file: vol1".to_owned()
            )]
        );
        let stats = statistics(&recs);
        assert_eq!(
            (
                stats["SourceFiles"],
                stats["TotalDestinationSizeChange"],
                stats["ElapsedTime"]
            ),
            (7, 3420, 0)
        );
    }

    #[test]
    fn unreadable_paths_come_from_cannot_read_and_cannot_stat_warnings() {
        let log = "WARNING 10 '/srv/d/it\\x27s'\n. Error accessing possibly locked file /srv/d/it's\n\n\
WARNING 9 'gone'\n. x\n\nWARNING 5\n. incomplete\n\n";
        assert_eq!(unreadable(&records(log)), ["/srv/d/it's", "gone"]);
    }

    #[test]
    fn a_stamp_of_the_wrong_length_or_shape_is_none() {
        assert_eq!(rfc3339("2026"), None);
        assert_eq!(rfc3339(""), None);
        assert_eq!(rfc3339("20261129T2346000"), None);
        assert_eq!(rfc3339("20261129T234600Z0"), None);
        assert_eq!(
            rfc3339("20261129T234600Z").as_deref(),
            Some("2026-11-29T23:46:00Z")
        );
        let short = files(&records("INFO 10 2026 'a' reg\n. a\n\n"));
        assert_eq!(
            (short[0].path.as_str(), short[0].mtime.as_str()),
            ("a", "2026")
        );
    }
}
