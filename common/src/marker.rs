//! The rule that keeps pysk off the admin's own files: a file a tool
//! generates starts with the tool's marker line, and only files that carry
//! it are ever rewritten or removed by that tool. A file of the same name
//! without the marker is the admin's, and is left alone and reported.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Whether the file at `path` begins with `marker`. A missing file does
/// not carry it; any other failure to read is an error.
pub fn carries(path: &Path, marker: &str) -> io::Result<bool> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut head = Vec::with_capacity(marker.len());
    file.by_ref()
        .take(marker.len() as u64)
        .read_to_end(&mut head)?;
    Ok(head == marker.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_starting_with_the_marker_carry_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = dir.path().join("ours");
        let theirs = dir.path().join("theirs");
        let short = dir.path().join("short");
        std::fs::write(&ours, "# written by pysk-test\nx=1\n").expect("write");
        std::fs::write(&theirs, "x=1\n# written by pysk-test\n").expect("write");
        std::fs::write(&short, "# writ").expect("write");
        let marker = "# written by pysk-test";
        assert!(carries(&ours, marker).expect("read"));
        assert!(!carries(&theirs, marker).expect("read"));
        assert!(!carries(&short, marker).expect("read"));
        assert!(!carries(&dir.path().join("missing"), marker).expect("missing"));
    }
}
