//! `pysk-logs merge`: a streaming k-way merge of time-sorted logs by the
//! instant of each line, for AWStats to read through a pipe.
//!
//! Each input is read in large blocks and keeps a reorder window of the
//! next `--reorder` lines sorted by time (insertion is O(1) for the usual,
//! nearly sorted input). The merge always writes the earliest window front
//! across inputs; ties go to the earlier input, then the earlier line. A
//! line more out of order than the window can fix, or one without a
//! readable timestamp, still comes out (the latter right after the line
//! before it) and is counted and reported. Memory is bounded by the inputs'
//! block buffers and windows, whatever the inputs' sizes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use pysk_common::atomic::{self, AtomicFile};
use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::error::LogsError;
use crate::{format, input, time};
use pysk_common::error::{read_err, write_err};

/// The most one input's buffer grows to hold its reorder window.
const MAX_BUFFER: usize = 64 << 20;

/// How many individual late or unparsable lines are reported before only
/// the counts are.
const REPORT_LINES: u64 = 10;

/// What `merge` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The time-sorted inputs, in tie-breaking order.
    pub files: Vec<PathBuf>,
    /// Lines of lookahead per input for putting nearly sorted input in order.
    pub reorder: usize,
    /// Where to archive the inputs after a complete, flushed output.
    pub archive: Option<PathBuf>,
}

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines written.
    pub lines: u64,
    /// Lines written out of order: earlier than a line already written from
    /// the same input, beyond what the reorder window could fix.
    pub late: u64,
    /// Lines without a readable timestamp, written after their predecessor.
    pub unparsable: u64,
    /// Inputs archived.
    pub archived: usize,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    time: i64,
    start: usize,
    end: usize,
    newline: bool,
}

/// One input being merged.
struct Source {
    path: PathBuf,
    reader: input::LogReader,
    buf: Vec<u8>,
    scan: usize,
    filled: usize,
    eof: bool,
    window: VecDeque<Item>,
    reorder: usize,
    last_emitted: i64,
    last_time: i64,
    line_no: u64,
    clock: time::DayCache,
}

impl Source {
    fn open(path: &Path, reorder: usize, buffer: usize) -> Result<Source, LogsError> {
        Ok(Source {
            path: path.to_owned(),
            reader: input::open(path).map_err(read_err(path))?,
            buf: vec![0; buffer],
            scan: 0,
            filled: 0,
            eof: false,
            window: VecDeque::with_capacity(reorder.min(1 << 16)),
            reorder,
            last_emitted: i64::MIN,
            last_time: i64::MIN,
            line_no: 0,
            clock: time::DayCache::default(),
        })
    }

    /// The instant of the combined-format line at `start..end`: the
    /// timestamp in its first `[...]`.
    fn time_of(&mut self, start: usize, end: usize) -> Option<i64> {
        format::combined_time(&self.buf[start..end], &mut self.clock)
    }

    /// Reads lines until the window holds `reorder` of them or the input
    /// ends.
    fn fill(&mut self, summary: &mut Summary, report: &Reporter) -> Result<(), LogsError> {
        while self.window.len() < self.reorder {
            let (start, end, newline) =
                match memchr::memchr(b'\n', &self.buf[self.scan..self.filled]) {
                    Some(n) => (self.scan, self.scan + n + 1, true),
                    None if self.eof && self.scan < self.filled => (self.scan, self.filled, false),
                    None if self.eof => return Ok(()),
                    None => {
                        self.read_more()?;
                        continue;
                    }
                };
            self.scan = end;
            self.line_no += 1;
            let own = self.time_of(start, end - usize::from(newline));
            let time = match own {
                Some(t) => t,
                None => {
                    summary.unparsable += 1;
                    if summary.unparsable <= REPORT_LINES {
                        report.warn(format!(
                            "{}:{}: no readable timestamp; written after the line before it",
                            self.path.display(),
                            self.line_no
                        ));
                    }
                    self.last_time
                }
            };
            // A line without its own time takes the one before it: it is
            // late only if that line was, and that line is counted already.
            if own.is_some() && time < self.last_emitted {
                summary.late += 1;
                if summary.late <= REPORT_LINES {
                    report.warn(format!(
                        "{}:{}: {} s earlier than lines already written; written out of order \
                         (raise --reorder)",
                        self.path.display(),
                        self.line_no,
                        self.last_emitted - time
                    ));
                }
            }
            self.last_time = time;
            let item = Item {
                time,
                start,
                end,
                newline,
            };
            match self.window.back() {
                Some(back) if back.time > time => {
                    // After every line of the same time: input order.
                    let at = self.window.partition_point(|x| x.time <= time);
                    self.window.insert(at, item);
                }
                _ => self.window.push_back(item),
            }
        }
        Ok(())
    }

    /// Moves the bytes still needed to the front of the buffer (growing it
    /// when the window fills it) and reads more.
    fn read_more(&mut self) -> Result<(), LogsError> {
        let live = self
            .window
            .iter()
            .map(|x| x.start)
            .min()
            .unwrap_or(self.scan)
            .min(self.scan);
        if live > 0 {
            self.buf.copy_within(live..self.filled, 0);
            for x in &mut self.window {
                x.start -= live;
                x.end -= live;
            }
            self.scan -= live;
            self.filled -= live;
        }
        if self.filled == self.buf.len() {
            // The window fills the buffer: grow it, but not without bound —
            // a file without line ends is not a log.
            if self.buf.len() >= MAX_BUFFER {
                return Err(read_err(&self.path)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {}: the next {} lines exceed {} MiB; not a log",
                        self.line_no + 1,
                        self.reorder,
                        MAX_BUFFER >> 20
                    ),
                ))
                .into());
            }
            let bigger = self.buf.len() * 2;
            self.buf.resize(bigger, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(&self.path)(e).into()),
            }
        }
    }

    fn front_time(&self) -> Option<i64> {
        self.window.front().map(|x| x.time)
    }

    /// Writes the front line to `out`.
    fn emit(&mut self, out: &mut impl Write) -> io::Result<()> {
        if let Some(item) = self.window.pop_front() {
            out.write_all(&self.buf[item.start..item.end])?;
            if !item.newline {
                out.write_all(b"\n")?;
            }
            self.last_emitted = self.last_emitted.max(item.time);
        }
        Ok(())
    }
}

/// The summary line (printed with `-v`; merge's stdout is AWStats'
/// data, so its summary stays on stderr).
pub fn describe(summary: &Summary, files: usize) -> String {
    format!(
        "merged {} line(s) from {files} file(s): {} late, {} unparsable, {} archived",
        summary.lines, summary.late, summary.unparsable, summary.archived
    )
}

/// The final count of the lines written late or without a readable
/// timestamp, when there were any: the lines themselves are reported only
/// up to [`REPORT_LINES`] of each kind, the count always.
fn disorder(summary: &Summary) -> Option<String> {
    (summary.late > 0 || summary.unparsable > 0).then(|| {
        format!(
            "{} line(s) written late (out of order; raise --reorder), {} line(s) without a \
             readable timestamp",
            summary.late, summary.unparsable
        )
    })
}

/// Merges `options.files` into `out`, then archives them when asked.
pub fn run(
    options: &Options,
    out: &mut impl Write,
    report: &Reporter,
) -> Result<(Summary, Outcome), LogsError> {
    let reorder = options.reorder.max(1);
    let buffer = ((32usize << 20) / options.files.len().max(1)).clamp(256 << 10, 4 << 20);
    let mut sources = Vec::with_capacity(options.files.len());
    for path in &options.files {
        sources.push(Source::open(path, reorder, buffer)?);
    }
    let mut summary = Summary::default();
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, s) in sources.iter_mut().enumerate() {
        s.fill(&mut summary, report)?;
        if let Some(t) = s.front_time() {
            heap.push(Reverse((t, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let source = &mut sources[i];
        // Keep writing from this input while its front is still the
        // earliest of all: no heap traffic for runs of lines.
        loop {
            source.emit(out).map_err(pysk_common::Error::Stdout)?;
            summary.lines += 1;
            source.fill(&mut summary, report)?;
            let Some(t) = source.front_time() else {
                break;
            };
            match heap.peek() {
                Some(Reverse(top)) if (t, i) > *top => {
                    heap.push(Reverse((t, i)));
                    break;
                }
                _ => {}
            }
        }
    }
    out.flush().map_err(pysk_common::Error::Stdout)?;
    drop(sources);
    if let Some(count) = disorder(&summary) {
        report.warn(count);
    }

    let mut outcome = Outcome::Success;
    if let Some(archive) = &options.archive {
        for path in &options.files {
            match archive_one(path, archive) {
                Ok(dest) => {
                    summary.archived += 1;
                    report.debug(format!(
                        "{}: archived as {}",
                        path.display(),
                        dest.display()
                    ));
                }
                Err(e) => {
                    report.warn(e);
                    outcome = Outcome::Partial;
                }
            }
        }
    }
    Ok((summary, outcome))
}

/// Moves `path` gzip-compressed into `<archive>/<vhost>/`, where the vhost
/// is the name of the directory it was in; the input is removed only once
/// the archived copy is durable.
fn archive_one(path: &Path, archive: &Path) -> Result<PathBuf, LogsError> {
    let vhost = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().and_then(Path::file_name).map(|n| n.to_owned()))
        .and_then(|n| {
            n.to_str()
                .and_then(|s| format::normalize_vhost(s.as_bytes()))
        })
        .ok_or_else(|| {
            write_err(path)(io::Error::other(
                "its directory is not named for a virtual host; not archived",
            ))
        })?;
    let dir = archive.join(&vhost);
    fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut raw = fs::File::open(path).map_err(read_err(path))?;
    let mut magic = [0u8; 2];
    let is_gzip = raw.read_exact(&mut magic).is_ok() && input::is_gzip(&magic);
    drop(raw);
    let base = [".gz", ".bz2", ".xz", ".zst"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name)
        .to_owned();
    let dest = (0u32..)
        .map(|n| match n {
            0 => dir.join(format!("{base}.gz")),
            n => dir.join(format!("{base}.{n}.gz")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{base}.gz")));
    let mut file = AtomicFile::create(&dest, atomic::Options::default())?;
    if is_gzip {
        let mut input = fs::File::open(path).map_err(read_err(path))?;
        io::copy(&mut input, &mut file).map_err(write_err(&dest))?;
    } else {
        // Plain, bzip2, xz or zstd: the archive holds gzip only.
        let mut input = input::open(path).map_err(read_err(path))?;
        let mut gz = GzEncoder::new(&mut file, Compression::default());
        copy_from(&mut input, &mut gz, path, &dest)?;
        gz.finish().map_err(write_err(&dest))?;
    }
    file.commit()?;
    fs::remove_file(path).map_err(write_err(path))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        atomic::sync_dir(parent).map_err(write_err(parent))?;
    }
    Ok(dest)
}

/// Copies `input` (read from `path`) into `out` (written to `dest`),
/// telling a read error from a write error.
fn copy_from(
    input: &mut impl Read,
    out: &mut impl Write,
    path: &Path,
    dest: &Path,
) -> Result<(), LogsError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(path)(e).into()),
        };
        out.write_all(&buf[..n]).map_err(write_err(dest))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pysk_common::report::Level;

    fn line(stamp: &str, tag: &str) -> String {
        format!("192.0.2.1 - - [{stamp}] \"GET /{tag} HTTP/1.1\" 200 1 \"-\" \"-\"\n")
    }

    fn merge(files: &[(&str, String)], reorder: usize) -> (String, Summary) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut paths = Vec::new();
        for (name, text) in files {
            let p = dir.path().join(name);
            fs::write(&p, text).expect("write");
            paths.push(p);
        }
        let options = Options {
            files: paths,
            reorder,
            archive: None,
        };
        let mut out = Vec::new();
        let (summary, _) = run(
            &options,
            &mut out,
            &Reporter::new("pysk-logs", Level::Quiet),
        )
        .expect("merge");
        (String::from_utf8(out).expect("utf-8"), summary)
    }

    fn tags(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| {
                l.split('/')
                    .nth(3)
                    .unwrap_or("?")
                    .split(' ')
                    .next()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn merges_by_instant_honouring_offsets_and_ties_by_argument_order() {
        let a =
            line("17/May/2015:12:00:00 +0200", "a1") + &line("17/May/2015:10:30:00 +0000", "a2");
        let b =
            line("17/May/2015:10:00:00 +0000", "b1") + &line("17/May/2015:10:15:00 +0000", "b2");
        let c = line("17/May/2015:09:00:00 -0100", "c1");
        let (out, summary) = merge(&[("a", a), ("b", b), ("c", c)], 1000);
        assert_eq!(tags(&out), ["a1", "b1", "c1", "b2", "a2"]);
        assert_eq!(summary.lines, 5);
        assert_eq!(summary.late, 0);
    }

    #[test]
    fn reorder_window_sorts_nearly_sorted_input_stably() {
        let text = line("17/May/2015:10:00:05 +0000", "x1")
            + &line("17/May/2015:10:00:01 +0000", "x2")
            + &line("17/May/2015:10:00:05 +0000", "x3")
            + &line("17/May/2015:10:00:03 +0000", "x4");
        let (out, summary) = merge(&[("x", text.clone())], 1000);
        assert_eq!(tags(&out), ["x2", "x4", "x1", "x3"]);
        assert_eq!(summary.late, 0);
        // With a window of one line nothing can be fixed: every line still
        // comes out once, and the late ones are counted.
        let (out, summary) = merge(&[("x", text)], 1);
        assert_eq!(tags(&out), ["x1", "x2", "x3", "x4"]);
        assert_eq!(summary.late, 2);
    }

    #[test]
    fn unparsable_line_follows_its_predecessor_and_last_line_gets_a_newline() {
        let text = line("17/May/2015:10:00:00 +0000", "p1")
            + "garbage without a stamp\n"
            + line("17/May/2015:10:00:02 +0000", "p2").trim_end();
        let other = line("17/May/2015:10:00:01 +0000", "q1");
        let (out, summary) = merge(&[("p", text), ("q", other)], 1000);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "garbage without a stamp");
        assert!(lines[2].contains("/q1 "));
        assert!(out.ends_with('\n'));
        assert_eq!(summary.unparsable, 1);
    }

    #[test]
    fn a_line_without_a_time_after_a_late_one_is_not_late_itself() {
        let mut text = String::new();
        for s in ["05", "04", "03"] {
            text += &line(&format!("17/May/2015:10:00:{s} +0000"), s);
            text += "garbage\n";
        }
        let (out, summary) = merge(&[("x", text.clone())], 1);
        assert_eq!(out, text);
        assert_eq!((summary.late, summary.unparsable), (2, 3));
    }

    #[test]
    fn the_count_of_late_and_unparsable_lines_is_told_whenever_there_are_any() {
        assert_eq!(disorder(&Summary::default()), None);
        let summary = Summary {
            lines: 40,
            late: 13,
            unparsable: 0,
            archived: 0,
        };
        assert_eq!(
            disorder(&summary).as_deref(),
            Some(
                "13 line(s) written late (out of order; raise --reorder), 0 line(s) without a \
                 readable timestamp"
            )
        );
    }

    #[test]
    fn a_file_without_line_ends_is_refused_not_buffered_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("binary");
        fs::write(&path, vec![b'x'; MAX_BUFFER + 1]).expect("write");
        let options = Options {
            files: vec![path],
            reorder: 1000,
            archive: None,
        };
        let mut out = Vec::new();
        let err = run(
            &options,
            &mut out,
            &Reporter::new("pysk-logs", Level::Quiet),
        )
        .expect_err("refused");
        assert!(
            matches!(err, LogsError::Common(pysk_common::Error::Read { .. })),
            "{err}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn big_inputs_cross_buffer_boundaries_intact() {
        let mut a = String::new();
        let mut b = String::new();
        for i in 0..40_000u32 {
            let stamp = format!(
                "17/May/2015:{:02}:{:02}:{:02} +0000",
                i / 3600 % 24,
                i / 60 % 60,
                i % 60
            );
            a.push_str(&line(&stamp, &format!("a{i}")));
            b.push_str(&line(&stamp, &format!("b{i}")));
        }
        let (out, summary) = merge(&[("a", a.clone()), ("b", b.clone())], 1000);
        assert_eq!(summary.lines, 80_000);
        assert_eq!(out.len(), a.len() + b.len());
        let t = tags(&out);
        assert_eq!(&t[..4], ["a0", "b0", "a1", "b1"]);
    }
}
