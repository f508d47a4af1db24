//! Reading lines from a log stream without trusting it: lines are handed
//! out as slices of one large buffer, and a line longer than the limit (a
//! torn binary write, say) is streamed in pieces instead of being buffered
//! whole.

use std::io::{self, Read};

/// What the line reader hands to its caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole line, without its newline.
    Line(&'a [u8]),
    /// The first `limit` bytes of a line that is too long.
    LongStart(&'a [u8]),
    /// More bytes of that long line.
    LongMore(&'a [u8]),
    /// The end of that long line.
    LongEnd,
}

/// The longest line accepted whole (split, resolve); Apache's own request
/// line limit is 8 KiB.
pub const MAX_LINE: usize = 64 * 1024;

const BUFFER: usize = 1 << 20;

/// Calls `on_event` for every line of `reader` in order. Lines longer than
/// `limit` bytes arrive as `LongStart`, `LongMore`…, `LongEnd`. The last
/// line need not end in a newline.
pub fn for_each<R, F, E>(mut reader: R, limit: usize, mut on_event: F) -> Result<(), E>
where
    R: Read,
    F: FnMut(Event<'_>) -> Result<(), E>,
    E: From<io::Error>,
{
    let limit = limit.clamp(1, BUFFER / 2);
    let mut buf = vec![0u8; BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    let mut in_long = false;
    loop {
        // Hand out every complete line in buf[start..end].
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..end]) {
            let line = &buf[start..start + nl];
            if in_long {
                on_event(Event::LongMore(line))?;
                on_event(Event::LongEnd)?;
                in_long = false;
            } else if line.len() > limit {
                on_event(Event::LongStart(&line[..limit]))?;
                on_event(Event::LongMore(&line[limit..]))?;
                on_event(Event::LongEnd)?;
            } else {
                on_event(Event::Line(line))?;
            }
            start += nl + 1;
        }
        // What is left is a partial line: too long to keep, or moved to the
        // front to be completed by the next read.
        let pending = end - start;
        if in_long && pending > 0 {
            on_event(Event::LongMore(&buf[start..end]))?;
            start = end;
        } else if !in_long && pending > limit {
            on_event(Event::LongStart(&buf[start..start + limit]))?;
            on_event(Event::LongMore(&buf[start + limit..end]))?;
            in_long = true;
            start = end;
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let n = loop {
            match reader.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            if in_long {
                if end > 0 {
                    on_event(Event::LongMore(&buf[..end]))?;
                }
                on_event(Event::LongEnd)?;
            } else if end > limit {
                on_event(Event::LongStart(&buf[..limit]))?;
                on_event(Event::LongMore(&buf[limit..end]))?;
                on_event(Event::LongEnd)?;
            } else if end > 0 {
                on_event(Event::Line(&buf[..end]))?;
            }
            return Ok(());
        }
        end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `data` through a reader that returns at most `chunk` bytes a
    /// call, and renders the events as text.
    fn events(data: &[u8], limit: usize, chunk: usize) -> Vec<String> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        for_each(Chunked(data, chunk), limit, |e| -> io::Result<()> {
            out.push(match e {
                Event::Line(l) => format!("L:{}", String::from_utf8_lossy(l)),
                Event::LongStart(l) => format!("S:{}", String::from_utf8_lossy(l)),
                Event::LongMore(l) => format!("M:{}", String::from_utf8_lossy(l)),
                Event::LongEnd => "E".into(),
            });
            Ok(())
        })
        .expect("in-memory read");
        out
    }

    /// Joins the pieces of long lines back together.
    fn joined(events: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut long = String::new();
        for e in events {
            if e == "E" {
                out.push(format!("LONG:{}", std::mem::take(&mut long)));
                continue;
            }
            match e.split_at(2) {
                ("L:", l) => out.push(l.to_owned()),
                (_, l) => long.push_str(l),
            }
        }
        out
    }

    #[test]
    fn lines_in_any_chunking_come_out_whole() {
        let data = b"one\ntwo\n\nthree without newline";
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(
                events(data, 100, chunk),
                ["L:one", "L:two", "L:", "L:three without newline"]
            );
        }
        assert!(events(b"", 100, 10).is_empty());
    }

    #[test]
    fn long_lines_are_streamed_and_complete() {
        let data = b"ok\n0123456789abcdef\nfine\n0123456789";
        for chunk in [1, 3, 5, 100] {
            let ev = events(data, 8, chunk);
            assert_eq!(
                joined(&ev),
                ["ok", "LONG:0123456789abcdef", "fine", "LONG:0123456789"],
                "chunk {chunk}: {ev:?}"
            );
            assert!(ev.contains(&"S:01234567".to_owned()), "{ev:?}");
        }
    }
}
