//! The configuration tree rendered for one host: every file and link of
//! `hv_conf_tree` at the path it has below the tree, `.in` files with their
//! `{{key}}` placeholders filled from the host's switches and the suffix
//! dropped, links kept as links (a link named `x.in` gets its target's
//! placeholders filled), the host's excluded paths left out.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pysk_common::switches::Switches;

/// What one path of the tree becomes on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: its bytes and permission bits.
    File {
        /// The contents.
        bytes: Vec<u8>,
        /// The permission bits of the tree's file.
        mode: u32,
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
        let kind = kind(&file, templated, switches)?;
        entries.push(Entry {
            path: path.to_string_lossy().into_owned(),
            kind,
        });
    }
    Ok(entries)
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
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// What the tree's `file` becomes, its placeholders filled when
/// `templated`.
fn kind(file: &Path, templated: bool, switches: &Switches) -> Result<Kind, pysk_common::Error> {
    let meta = fs::symlink_metadata(file).map_err(pysk_common::error::read_err(file))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(file).map_err(pysk_common::error::read_err(file))?;
        let target = target.to_string_lossy().into_owned();
        return Ok(Kind::Link(if templated {
            fill(&target, file, switches)?
        } else {
            target
        }));
    }
    let bytes = fs::read(file).map_err(pysk_common::error::read_err(file))?;
    let bytes = if templated {
        let text = String::from_utf8(bytes).map_err(|_| config(file, 0, "not valid UTF-8"))?;
        fill(&text, file, switches)?.into_bytes()
    } else {
        bytes
    };
    Ok(Kind::File {
        bytes,
        mode: meta.permissions().mode() & 0o7777,
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
            .ok_or_else(|| config(file, line, &format!("unknown switch {{{{{key}}}}}")))?;
        out.push_str(&switch.value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn config(file: &Path, line: usize, reason: &str) -> pysk_common::Error {
    pysk_common::Error::Config {
        path: file.to_owned(),
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
        assert_eq!(err.to_string(), "t.in:3: unknown switch {{nope}}");
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
        let got = render(t, &s, &[PathBuf::from("/etc/skip")]).expect("renders");
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/etc/app/conf", "/etc/link", "/etc/plain"]);
        assert!(matches!(&got[0].kind, Kind::File { bytes, .. } if bytes == b"n=web1\n"));
        assert_eq!(got[1].kind, Kind::Link("/srv/web1".into()));
    }
}
