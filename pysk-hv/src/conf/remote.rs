//! What runs on each host for `conf`: two short fixed shell scripts, one
//! that prints the current state of every path it reads on stdin, one that
//! writes the entries it reads on stdin, atomically. Neither carries a
//! path on its command line, so a tree of any size fits one `execve`
//! argument (Linux allows 128 KiB).
//!
//! [`READ`] takes one path a line (names with a newline are refused when
//! the tree is rendered) and answers with a line per path, in order: `F`
//! for a regular file, `L\n<target>\n` for a link, `D` for a directory,
//! `B\n<path>\n` for a missing path below something that is no directory
//! (a file where the tree has a directory), `N` for anything else
//! (missing, a FIFO); then a line `.`; then `<size> <mode>` for each
//! `F`, from one `stat` over all of them; then the files' bytes, one after
//! another, from one `cat`. A length header, not `tar c`: a missing path is
//! no error and needs no second round trip, the parse is a few lines, and
//! every host has `sh`, `stat` and `cat`; a few processes whatever the
//! tree's size. Blanks around the numbers are ignored.
//!
//! [`WRITE`] takes the entries one after another ([`payload`]): first
//! `C\n<path>\n` for each entry's path, then `D <mode>\n<path>\n` for each
//! directory of the tree that holds them, parents first. These are checked
//! before anything is made: a directory where a file or link goes, or
//! anything but a directory where a directory goes, is named on stderr and
//! nothing at all is changed (no directory made, no rename). Then the
//! missing directories are made with their modes (what lies above the
//! tree, under `--root`, 0755); then `F <size>
//! <mode>\n<path>\n` and exactly that many bytes, read with `dd bs=N
//! count=1 iflag=fullblock` (never more, so the next header starts where
//! the file ended), or `L\n<path>\n<target>\n`; then `E\n`, without which
//! (the input cut short) nothing is changed. Each goes, under its own
//! name, into a directory `.pysk-hv.<pid>` (0700) made beside its path,
//! the owner and group of an existing file there carried over (`chown`).
//! When every entry has arrived the
//! tree's modes are set (one `chmod` per mode), the files are synced, each
//! directory's entries are renamed into it (`mv -t`: one rename(2) each,
//! which replaces a link to a directory rather than going into it), and
//! the directories are synced. Should a rename still fail (a path changed
//! on the host since the check), each path is said to be `put in place`
//! or `not put in place` on stderr. A failed step, HUP, INT, TERM or PIPE
//! removes the temporary directories.

use crate::conf::render::{Entry, Kind};

/// A path's state on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A regular file: its bytes and permission bits.
    File(Vec<u8>, u32),
    /// A symbolic link to this target.
    Link(String),
    /// A directory, which `apply` does not replace.
    Dir,
    /// Not there, below this path, which is there but no directory.
    Blocked(String),
    /// Not there, or neither a file, a link nor a directory.
    Missing,
}

/// The shell text that prints the state of each path on its stdin.
pub const READ: &str = r#"w=$(mktemp -d) || exit 1; trap 'rm -rf -- "$w"' EXIT; : > "$w/f"
while IFS= read -r p; do if [ -L "$p" ]; then echo L; readlink -- "$p" || exit 1
elif [ -f "$p" ]; then echo F; printf '%s\0' "$p" >> "$w/f"; elif [ -d "$p" ]; then echo D
else q=$p; b=; while q=${q%/*}; [ -n "$q" ]; do if [ -d "$q" ]; then break
elif [ -e "$q" ] || [ -L "$q" ]; then b=$q; break; fi; done
if [ -n "$b" ]; then echo B; printf '%s\n' "$b"; else echo N; fi; fi; done
echo .
if [ -s "$w/f" ]; then xargs -0 stat -c '%s %a' -- < "$w/f" && xargs -0 cat -- < "$w/f" || exit 1; fi
"#;

/// The shell text that writes the entries on its stdin ([`payload`]).
pub const WRITE: &str = r#"umask 077; w=$(mktemp -d) || exit 1; : > "$w/d"; : > "$w/f"; : > "$w/a"; : > "$w/k"
e=; x=; r=; c() { while IFS= read -r d; do rm -rf -- "$d/.pysk-hv.$$"; done < "$w/d"; rm -rf -- "$w"; }
s() { while IFS= read -r t && IFS= read -r q; do if [ -e "$t" ] || [ -L "$t" ]
then echo "not put in place: $q"; else echo "put in place: $q"; fi; done < "$w/a" >&2; exit 1; }
trap c EXIT; trap 'exit 1' HUP INT TERM PIPE
while IFS= read -r k; do [ "$k" != E ] || { e=1; break; }; IFS= read -r p || break
d="${p%/*}"; d="${d:-/}"; t="$d/.pysk-hv.$$"
case $k in C) if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p: a directory, where a file goes" >&2; x=1; fi
continue;; D*) if [ -d "$p" ]; then :; elif [ -e "$p" ] || [ -L "$p" ]
then echo "$p: not a directory, where one goes" >&2; x=1; else set -- $k; printf '%s\n%s\n' "$2" "$p" >> "$w/k"; fi
continue;; esac
if [ -z "$r" ]; then r=1; [ -z "$x" ] || { echo 'nothing was changed' >&2; exit 1; }
while IFS= read -r m && IFS= read -r q; do u="${q%/*}"
[ -d "$q" ] || { (umask 022; mkdir -p -- "${u:-/}") && mkdir -m "$m" -- "$q"; } || exit 1; done < "$w/k"; fi
if [ ! -d "$t" ]; then if [ ! -d "$d" ]; then (umask 022; mkdir -p -- "$d") || exit 1; fi
mkdir -- "$t" || exit 1; printf '%s\n' "$d" >> "$w/d"; fi
t="$t/${p##*/}"; printf '%s\n%s\n' "$t" "$p" >> "$w/a"
case $k in
L) IFS= read -r g || break; ln -s -- "$g" "$t" || exit 1;;
*) set -- $k
if [ "$2" -gt 0 ]; then dd of="$t" bs="$2" count=1 iflag=fullblock 2>/dev/null; else : > "$t"; fi || exit 1
if [ -f "$p" ] && [ ! -L "$p" ]; then chown "$(stat -c %u:%g -- "$p")" "$t" || exit 1; fi
printf '%s\0' "$t" >> "$w/m$3"; printf '%s\0' "$t" >> "$w/f";;
esac; done
[ -n "$e" ] || { echo 'the input ended early; nothing was changed' >&2; exit 1; }
[ -z "$x" ] || { echo 'nothing was changed' >&2; exit 1; }
for m in "$w"/m*; do [ ! -e "$m" ] || xargs -0 chmod "${m##*/m}" < "$m" || exit 1; done
[ ! -s "$w/f" ] || xargs -0 sync -- < "$w/f" || exit 1
while IFS= read -r d; do find "$d/.pysk-hv.$$" -mindepth 1 -maxdepth 1 -exec mv -f -t "$d" -- {} + &&
rmdir -- "$d/.pysk-hv.$$" || s; done < "$w/d"
tr '\n' '\0' < "$w/d" | xargs -0 sync -- || exit 1
trap - EXIT; rm -rf -- "$w"
"#;

/// What [`READ`] reads: `paths`, one a line.
pub fn path_list(paths: &[String]) -> Vec<u8> {
    let mut list = String::new();
    for path in paths {
        list.push_str(path);
        list.push('\n');
    }
    list.into_bytes()
}

/// Parses what [`READ`] printed for `count` paths.
pub fn parse(out: &[u8], count: usize) -> Result<Vec<Remote>, String> {
    let (mut states, mut out) = kinds(out, count)?;
    let (end, rest) = line(out)?;
    if end != "." {
        return Err(format!("unexpected line {end:?}"));
    }
    out = rest;
    let mut sizes = Vec::new();
    let count = states
        .iter()
        .filter(|s| matches!(s, Remote::File(..)))
        .count();
    for _ in 0..count {
        let (head, rest) = line(out)?;
        out = rest;
        let words: Vec<&str> = head.split_whitespace().collect();
        let [size, mode] = words.as_slice() else {
            return Err(format!("unexpected line {head:?}"));
        };
        let size: usize = size.parse().map_err(|_| format!("bad size {size:?}"))?;
        let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode:?}"))?;
        sizes.push((size, mode));
    }
    let mut files = Vec::new();
    for (size, mode) in sizes {
        if out.len() < size {
            return Err("a file cut short".to_owned());
        }
        files.push(Remote::File(out[..size].to_vec(), mode));
        out = &out[size..];
    }
    if !out.is_empty() {
        return Err("more output than paths".to_owned());
    }
    let mut files = files.into_iter();
    for state in &mut states {
        if matches!(state, Remote::File(..)) {
            *state = files.next().ok_or("a file missing")?;
        }
    }
    Ok(states)
}

/// The first part of [`READ`]'s output: each path's kind (a file's
/// contents still empty), and the rest.
fn kinds(mut out: &[u8], count: usize) -> Result<(Vec<Remote>, &[u8]), String> {
    let mut states = Vec::with_capacity(count);
    for _ in 0..count {
        let (head, rest) = line(out)?;
        out = rest;
        match head {
            "N" => states.push(Remote::Missing),
            "D" => states.push(Remote::Dir),
            "F" => states.push(Remote::File(Vec::new(), 0)),
            "L" => {
                let (target, rest) = line(out)?;
                out = rest;
                states.push(Remote::Link(target.to_owned()));
            }
            "B" => {
                let (above, rest) = line(out)?;
                out = rest;
                states.push(Remote::Blocked(above.to_owned()));
            }
            _ => return Err(format!("unexpected line {head:?}")),
        }
    }
    Ok((states, out))
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
        (Kind::File { bytes, mode, .. }, Remote::File(old, old_mode)) => {
            bytes != old || mode != old_mode
        }
        (Kind::Link(target), Remote::Link(old)) => target != old,
        _ => true,
    }
}

/// What [`WRITE`] reads to write `entries`, each at `root` + its path,
/// the directories `dirs` (parents first, with the modes a missing one is
/// made with) before them.
pub fn payload(dirs: &[(String, u32)], entries: &[Entry], root: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        bytes.extend_from_slice(format!("C\n{root}{}\n", entry.path).as_bytes());
    }
    for (dir, mode) in dirs {
        bytes.extend_from_slice(format!("D {mode:o}\n{root}{dir}\n").as_bytes());
    }
    for entry in entries {
        let path = format!("{root}{}", entry.path);
        match &entry.kind {
            Kind::File { bytes: b, mode, .. } => {
                bytes.extend_from_slice(format!("F {} {mode:o}\n{path}\n", b.len()).as_bytes());
                bytes.extend_from_slice(b);
            }
            Kind::Link(target) => {
                bytes.extend_from_slice(format!("L\n{path}\n{target}\n").as_bytes());
            }
        }
    }
    bytes.extend_from_slice(b"E\n");
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
                secret: false,
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
        let dirs = [("/a".to_owned(), 0o750), ("/b".to_owned(), 0o700)];
        fs::create_dir(dir.path().join("b")).expect("an existing directory");
        let out = sh(WRITE, &payload(&dirs, &entries, root));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode_of = |p: &str| {
            fs::metadata(dir.path().join(p))
                .expect(p)
                .permissions()
                .mode()
        };
        assert_eq!((mode_of("a") & 0o777, mode_of("b") & 0o777), (0o750, 0o755));
        let mode = fs::metadata(dir.path().join("a/one"))
            .expect("one")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let paths: Vec<String> = entries
            .iter()
            .map(|e| format!("{root}{}", e.path))
            .collect();
        let out = sh(READ, &path_list(&paths));
        assert!(out.status.success());
        let states = parse(&out.stdout, 4).expect("parses");
        for (entry, state) in entries.iter().zip(&states) {
            assert!(!differs(entry, state), "{entry:?} {state:?}");
        }
        assert_eq!(fs::read_dir(dir.path().join("a")).expect("ls").count(), 2);
    }

    #[test]
    fn a_missing_path_reads_as_missing() {
        let out = sh(READ, &path_list(&["/nonexistent/x".into()]));
        assert_eq!(parse(&out.stdout, 1).expect("parses"), [Remote::Missing]);
        assert_eq!(
            parse(b"F\n.\n3 644\nab", 1),
            Err("a file cut short".to_owned())
        );
        assert_eq!(
            parse(b"F\nN\n.\n      2 644\nab", 2),
            Ok(vec![Remote::File(b"ab".to_vec(), 0o644), Remote::Missing])
        );
    }

    #[test]
    fn a_cut_payload_changes_nothing_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8");
        fs::write(dir.path().join("old"), "old\n").expect("old");
        let entries = vec![
            file("/old", b"new\n", 0o644),
            file("/d/two", b"12345", 0o644),
        ];
        let mut input = payload(&[], &entries, root);
        input.truncate(input.len() - 4);
        let out = sh(WRITE, &input);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "the input ended early; nothing was changed\n"
        );
        assert_eq!(fs::read(dir.path().join("old")).expect("old"), b"old\n");
        // Only `old` and the directory made: no temporary file in either.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 2);
        assert_eq!(fs::read_dir(dir.path().join("d")).expect("ls d").count(), 0);
    }

    #[test]
    fn a_link_to_a_directory_is_replaced_not_entered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8");
        fs::create_dir(dir.path().join("real")).expect("mkdir");
        std::os::unix::fs::symlink("real", dir.path().join("conf")).expect("ln");
        let entries = vec![file("/conf", b"now a file\n", 0o644)];
        let out = sh(WRITE, &payload(&[], &entries, root));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir.path().join("conf");
        assert!(fs::symlink_metadata(&conf).expect("stat").is_file());
        assert_eq!(fs::read(&conf).expect("conf"), b"now a file\n");
        assert_eq!(
            fs::read_dir(dir.path().join("real")).expect("ls").count(),
            0
        );
    }

    #[test]
    fn a_directory_or_a_file_in_the_way_changes_nothing_in_either_order() {
        for (first, second) in [("/a/x", "/b/y"), ("/b/y", "/a/x")] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (root, d) = (dir.path().to_str().expect("utf-8"), dir.path());
            fs::create_dir_all(d.join("a/x")).expect("a directory where a file goes");
            fs::write(d.join("b"), "a file where a directory goes").expect("b");
            fs::write(d.join("old"), "old\n").expect("old");
            let entries = vec![
                file("/old", b"new\n", 0o644),
                file(first, b"1", 0o644),
                file(second, b"2", 0o644),
                file("/c/new", b"3", 0o644),
            ];
            let dirs = [("/a", 0o755), ("/b", 0o755), ("/c", 0o755)];
            let dirs: Vec<(String, u32)> = dirs.iter().map(|(p, m)| ((*p).into(), *m)).collect();
            let out = sh(WRITE, &payload(&dirs, &entries, root));
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                format!(
                    "{root}/a/x: a directory, where a file goes\n\
                     {root}/b: not a directory, where one goes\nnothing was changed\n"
                )
            );
            assert_eq!(fs::read(d.join("old")).expect("old"), b"old\n");
            assert!(!d.join("c").exists(), "no directory made");
            assert_eq!(fs::read_dir(d).expect("ls").count(), 3);
            let out = sh(
                READ,
                &path_list(&[format!("{root}/a/x"), format!("{root}/b/y")]),
            );
            let want = [Remote::Dir, Remote::Blocked(format!("{root}/b"))];
            assert_eq!(parse(&out.stdout, 2).expect("parses"), want);
        }
    }

    #[test]
    fn a_rename_failing_midway_names_what_was_put_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, d) = (dir.path().to_str().expect("utf-8"), dir.path());
        let entries = vec![file("/a/one", b"1", 0o644), file("/b/two", b"2", 0o644)];
        let mut input = payload(&[], &entries, root);
        input.truncate(input.len() - 2);
        let mut child = Command::new("sh")
            .args(["-c", WRITE])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&input).expect("feed");
        // Once the last file has arrived, the checks are long past: a
        // directory appears where it goes before the renames.
        let arrived = || {
            fs::read_dir(d.join("b"))
                .is_ok_and(|mut l| l.any(|e| e.is_ok_and(|e| e.path().join("two").exists())))
        };
        let mut waited = 0;
        while !arrived() && waited < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        fs::create_dir(d.join("b/two")).expect("the race");
        stdin.write_all(b"E\n").expect("end");
        drop(stdin);
        let out = child.wait_with_output().expect("ends");
        assert_eq!(out.status.code(), Some(1));
        let told = String::from_utf8_lossy(&out.stderr);
        let want = format!("put in place: {root}/a/one\nnot put in place: {root}/b/two\n");
        assert!(told.ends_with(&want), "{told}");
        assert_eq!(fs::read(d.join("a/one")).expect("one"), b"1");
        assert_eq!(fs::read_dir(d.join("b")).expect("ls").count(), 1);
    }
}
