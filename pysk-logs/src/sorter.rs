//! Sorting more lines than fit in memory: an external merge sort.
//!
//! Lines are appended to one arena with an index entry each (group, time,
//! source file). When the arena or the index is full, the index is sorted
//! by (group, time) — stably, so equal times keep input order — and written
//! out as a run file; at the end the runs and what is still in memory are
//! merged back in (group, time, input order). Memory stays within the
//! budget whatever the input size: the arena and index are allocated once
//! and reused.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One line's place in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    time: i64,
    group: u32,
    file: u32,
    start: u32,
    len: u32,
}

/// A record as handed back in sorted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The group (virtual host) it belongs to.
    pub group: u32,
    /// Its instant.
    pub time: i64,
    /// The input file it came from.
    pub file: u32,
    /// The line, newline included.
    pub line: &'a [u8],
}

/// An external sorter over groups of time-stamped lines.
#[derive(Debug)]
pub struct Sorter {
    dir: PathBuf,
    arena: Vec<u8>,
    index: Vec<Slot>,
    runs: Vec<PathBuf>,
}

const RUN_READ_BUFFER: usize = 64 * 1024;

impl Sorter {
    /// A sorter using at most about `budget` bytes of memory, spilling runs
    /// into `dir`.
    pub fn new(dir: &Path, budget: usize) -> Sorter {
        // Arena 5/8, index 1/4, and 1/8 for the stable sort's scratch.
        let arena_cap = (budget / 8 * 5).clamp(64 * 1024, u32::MAX as usize);
        let index_cap = (budget / 4 / std::mem::size_of::<Slot>()).max(1024);
        Sorter {
            dir: dir.to_owned(),
            arena: Vec::with_capacity(arena_cap),
            index: Vec::with_capacity(index_cap),
            runs: Vec::new(),
        }
    }

    /// The run files written so far.
    pub fn runs(&self) -> &[PathBuf] {
        &self.runs
    }

    /// Adds a line that `write` appends to the arena (at most `max_len`
    /// bytes), spilling a run first if it might not fit.
    pub fn push<W>(
        &mut self,
        group: u32,
        time: i64,
        file: u32,
        max_len: usize,
        write: W,
    ) -> io::Result<()>
    where
        W: FnOnce(&mut Vec<u8>),
    {
        if self.arena.len() + max_len > self.arena.capacity()
            || self.index.len() == self.index.capacity()
        {
            self.spill()?;
        }
        let start = self.arena.len();
        write(&mut self.arena);
        let len = self.arena.len() - start;
        let (Ok(start), Ok(len)) = (u32::try_from(start), u32::try_from(len)) else {
            return Err(io::Error::other("line does not fit the sort arena"));
        };
        self.index.push(Slot {
            time,
            group,
            file,
            start,
            len,
        });
        Ok(())
    }

    fn sort(&mut self) {
        self.index.sort_by_key(|s| (s.group, s.time));
    }

    /// Writes what is in memory as a sorted run and empties the arena.
    fn spill(&mut self) -> io::Result<()> {
        if self.index.is_empty() {
            return Ok(());
        }
        self.sort();
        let path = self
            .dir
            .join(format!("run-{}-{}", std::process::id(), self.runs.len()));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        self.runs.push(path);
        for s in &self.index {
            let line = &self.arena[s.start as usize..(s.start + s.len) as usize];
            out.write_all(&s.group.to_le_bytes())?;
            out.write_all(&s.file.to_le_bytes())?;
            out.write_all(&s.time.to_le_bytes())?;
            out.write_all(&s.len.to_le_bytes())?;
            out.write_all(line)?;
        }
        out.flush()?;
        self.index.clear();
        self.arena.clear();
        Ok(())
    }

    /// Hands every record to `sink` in (group, time, input order) order and
    /// removes the run files.
    pub fn finish<F, E>(mut self, mut sink: F) -> Result<(), E>
    where
        F: FnMut(Record<'_>) -> Result<(), E>,
        E: From<io::Error>,
    {
        self.sort();
        if self.runs.is_empty() {
            for s in &self.index {
                sink(Record {
                    group: s.group,
                    time: s.time,
                    file: s.file,
                    line: &self.arena[s.start as usize..(s.start + s.len) as usize],
                })?;
            }
            return Ok(());
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            readers.push(RunReader::open(path)?);
        }
        // Sources: the runs in the order they were written, then memory,
        // which holds the latest input; ties go to the lower source.
        let memory = readers.len();
        let mut next_mem = 0usize;
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if r.advance()? {
                heap.push(Reverse((r.group, r.time, i)));
            }
        }
        if let Some(s) = self.index.first() {
            heap.push(Reverse((s.group, s.time, memory)));
        }
        while let Some(Reverse((_, _, source))) = heap.pop() {
            if source == memory {
                let s = self.index[next_mem];
                sink(Record {
                    group: s.group,
                    time: s.time,
                    file: s.file,
                    line: &self.arena[s.start as usize..(s.start + s.len) as usize],
                })?;
                next_mem += 1;
                if let Some(n) = self.index.get(next_mem) {
                    heap.push(Reverse((n.group, n.time, memory)));
                }
            } else {
                let r = &mut readers[source];
                sink(Record {
                    group: r.group,
                    time: r.time,
                    file: r.file,
                    line: &r.line,
                })?;
                if r.advance()? {
                    heap.push(Reverse((r.group, r.time, source)));
                }
            }
        }
        drop(readers);
        for path in &self.runs {
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// Reads a run file back one record at a time.
struct RunReader {
    input: BufReader<File>,
    group: u32,
    file: u32,
    time: i64,
    line: Vec<u8>,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<RunReader> {
        Ok(RunReader {
            input: BufReader::with_capacity(RUN_READ_BUFFER, File::open(path)?),
            group: 0,
            file: 0,
            time: 0,
            line: Vec::new(),
        })
    }

    /// Loads the next record; `false` at the end of the run.
    fn advance(&mut self) -> io::Result<bool> {
        let mut head = [0u8; 20];
        match self.input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        self.group = word(0);
        self.file = word(4);
        let mut t = [0u8; 8];
        t.copy_from_slice(&head[8..16]);
        self.time = i64::from_le_bytes(t);
        let len = word(16) as usize;
        self.line.resize(len, 0);
        self.input.read_exact(&mut self.line)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(budget: usize, input: &[(u32, i64, &str)]) -> (Vec<(u32, i64, u32, String)>, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = Sorter::new(dir.path(), budget);
        for (i, (g, t, text)) in input.iter().enumerate() {
            let file = u32::try_from(i).expect("small");
            sorter
                .push(*g, *t, file, text.len(), |a| {
                    a.extend_from_slice(text.as_bytes())
                })
                .expect("push");
        }
        let runs = sorter.runs().len();
        let mut out = Vec::new();
        sorter
            .finish(|r| -> io::Result<()> {
                out.push((
                    r.group,
                    r.time,
                    r.file,
                    String::from_utf8_lossy(r.line).into_owned(),
                ));
                Ok(())
            })
            .expect("finish");
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            0,
            "runs removed"
        );
        (out, runs)
    }

    #[test]
    fn sorts_by_group_then_time_and_keeps_input_order_on_ties() {
        // Tiny budgets force a spill every few lines; a large one none.
        let mut input = Vec::new();
        let words = ["a", "b", "c", "d", "e", "f", "g"];
        for i in 0..5000i64 {
            let group = u32::try_from(i % 3).expect("small");
            input.push((group, (i * 7919) % 50, words[(i % 7) as usize]));
        }
        let (big, big_runs) = sorted(64 << 20, &input);
        assert_eq!(big_runs, 0);
        let (small, small_runs) = sorted(1, &input);
        assert!(small_runs > 3, "{small_runs} runs");
        assert_eq!(big, small);
        assert_eq!(big.len(), input.len());
        for pair in big.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!((a.0, a.1) <= (b.0, b.1), "order");
            if (a.0, a.1) == (b.0, b.1) {
                assert!(a.2 < b.2, "ties keep input order");
            }
        }
    }
}
