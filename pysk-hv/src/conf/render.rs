//! The configuration tree rendered for one host: every file and link of
//! `hv_conf_tree` at the path it has below the tree, `.in` files with their
//! `{{key}}` placeholders filled from the host's switches and the suffix
//! dropped, links kept as links (a link named `x.in` gets its target's
//! placeholders filled; a link to a `.in` file of the tree points at the
//! name that file gets, its suffix dropped), the host's excluded paths
//! left out. A placeholder takes only a switch set in the configuration
//! files (`serverconfig/default`, `serverconfig/<host>`), not a tool's
//! built-in default.
//!
//! Anything else in the tree (a FIFO, a socket, a device) is refused,
//! naming it, as is a name or link target that is not UTF-8 or holds a
//! newline: each path travels to the host as one line of text. A name is
//! told with its control characters escaped (`\n`), on one line.
//!
//! A file is secret, and a diff never shows its contents, when its mode in
//! the tree is not world-readable, or when it is a `.in` file that fills
//! a switch whose key has a word (split at `_`, `-`, `.`) among
//! [`SECRET_WORDS`] (`db_password`, `API_TOKEN`, `tls_key`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pysk_common::switches::Switches;

/// The words of a switch key that make a file filled from it secret.
pub const SECRET_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "key",
    "apikey",
    "credentials",
    "private",
];

/// What one path of the tree becomes on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: its bytes and permission bits.
    File {
        /// The contents.
        bytes: Vec<u8>,
        /// The permission bits of the tree's file.
        mode: u32,
        /// Its contents are not to be shown (see the module's text).
        secret: bool,
    },
    /// A symbolic link to this target.
    Link(String),
}

/// One path of the rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path on the host, absolute (`/etc/x` for `<tree>/etc/x`),
    /// before any `--root`.
    pub path: String,
    /// What it is.
    pub kind: Kind,
}

/// Renders `tree` for a host with `switches`, leaving out `exclude`
/// (absolute paths; a directory's whole subtree). Sorted by path.
pub fn render(
    tree: &Path,
    switches: &Switches,
    exclude: &[PathBuf],
) -> Result<Vec<Entry>, pysk_common::Error> {
    let mut files = Vec::new();
    walk(tree, &mut files)?;
    files.sort();
    let mut entries = Vec::new();
    for file in files {
        let relative = file.strip_prefix(tree).unwrap_or(&file);
        let templated = relative.extension().is_some_and(|e| e == "in");
        let shown = if templated {
            relative.with_extension("")
        } else {
            relative.to_owned()
        };
        let path = Path::new("/").join(&shown);
        if exclude.iter().any(|x| path.starts_with(x)) {
            continue;
        }
        let kind = kind(tree, &file, templated, switches)?;
        entries.push(Entry {
            path: line_text(&file, path.as_os_str(), "name")?,
            kind,
        });
    }
    Ok(entries)
}

/// The directories of the tree that hold `entries` (every ancestor but
/// `/`), parents first, each with its mode in the tree: what `apply` makes
/// a directory it has to create.
pub fn dir_modes(tree: &Path, entries: &[Entry]) -> Result<Vec<(String, u32)>, pysk_common::Error> {
    let mut dirs: Vec<&Path> = entries
        .iter()
        .flat_map(|e| Path::new(&e.path).ancestors().skip(1))
        .filter(|d| *d != Path::new("/"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.into_iter()
        .map(|dir| {
            let in_tree = tree.join(dir.strip_prefix("/").unwrap_or(dir));
            let meta = fs::metadata(&in_tree).map_err(pysk_common::error::read_err(&in_tree))?;
            let path = dir.to_str().unwrap_or_default().to_owned();
            Ok((path, meta.permissions().mode() & 0o7777))
        })
        .collect()
}

/// Every file and link below `dir` (directories are descended into, not
/// listed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), pysk_common::Error> {
    let read = fs::read_dir(dir).map_err(pysk_common::error::read_err(dir))?;
    for entry in read {
        let entry = entry.map_err(pysk_common::error::read_err(dir))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(pysk_common::error::read_err(&path))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() || kind.is_symlink() {
            out.push(path);
        } else {
            return Err(config(&path, 0, "neither a file, a link nor a directory"));
        }
    }
    Ok(())
}

/// What the tree's `file` becomes, its placeholders filled when
/// `templated`.
fn kind(
    tree: &Path,
    file: &Path,
    templated: bool,
    switches: &Switches,
) -> Result<Kind, pysk_common::Error> {
    let meta = fs::symlink_metadata(file).map_err(pysk_common::error::read_err(file))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(file).map_err(pysk_common::error::read_err(file))?;
        let target = line_text(file, target.as_os_str(), "link target")?;
        let target = match templated {
            true => fill(&target, file, switches)?,
            false => target,
        };
        return Ok(Kind::Link(rendered_target(tree, file, target)));
    }
    let bytes = fs::read(file).map_err(pysk_common::error::read_err(file))?;
    let mode = meta.permissions().mode() & 0o7777;
    let mut secret = mode & 0o004 == 0;
    let bytes = if templated {
        let text = String::from_utf8(bytes).map_err(|_| config(file, 0, "not valid UTF-8"))?;
        secret |= fills_a_secret(&text);
        fill(&text, file, switches)?.into_bytes()
    } else {
        bytes
    };
    Ok(Kind::File {
        bytes,
        mode,
        secret,
    })
}

/// `target`, of the tree's link `file`, with its `.in` dropped when it
/// names a `.in` file of the tree: the name that file has on the host.
fn rendered_target(tree: &Path, file: &Path, target: String) -> String {
    let Some(bare) = target.strip_suffix(".in") else {
        return target;
    };
    let pointed = match target.strip_prefix('/') {
        Some(inside) => tree.join(inside),
        None => file.parent().unwrap_or(tree).join(&target),
    };
    let template = fs::symlink_metadata(&pointed).is_ok_and(|m| m.is_file());
    let inside = match (pointed.canonicalize(), tree.canonicalize()) {
        (Ok(pointed), Ok(tree)) => pointed.starts_with(tree),
        _ => false,
    };
    let named = !bare.is_empty() && !bare.ends_with('/');
    match template && inside && named {
        true => bare.to_owned(),
        false => target,
    }
}

/// `text` (a name or link target of the tree's `file`) as a string, if it
/// is UTF-8 without a newline.
fn line_text(
    file: &Path,
    text: &std::ffi::OsStr,
    what: &str,
) -> Result<String, pysk_common::Error> {
    text.to_str()
        .filter(|t| !t.contains('\n'))
        .map(str::to_owned)
        .ok_or_else(|| config(file, 0, &format!("{what} not UTF-8 or with a newline")))
}

/// Whether a `{{key}}` of `text` has a word among [`SECRET_WORDS`].
fn fills_a_secret(text: &str) -> bool {
    text.split("{{").skip(1).any(|part| {
        let key = part
            .split("}}")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        key.split(['_', '-', '.'])
            .any(|word| SECRET_WORDS.contains(&word))
    })
}

/// `text` with every `{{key}}` replaced by the switch's value; an unknown
/// key or a `{{` without `}}` is an error naming `file` and the line.
pub fn fill(text: &str, file: &Path, switches: &Switches) -> Result<String, pysk_common::Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let line = text[..text.len() - rest.len() + start]
            .matches('\n')
            .count()
            + 1;
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .filter(|&end| !after[..end].contains('\n'))
            .ok_or_else(|| config(file, line, "{{ without a closing }}"))?;
        let key = &after[..end];
        let switch = switches
            .get(key)
            .ok_or_else(|| config(file, line, &unknown(key)))?;
        out.push_str(&switch.value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why the placeholder `{{key}}` cannot be filled, with a hint.
fn unknown(key: &str) -> String {
    let bare = key.trim();
    if bare != key && !bare.is_empty() {
        return format!(
            "unknown switch {{{{{key}}}}}: no blanks inside the braces, write {{{{{bare}}}}}"
        );
    }
    format!(
        "unknown switch {{{{{key}}}}}: a placeholder takes a switch set in serverconfig/default \
         or serverconfig/<host>, not a built-in default"
    )
}

/// A `Config` error on the tree's `file` (line 0: the file as a whole),
/// its name's control characters escaped so that it stays one line.
fn config(file: &Path, line: usize, reason: &str) -> pysk_common::Error {
    let name: String = file
        .to_string_lossy()
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect();
    pysk_common::Error::Config {
        path: PathBuf::from(name),
        line,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switches(text: &str) -> (tempfile::TempDir, Switches) {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("serverconfig")).expect("mkdir");
        fs::write(dir.path().join("serverconfig/default"), text).expect("write");
        let s = Switches::load(dir.path(), "h").expect("load");
        (dir, s)
    }

    #[test]
    fn placeholders_are_filled_and_errors_name_the_line() {
        let (_d, s) = switches("a=1\nb=\"two words\"\n");
        let f = Path::new("t.in");
        assert_eq!(
            fill("x{{a}}y\n{{b}}\n", f, &s).expect("fills"),
            "x1y\ntwo words\n"
        );
        let err = fill("ok\n\nz {{nope}}\n", f, &s).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "t.in:3: unknown switch {{nope}}: a placeholder takes a switch set in \
             serverconfig/default or serverconfig/<host>, not a built-in default"
        );
        let err = fill("{{ a }}", f, &s).expect_err("blanks");
        assert_eq!(
            err.to_string(),
            "t.in:1: unknown switch {{ a }}: no blanks inside the braces, write {{a}}"
        );
        let err = fill("a\n{{a\n}}", f, &s).expect_err("open");
        assert_eq!(err.to_string(), "t.in:2: {{ without a closing }}");
    }

    #[test]
    fn the_tree_is_rendered_with_links_and_excludes() {
        let (_d, s) = switches("name=web1\n");
        let tree = tempfile::tempdir().expect("tree");
        let t = tree.path();
        fs::create_dir_all(t.join("etc/app")).expect("mkdir");
        fs::write(t.join("etc/app/conf.in"), "n={{name}}\n").expect("write");
        fs::write(t.join("etc/plain"), "{{raw}}").expect("write");
        fs::write(t.join("etc/skip"), "x").expect("write");
        std::os::unix::fs::symlink("/srv/{{name}}", t.join("etc/link.in")).expect("ln");
        std::os::unix::fs::symlink("app/conf.in", t.join("etc/alias")).expect("ln");
        std::os::unix::fs::symlink("/etc/app/conf.in", t.join("etc/abs")).expect("ln");
        std::os::unix::fs::symlink("/elsewhere.in", t.join("etc/other")).expect("ln");
        let got = render(t, &s, &[PathBuf::from("/etc/skip")]).expect("renders");
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        let want = [
            "/etc/abs",
            "/etc/alias",
            "/etc/app/conf",
            "/etc/link",
            "/etc/other",
            "/etc/plain",
        ];
        assert_eq!(paths, want);
        assert!(matches!(&got[2].kind, Kind::File { bytes, .. } if bytes == b"n=web1\n"));
        let links: Vec<&Kind> = [0, 1, 3, 4].iter().map(|&i| &got[i].kind).collect();
        let want = ["/etc/app/conf", "app/conf", "/srv/web1", "/elsewhere.in"];
        let want: Vec<Kind> = want.iter().map(|t| Kind::Link((*t).into())).collect();
        assert_eq!(links, want.iter().collect::<Vec<_>>());
    }

    #[test]
    fn fifos_and_names_that_are_no_line_of_utf_8_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let (_d, s) = switches("");
        let tree = tempfile::tempdir().expect("tree");
        let fifo = tree.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = render(tree.path(), &s, &[]).expect_err("a fifo");
        let want = format!("{}: neither a file, a link nor a directory", fifo.display());
        assert_eq!(err.to_string(), want);
        fs::remove_file(&fifo).expect("rm");
        for (name, shown) in [
            (&b"bad\xff"[..], "bad\u{fffd}"),
            (b"two\nlines", "two\\nlines"),
        ] {
            let file = tree.path().join(std::ffi::OsStr::from_bytes(name));
            fs::write(&file, "x").expect("write");
            let err = render(tree.path(), &s, &[]).expect_err("a bad name");
            let want = format!(
                "{}/{shown}: name not UTF-8 or with a newline",
                tree.path().display()
            );
            assert_eq!(err.to_string(), want);
            fs::remove_file(&file).expect("rm");
        }
    }

    #[test]
    fn files_not_world_readable_or_filled_from_a_secret_key_are_secret() {
        let (_d, s) = switches("db_password=pw\nAPI_TOKEN=t\nname=n\nkeyboard=de\n");
        let tree = tempfile::tempdir().expect("tree");
        let t = tree.path();
        let files = [
            ("a.in", "{{name}} {{keyboard}}", 0o644),
            ("b.in", "{{db_password}}", 0o644),
            ("c.in", "{{API_TOKEN}}", 0o644),
            ("d", "{{db_password}}", 0o644),
            ("e", "plain", 0o640),
        ];
        for (name, text, mode) in files {
            fs::write(t.join(name), text).expect("write");
            fs::set_permissions(t.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let got: Vec<(String, bool)> = render(t, &s, &[])
            .expect("renders")
            .into_iter()
            .map(|e| match e.kind {
                Kind::File { secret, .. } => (e.path, secret),
                Kind::Link(_) => (e.path, true),
            })
            .collect();
        let want = [
            ("/a", false),
            ("/b", true),
            ("/c", true),
            ("/d", false),
            ("/e", true),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(p, s)| ((*p).to_owned(), *s)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_directories_holding_entries_come_with_their_tree_modes() {
        let tree = tempfile::tempdir().expect("tree");
        let private = tree.path().join("etc/ssl/private");
        fs::create_dir_all(&private).expect("mkdir");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o710)).expect("chmod");
        fs::write(private.join("k"), "k").expect("write");
        fs::write(tree.path().join("etc/motd"), "m").expect("write");
        let entries = render(tree.path(), &switches("").1, &[]).expect("renders");
        let got = dir_modes(tree.path(), &entries).expect("modes");
        let want = [
            ("/etc", 0o755),
            ("/etc/ssl", 0o755),
            ("/etc/ssl/private", 0o710),
        ];
        let want: Vec<(String, u32)> = want.iter().map(|(p, m)| ((*p).to_owned(), *m)).collect();
        assert_eq!(got, want);
    }
}
