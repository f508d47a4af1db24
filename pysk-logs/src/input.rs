//! Opening log files: plain or gzip-compressed, told apart by their first
//! bytes, not their names.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `head`, the first bytes of a file or message part, starts a
/// gzip stream: the one test of "is this gzip" every reader uses.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// A reader over the uncompressed content of a log file.
pub type LogReader = Box<dyn Read + Send>;

/// Opens `path` for reading its uncompressed content.
pub fn open(path: &Path) -> io::Result<LogReader> {
    sniff(File::open(path)?)
}

/// Reads the uncompressed content of `raw`, which may be plain or gzip.
pub fn sniff<R: Read + Send + 'static>(mut raw: R) -> io::Result<LogReader> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match raw.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = io::Cursor::new(magic[..got].to_vec());
    if is_gzip(&magic[..got]) {
        let raw = BufReader::with_capacity(256 * 1024, head.chain(raw));
        Ok(Box::new(MultiGzDecoder::new(raw)))
    } else {
        Ok(Box::new(head.chain(raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn read_all(path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        open(path)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn plain_and_gzip_by_content_not_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("access.log.gz");
        std::fs::write(&plain, b"line one\nline two\n").expect("write");
        assert_eq!(read_all(&plain).expect("read"), b"line one\nline two\n");

        let gz = dir.path().join("access.log");
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(b"first member\n").expect("gzip");
        let mut bytes = enc.finish().expect("gzip");
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(b"second member\n").expect("gzip");
        bytes.extend(enc.finish().expect("gzip"));
        std::fs::write(&gz, &bytes).expect("write");
        assert_eq!(
            read_all(&gz).expect("read"),
            b"first member\nsecond member\n"
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(read_all(&empty).expect("read"), b"");
        let one = dir.path().join("one");
        std::fs::write(&one, b"x").expect("write");
        assert_eq!(read_all(&one).expect("read"), b"x");
    }

    #[test]
    fn truncated_gzip_is_an_error_not_silent_data_loss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&b"a log line\n".repeat(1000)).expect("gzip");
        let bytes = enc.finish().expect("gzip");
        let path = dir.path().join("cut.gz");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        assert!(read_all(&path).is_err());
    }
}
