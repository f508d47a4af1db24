//! Sorting more lines than fit in memory: an external merge sort.
//!
//! Lines are appended to one arena with an index entry each, keyed by
//! [`Key`]: group, time, then input file and line number, so equal times
//! keep input order however the lines arrived. When the arena or the index
//! is full, the index is sorted and written out as a run file; at the end
//! the runs and what is still in memory are merged back by key. Memory
//! stays within the budget whatever the input size: the arena and index are
//! allocated once and reused.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What lines are sorted by, in this order of fields; unique per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The group (virtual host) it belongs to.
    pub group: u32,
    /// Its instant.
    pub time: i64,
    /// The input file it came from.
    pub file: u32,
    /// Its line number in that file.
    pub seq: u32,
}

/// One line's place in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: Key,
    start: u32,
    len: u32,
}

/// A record as handed back in sorted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its sort key.
    pub key: Key,
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

    /// Adds a line (newline included) under `key`, spilling a run first
    /// if it does not fit.
    pub fn push(&mut self, key: Key, line: &[u8]) -> io::Result<()> {
        if self.arena.len() + line.len() > self.arena.capacity()
            || self.index.len() == self.index.capacity()
        {
            self.spill()?;
        }
        let start = self.arena.len();
        let (Ok(start32), Ok(len)) = (u32::try_from(start), u32::try_from(line.len())) else {
            return Err(io::Error::other("line does not fit the sort arena"));
        };
        self.arena.extend_from_slice(line);
        self.index.push(Slot {
            key,
            start: start32,
            len,
        });
        Ok(())
    }

    fn sort(&mut self) {
        self.index.sort_unstable_by_key(|s| s.key);
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
            out.write_all(&s.key.group.to_le_bytes())?;
            out.write_all(&s.key.file.to_le_bytes())?;
            out.write_all(&s.key.seq.to_le_bytes())?;
            out.write_all(&s.key.time.to_le_bytes())?;
            out.write_all(&s.len.to_le_bytes())?;
            out.write_all(line)?;
        }
        out.flush()?;
        self.index.clear();
        self.arena.clear();
        Ok(())
    }

    /// When nothing was spilled: sorts what is in memory and returns it as
    /// groups, each a range of records in key order, so that the groups can
    /// be written on several threads at once. `None` when runs were spilled:
    /// then [`Sorter::finish`] merges them.
    pub fn sorted_groups(&mut self) -> Option<InMemory<'_>> {
        if !self.runs.is_empty() {
            return None;
        }
        self.sort();
        let mut groups = Vec::new();
        let mut start = 0;
        while start < self.index.len() {
            let group = self.index[start].key.group;
            let end = start + self.index[start..].partition_point(|s| s.key.group == group);
            groups.push((group, start..end));
            start = end;
        }
        Some(InMemory {
            sorter: self,
            groups,
        })
    }

    /// Hands every record to `sink` in key order and removes the run files.
    pub fn finish<F, E>(mut self, mut sink: F) -> Result<(), E>
    where
        F: FnMut(Record<'_>) -> Result<(), E>,
        E: From<io::Error>,
    {
        self.sort();
        if self.runs.is_empty() {
            for s in &self.index {
                sink(Record {
                    key: s.key,
                    line: &self.arena[s.start as usize..(s.start + s.len) as usize],
                })?;
            }
            return Ok(());
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            readers.push(RunReader::open(path)?);
        }
        // Sources: the runs, then memory; keys are unique, so the order of
        // sources never decides anything.
        let memory = readers.len();
        let mut next_mem = 0usize;
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if r.advance()? {
                heap.push(Reverse((r.key, i)));
            }
        }
        if let Some(s) = self.index.first() {
            heap.push(Reverse((s.key, memory)));
        }
        while let Some(Reverse((_, source))) = heap.pop() {
            if source == memory {
                let s = self.index[next_mem];
                sink(Record {
                    key: s.key,
                    line: &self.arena[s.start as usize..(s.start + s.len) as usize],
                })?;
                next_mem += 1;
                if let Some(n) = self.index.get(next_mem) {
                    heap.push(Reverse((n.key, memory)));
                }
            } else {
                let r = &mut readers[source];
                sink(Record {
                    key: r.key,
                    line: &r.line,
                })?;
                if r.advance()? {
                    heap.push(Reverse((r.key, source)));
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

/// What [`Sorter::sorted_groups`] returns: the sorted records, by group.
#[derive(Debug)]
pub struct InMemory<'a> {
    sorter: &'a Sorter,
    /// Each group and the range of its records.
    pub groups: Vec<(u32, std::ops::Range<usize>)>,
}

impl InMemory<'_> {
    /// The record at position `i` of the sorted order.
    pub fn record(&self, i: usize) -> Record<'_> {
        let s = self.sorter.index[i];
        Record {
            key: s.key,
            line: &self.sorter.arena[s.start as usize..(s.start + s.len) as usize],
        }
    }
}

/// Reads a run file back one record at a time.
struct RunReader {
    input: BufReader<File>,
    key: Key,
    line: Vec<u8>,
}

impl RunReader {
    fn open(path: &Path) -> io::Result<RunReader> {
        Ok(RunReader {
            input: BufReader::with_capacity(RUN_READ_BUFFER, File::open(path)?),
            key: Key {
                group: 0,
                time: 0,
                file: 0,
                seq: 0,
            },
            line: Vec::new(),
        })
    }

    /// Loads the next record; `false` at the end of the run.
    fn advance(&mut self) -> io::Result<bool> {
        let mut head = [0u8; 24];
        match self.input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&head[12..20]);
        self.key = Key {
            group: word(0),
            file: word(4),
            seq: word(8),
            time: i64::from_le_bytes(t),
        };
        let len = word(20) as usize;
        self.line.resize(len, 0);
        self.input.read_exact(&mut self.line)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(budget: usize, input: &[(u32, i64, &str)]) -> (Vec<(Key, String)>, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = Sorter::new(dir.path(), budget);
        // Two "files" fed interleaved, as parallel readers would.
        for (i, (g, t, text)) in input.iter().enumerate() {
            let seq = u32::try_from(i / 2).expect("small");
            let key = Key {
                group: *g,
                time: *t,
                file: u32::try_from(i % 2).expect("small"),
                seq,
            };
            sorter.push(key, text.as_bytes()).expect("push");
        }
        let runs = sorter.runs().len();
        let mut out = Vec::new();
        sorter
            .finish(|r| -> io::Result<()> {
                out.push((r.key, String::from_utf8_lossy(r.line).into_owned()));
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
        // (The input order is file, then line, whatever order they came in.)
        // Tiny budgets force a spill every few lines; a large one none.
        let mut input = Vec::new();
        let words = ["a", "b", "c", "d", "e", "f", "g"];
        for i in 0..5000i64 {
            let group = u32::try_from(i % 3).expect("small");
            input.push((group, (i * 7919) % 50, words[(i % 7) as usize]));
        }
        let (big, big_runs) = sorted(64 << 20, &input);
        assert_eq!(big_runs, 0);
        // The in-memory groups hold the same order as `finish`.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = Sorter::new(dir.path(), 64 << 20);
        for (i, (g, t, text)) in input.iter().enumerate() {
            let key = Key {
                group: *g,
                time: *t,
                file: u32::try_from(i % 2).expect("small"),
                seq: u32::try_from(i / 2).expect("small"),
            };
            sorter.push(key, text.as_bytes()).expect("push");
        }
        let mem = sorter.sorted_groups().expect("nothing spilled");
        assert_eq!(
            mem.groups.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let grouped: Vec<(Key, String)> = mem
            .groups
            .iter()
            .flat_map(|(_, r)| r.clone())
            .map(|i| {
                let rec = mem.record(i);
                (rec.key, String::from_utf8_lossy(rec.line).into_owned())
            })
            .collect();
        assert_eq!(grouped, big);
        let (small, small_runs) = sorted(1, &input);
        assert!(small_runs > 3, "{small_runs} runs");
        assert_eq!(big, small);
        assert_eq!(big.len(), input.len());
        for pair in big.windows(2) {
            let (a, b) = (pair[0].0, pair[1].0);
            assert!((a.group, a.time) <= (b.group, b.time), "order");
            if (a.group, a.time) == (b.group, b.time) {
                assert!((a.file, a.seq) < (b.file, b.seq), "ties keep input order");
            }
        }
    }
}
