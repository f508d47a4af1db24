//! What runs on each host for `conf`: one shell script that prints the
//! current state of every path of the rendered tree, and one that writes
//! the changed paths from its stdin, atomically.
//!
//! The state comes back as a stream of records, one a path, in order: `F
//! <size> <mode>\n` and the file's bytes, `L\n<target>\n` for a link, `N\n`
//! for anything else (missing, a directory). A length header, not `tar c`:
//! a missing path is no error and needs no second round trip, the parse is
//! a few lines, and every host has `sh`, `wc`, `stat` and `cat`.
//!
//! The new files come on stdin one after another, each read with `dd
//! bs=N count=1 iflag=fullblock` (exactly N bytes, never more, so the next
//! file starts where this one ended) into a temporary file beside its path,
//! its size checked, `chmod`ed; only when every file has arrived is each
//! renamed over its path (`mv -Tf`, so a link or file replaces a link to a
//! directory rather than going into it). A failed step, HUP, INT, TERM or
//! PIPE removes the temporary files.

use crate::conf::render::{Entry, Kind};
use crate::ssh::quote;

/// A path's state on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A regular file: its bytes and permission bits.
    File(Vec<u8>, u32),
    /// A symbolic link to this target.
    Link(String),
    /// Not there, or neither a file nor a link.
    Missing,
}

/// The shell text that prints the state of each of `paths`.
pub fn read_script(paths: &[String]) -> String {
    let list: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    format!(
        "for p in {}; do if [ -L \"$p\" ]; then echo L; readlink -- \"$p\" || exit 1; \
         elif [ -f \"$p\" ]; then echo \"F $(wc -c < \"$p\") $(stat -c %a -- \"$p\")\" && \
         cat -- \"$p\" || exit 1; else echo N; fi; done",
        list.join(" ")
    )
}

/// Parses what [`read_script`] printed for `count` paths.
pub fn parse(mut out: &[u8], count: usize) -> Result<Vec<Remote>, String> {
    let mut states = Vec::with_capacity(count);
    for _ in 0..count {
        let (head, rest) = line(out)?;
        out = rest;
        let words: Vec<&str> = head.split(' ').collect();
        match words.as_slice() {
            ["N"] => states.push(Remote::Missing),
            ["L"] => {
                let (target, rest) = line(out)?;
                out = rest;
                states.push(Remote::Link(target.to_owned()));
            }
            ["F", size, mode] => {
                let size: usize = size.parse().map_err(|_| format!("bad size {size:?}"))?;
                let mode =
                    u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode:?}"))?;
                if out.len() < size {
                    return Err("a file cut short".to_owned());
                }
                states.push(Remote::File(out[..size].to_vec(), mode));
                out = &out[size..];
            }
            _ => return Err(format!("unexpected line {head:?}")),
        }
    }
    if out.is_empty() {
        Ok(states)
    } else {
        Err("more output than paths".to_owned())
    }
}

/// The first line of `out` (without its newline) and the rest.
fn line(out: &[u8]) -> Result<(&str, &[u8]), String> {
    let end = out
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("the output ended early")?;
    let text = std::str::from_utf8(&out[..end]).map_err(|_| "a line not UTF-8".to_owned())?;
    Ok((text, &out[end + 1..]))
}

/// Whether `entry` differs from the host's `state`.
pub fn differs(entry: &Entry, state: &Remote) -> bool {
    match (&entry.kind, state) {
        (Kind::File { bytes, mode }, Remote::File(old, old_mode)) => {
            bytes != old || mode != old_mode
        }
        (Kind::Link(target), Remote::Link(old)) => target != old,
        _ => true,
    }
}

/// The shell text that writes `entries` (each at `root` + its path) from
/// stdin, which holds the files' bytes in the same order.
pub fn write_script(entries: &[Entry], root: &str) -> String {
    let temp = |e: &Entry| format!("{}\".pysk-hv.$$\"", quote(&format!("{root}{}", e.path)));
    let temps: Vec<String> = entries.iter().map(temp).collect();
    let mut script = format!(
        "umask 077; c() {{ rm -f -- {}; }}; trap c EXIT; trap 'exit 1' HUP INT TERM PIPE; ",
        temps.join(" ")
    );
    for (entry, t) in entries.iter().zip(&temps) {
        let path = format!("{root}{}", entry.path);
        let dir = std::path::Path::new(&path)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_owned());
        script.push_str(&format!("mkdir -p -- {} || exit 1; ", quote(&dir)));
        match &entry.kind {
            Kind::Link(target) => {
                script.push_str(&format!("ln -s -- {} {t} || exit 1; ", quote(target)));
            }
            Kind::File { bytes, mode } => {
                let n = bytes.len();
                if n == 0 {
                    script.push_str(&format!(": > {t} || exit 1; "));
                } else {
                    script.push_str(&format!(
                        "dd of={t} bs={n} count=1 iflag=fullblock 2>/dev/null || exit 1; "
                    ));
                }
                script.push_str(&format!(
                    "[ \"$(wc -c < {t})\" -eq {n} ] || {{ echo {} >&2; exit 1; }}; \
                     chmod {mode:o} {t} || exit 1; ",
                    quote(&format!("{path}: short, left as it was"))
                ));
            }
        }
    }
    for (entry, t) in entries.iter().zip(&temps) {
        let path = quote(&format!("{root}{}", entry.path));
        script.push_str(&format!("mv -Tf -- {t} {path} || exit 1; "));
    }
    script.push_str("trap - EXIT");
    script
}

/// The bytes [`write_script`] reads: every file's, in order.
pub fn payload(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        if let Kind::File { bytes: b, .. } = &entry.kind {
            bytes.extend_from_slice(b);
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    fn sh(script: &str, input: &[u8]) -> std::process::Output {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("feed");
        child.wait_with_output().expect("ends")
    }

    fn file(path: &str, bytes: &[u8], mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File {
                bytes: bytes.to_vec(),
                mode,
            },
        }
    }

    #[test]
    fn written_files_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8");
        let entries = vec![
            file("/a/one", b"1\n2", 0o640),
            file("/a/empty", b"", 0o600),
            file("/b/it's", &(0..=255u8).collect::<Vec<_>>(), 0o755),
            Entry {
                path: "/l".into(),
                kind: Kind::Link("/x y".into()),
            },
        ];
        let out = sh(&write_script(&entries, root), &payload(&entries));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = fs::metadata(dir.path().join("a/one"))
            .expect("one")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let paths: Vec<String> = entries
            .iter()
            .map(|e| format!("{root}{}", e.path))
            .collect();
        let out = sh(&read_script(&paths), b"");
        assert!(out.status.success());
        let states = parse(&out.stdout, 4).expect("parses");
        for (entry, state) in entries.iter().zip(&states) {
            assert!(!differs(entry, state), "{entry:?} {state:?}");
        }
        assert_eq!(fs::read_dir(dir.path().join("a")).expect("ls").count(), 2);
    }

    #[test]
    fn a_missing_path_reads_as_missing() {
        let out = sh(&read_script(&["/nonexistent/x".into()]), b"");
        assert_eq!(parse(&out.stdout, 1).expect("parses"), [Remote::Missing]);
        assert!(parse(b"F 3 644\nab", 1).is_err());
    }
}
