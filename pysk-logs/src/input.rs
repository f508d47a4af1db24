//! Opening log files: plain, or compressed with gzip, bzip2, xz or zstd,
//! told apart by their first bytes, not their names.
//!
//! Every compressed stream is read to its very end and checked there: a
//! stream that is cut short or corrupt is a read error, never an input
//! that quietly ends early. Concatenated streams (multi-member gzip, as
//! `cat a.gz b.gz` or `gzip -c >>` make, and the same for the others) are
//! read one after another. After the last gzip member, zero bytes (the
//! padding that tape and block devices leave) are ignored, as `gzip -t`
//! ignores them; anything else there is an error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use pysk_common::error::cause;

/// How a stream is compressed, by its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (RFC 1952), `1f 8b`.
    Gzip,
    /// bzip2, `BZh`, the block size digit and the magic of a block or of
    /// the stream's end (ten bytes: `BZh1` alone could start a text line).
    Bzip2,
    /// xz, `fd 37 7a 58 5a 00`.
    Xz,
    /// zstd, a frame (`28 b5 2f fd`) or a skippable frame first.
    Zstd,
}

/// The most bytes [`compression`] needs to look at.
const MAGIC_LEN: usize = 10;

/// What follows a bzip2 stream's header: a block (the digits of pi) or
/// the end of the stream (those of the square root of pi).
const BZIP2_NEXT: [[u8; 6]; 2] = [
    [0x31, 0x41, 0x59, 0x26, 0x53, 0x59],
    [0x17, 0x72, 0x45, 0x38, 0x50, 0x90],
];

/// The read buffer of a compressed stream.
const BUFFER: usize = 256 * 1024;

impl Compression {
    /// The name used in messages, as the compressing program is called.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// How `head`, the first bytes of a file or message part, is compressed:
/// the one test of "is this compressed" every reader uses.
pub fn compression(head: &[u8]) -> Option<Compression> {
    match head {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [b'B', b'Z', b'h', b'1'..=b'9', next @ ..]
            if BZIP2_NEXT.iter().any(|magic| next.starts_with(magic)) =>
        {
            Some(Compression::Bzip2)
        }
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Compression::Xz),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
        [low, 0x2a, 0x4d, 0x18, ..] if low & 0xf0 == 0x50 => Some(Compression::Zstd),
        _ => None,
    }
}

/// Whether `head` starts a gzip stream.
pub fn is_gzip(head: &[u8]) -> bool {
    compression(head) == Some(Compression::Gzip)
}

/// A reader over the uncompressed content of a log file.
pub type LogReader = Box<dyn Read + Send>;

/// Opens `path` for reading its uncompressed content.
pub fn open(path: &Path) -> io::Result<LogReader> {
    sniff(File::open(path)?)
}

/// Reads the uncompressed content of `raw`, which may be plain or
/// compressed in any of the [`Compression`]s.
pub fn sniff<R: Read + Send + 'static>(mut raw: R) -> io::Result<LogReader> {
    let mut magic = [0u8; MAGIC_LEN];
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
    let Some(kind) = compression(&magic[..got]) else {
        return Ok(Box::new(head.chain(raw)));
    };
    let raw = BufReader::with_capacity(BUFFER, head.chain(raw));
    let inner: LogReader = match kind {
        Compression::Gzip => Box::new(GzipMembers::new(raw)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(raw)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(raw)?),
    };
    Ok(Box::new(Decoded { kind, inner }))
}

/// A decompressing reader whose errors say which compression failed.
struct Decoded {
    kind: Compression,
    inner: LogReader,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let why = match e.kind() {
                io::ErrorKind::UnexpectedEof => "cut short".to_owned(),
                io::ErrorKind::Interrupted => return e,
                _ => cause(&e),
            };
            io::Error::new(e.kind(), format!("{} data: {why}", self.kind.name()))
        })
    }
}

/// gzip members read one after another, as `gzip -d` reads them; zero
/// bytes after the last member are padding, anything else is an error.
struct GzipMembers<R: BufRead> {
    member: Option<flate2::bufread::GzDecoder<Source<R>>>,
}

/// What a gzip member is read from: the bytes already taken to see that a
/// member starts there, then the rest of the stream.
type Source<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

impl<R: BufRead> GzipMembers<R> {
    fn new(raw: R) -> GzipMembers<R> {
        GzipMembers {
            member: Some(flate2::bufread::GzDecoder::new(
                io::Cursor::new(Vec::new()).chain(raw),
            )),
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(member) = self.member.as_mut() {
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(mut source) = self
                .member
                .take()
                .map(flate2::bufread::GzDecoder::into_inner)
            else {
                break;
            };
            if let Some(mut head) = another_member(&mut source)? {
                let (seen, raw) = source.into_inner();
                let at = usize::try_from(seen.position()).unwrap_or(usize::MAX);
                head.extend(seen.get_ref().get(at..).unwrap_or_default());
                let source = io::Cursor::new(head).chain(raw);
                self.member = Some(flate2::bufread::GzDecoder::new(source));
            }
        }
        Ok(0)
    }
}

/// The error for what follows the last gzip member when it is neither
/// another member nor zero padding.
fn trailing_garbage() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "bytes after the last member that are neither a member nor zero padding",
    )
}

/// After a gzip member: whether another one starts, and if so its two
/// magic bytes, taken from `raw` to see them. Zero padding is read to its
/// end and ends the stream; other bytes are an error.
fn another_member(raw: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut first = true;
    loop {
        let data = raw.fill_buf()?;
        match data.first() {
            None => return Ok(None),
            Some(&0x1f) if first => {
                raw.consume(1);
                return match raw.fill_buf()?.first() {
                    Some(&0x8b) => {
                        raw.consume(1);
                        Ok(Some(vec![0x1f, 0x8b]))
                    }
                    _ => Err(trailing_garbage()),
                };
            }
            Some(_) => {}
        }
        first = false;
        if data.iter().any(|&b| b != 0) {
            return Err(trailing_garbage());
        }
        let n = data.len();
        raw.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn read_all(path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        open(path)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text).expect("gzip");
        enc.finish().expect("gzip")
    }

    #[test]
    fn plain_and_gzip_by_content_not_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("access.log.gz");
        std::fs::write(&plain, b"line one\nline two\n").expect("write");
        assert_eq!(read_all(&plain).expect("read"), b"line one\nline two\n");

        let gz = dir.path().join("access.log");
        let mut bytes = gzip(b"first member\n");
        bytes.extend(gzip(b"second member\n"));
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
    fn zero_padding_after_the_last_member_is_ignored_other_bytes_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("padded");
        let mut bytes = gzip(b"a\n");
        bytes.extend(gzip(b"b\n"));
        bytes.extend(vec![0u8; 300_000]);
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read_all(&path).expect("read"), b"a\nb\n");

        bytes.push(b'x');
        std::fs::write(&path, &bytes).expect("write");
        let err = read_all(&path).expect_err("garbage");
        assert_eq!(
            err.to_string(),
            "gzip data: bytes after the last member that are neither a member nor zero padding"
        );
    }

    #[test]
    fn bytes_after_a_member_that_only_start_like_one_are_garbage_not_a_cut_member() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tail");
        for tail in [
            &[0x1f][..],
            &[0x1f, 0x00],
            &[0x1f, b'x', 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let mut bytes = gzip(b"a\n");
            bytes.extend(tail);
            std::fs::write(&path, &bytes).expect("write");
            let err = read_all(&path).expect_err("garbage");
            assert_eq!(
                err.to_string(),
                "gzip data: bytes after the last member that are neither a member nor zero \
                 padding",
                "{tail:?}"
            );
        }
        // A member that really starts and is cut is still cut short.
        let mut bytes = gzip(b"a\n");
        bytes.extend(&gzip(b"b\n")[..12]);
        std::fs::write(&path, &bytes).expect("write");
        let err = read_all(&path).expect_err("cut");
        assert_eq!(err.to_string(), "gzip data: cut short");
    }

    #[test]
    fn truncated_gzip_is_an_error_not_silent_data_loss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = gzip(&b"a log line\n".repeat(1000));
        let path = dir.path().join("cut.gz");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        let err = read_all(&path).expect_err("cut");
        assert_eq!(err.to_string(), "gzip data: cut short");
        // Cut inside the trailer: the content is all there, the check is not.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("write");
        assert!(read_all(&path).is_err());
    }

    #[test]
    fn every_compression_is_known_by_its_magic() {
        assert_eq!(compression(&[0x1f, 0x8b, 8]), Some(Compression::Gzip));
        assert_eq!(compression(b"BZh91AY&SY"), Some(Compression::Bzip2));
        assert_eq!(
            compression(b"BZh9\x17\x72\x45\x38\x50\x90"),
            Some(Compression::Bzip2)
        );
        assert_eq!(compression(b"BZh91AY"), None);
        assert_eq!(compression(b"BZh1 192.0.2.1 - -"), None);
        assert_eq!(
            compression(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Some(Compression::Xz)
        );
        assert_eq!(
            compression(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Compression::Zstd)
        );
        assert_eq!(
            compression(&[0x5e, 0x2a, 0x4d, 0x18]),
            Some(Compression::Zstd)
        );
        assert_eq!(compression(b"192.0.2.1 - -"), None);
        assert_eq!(compression(&[0x1f]), None);
    }

    #[test]
    fn bzip2_xz_and_zstd_round_trip_and_fail_when_cut() {
        let text =
            b"192.0.2.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 1\n".repeat(500);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&text).expect("bzip2");
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&text).expect("xz");
        let zst = zstd::stream::encode_all(&text[..], 1).expect("zstd");
        let streams = [
            ("bzip2", bz.finish().expect("bzip2")),
            ("xz", xz.finish().expect("xz")),
            ("zstd", zst),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, bytes) in streams {
            let path = dir.path().join(name);
            let mut twice = bytes.clone();
            twice.extend(&bytes);
            std::fs::write(&path, &twice).expect("write");
            assert_eq!(
                read_all(&path).expect(name),
                [&text[..], &text[..]].concat()
            );
            std::fs::write(&path, &bytes[..bytes.len() - 5]).expect("write");
            let err = read_all(&path).expect_err(name);
            assert!(
                err.to_string().starts_with(&format!("{name} data: ")),
                "{err}"
            );
        }
    }
}
