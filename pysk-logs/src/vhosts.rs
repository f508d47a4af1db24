//! The list of virtual hosts split accepts (`--vhosts`, switch
//! `logs_vhosts`) and awstats configures: one name a line, `#` comments.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::Path;

use pysk_common::error::read_err;

use crate::error::LogsError;
use crate::format;

/// Reads the list at `path` (`-` for stdin): each name as split stores it
/// (lowercase, a host name); a line that is none is an error naming it.
pub fn read(path: &Path) -> Result<BTreeSet<String>, LogsError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        io::stdin()
            .lock()
            .read_to_string(&mut s)
            .map_err(read_err(path))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(read_err(path))?
    };
    parse(path, &text)
}

/// The names of the list `text`, read from `path`.
fn parse(path: &Path, text: &str) -> Result<BTreeSet<String>, LogsError> {
    let mut set = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let normal = format::normalize_vhost(name.as_bytes()).ok_or_else(|| LogsError::Vhosts {
            path: path.to_owned(),
            line: i + 1,
            text: name.to_owned(),
        })?;
        set.insert(normal);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_a_bad_line_is_named() {
        let list = parse(
            Path::new("v"),
            "# web\nWWW.Example.org\n\nshop.example.net # shop\n",
        )
        .expect("list");
        assert_eq!(
            list.into_iter().collect::<Vec<_>>(),
            ["shop.example.net", "www.example.org"]
        );
        let err = parse(Path::new("v"), "ok.example\nfoo_bar\n").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "v:2: \"foo_bar\" is not a virtual host name"
        );
    }
}
