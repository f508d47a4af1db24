//! Sorting more lines than fit in memory: an external merge sort.
//!
//! Lines are appended to one arena with an index entry each, keyed by
//! [`Key`]: group, time, then input file and line number, so equal times
//! keep input order however the lines arrived. When the arena or the index
//! is full, the index is sorted and written out as a run file, which
//! remembers where each group starts in it. At the end every group can be
//! read back on its own — a k-way merge of its part of each run and of what
//! is still in memory — so that groups are written on several threads at
//! once. Memory stays within the budget whatever the input size: the arena
//! and index are allocated once and reused.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
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
    budget: usize,
    arena: Vec<u8>,
    index: Vec<Slot>,
    runs: Vec<Run>,
}

/// A spilled run: its file and where each of its groups starts.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    groups: Vec<(u32, u64)>,
}

/// The read buffer of one run reader at most; fewer bytes when many runs
/// are read at once, so that they share the last eighth of the budget.
const RUN_READ_BUFFER: usize = 64 * 1024;
const RECORD_HEAD: usize = 24;

impl Sorter {
    /// A sorter using at most about `budget` bytes of memory, spilling runs
    /// into `dir`.
    pub fn new(dir: &Path, budget: usize) -> Sorter {
        // Arena 5/8, index 1/4, and 1/8 for sorting and reading runs back.
        let arena_cap = (budget / 8 * 5).clamp(64 * 1024, u32::MAX as usize);
        let index_cap = (budget / 4 / std::mem::size_of::<Slot>()).max(1024);
        Sorter {
            dir: dir.to_owned(),
            budget,
            arena: Vec::with_capacity(arena_cap),
            index: Vec::with_capacity(index_cap),
            runs: Vec::new(),
        }
    }

    /// How many runs were spilled so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
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

    fn line(&self, s: &Slot) -> &[u8] {
        &self.arena[s.start as usize..(s.start + s.len) as usize]
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
        let mut groups: Vec<(u32, u64)> = Vec::new();
        let mut offset = 0u64;
        for s in &self.index {
            if groups.last().is_none_or(|(g, _)| *g != s.key.group) {
                groups.push((s.key.group, offset));
            }
            out.write_all(&s.key.group.to_le_bytes())?;
            out.write_all(&s.key.file.to_le_bytes())?;
            out.write_all(&s.key.seq.to_le_bytes())?;
            out.write_all(&s.key.time.to_le_bytes())?;
            out.write_all(&s.len.to_le_bytes())?;
            out.write_all(self.line(s))?;
            offset += (RECORD_HEAD + s.len as usize) as u64;
        }
        out.flush()?;
        self.runs.push(Run { path, groups });
        self.index.clear();
        self.arena.clear();
        Ok(())
    }

    /// Sorts what is still in memory and returns the groups, each of which
    /// can then be read back in key order on its own
    /// ([`SortedGroups::for_each`]), from any thread.
    pub fn sorted_groups(&mut self) -> SortedGroups<'_> {
        self.sort();
        let mut memory = Vec::new();
        let mut start = 0;
        while start < self.index.len() {
            let group = self.index[start].key.group;
            let end = start + self.index[start..].partition_point(|s| s.key.group == group);
            memory.push((group, start..end));
            start = end;
        }
        let mut groups: Vec<u32> = memory.iter().map(|(g, _)| *g).collect();
        for run in &self.runs {
            groups.extend(run.groups.iter().map(|(g, _)| *g));
        }
        groups.sort_unstable();
        groups.dedup();
        let readers = self.runs.len() * std::thread::available_parallelism().map_or(1, |n| n.get());
        let read_buffer = (self.budget / 8 / readers.max(1)).clamp(4096, RUN_READ_BUFFER);
        SortedGroups {
            sorter: self,
            memory,
            groups,
            read_buffer,
        }
    }
}

/// The sorted lines, by group; see [`Sorter::sorted_groups`].
#[derive(Debug)]
pub struct SortedGroups<'a> {
    sorter: &'a Sorter,
    memory: Vec<(u32, std::ops::Range<usize>)>,
    /// Every group that holds lines, in order.
    pub groups: Vec<u32>,
    read_buffer: usize,
}

impl SortedGroups<'_> {
    /// Hands every record of `group` to `sink` in key order: a k-way merge
    /// of the group's part of each run and of memory.
    pub fn for_each<F, E>(&self, group: u32, mut sink: F) -> Result<(), E>
    where
        F: FnMut(Record<'_>) -> Result<(), E>,
        E: From<io::Error>,
    {
        let sorter = self.sorter;
        let memory: &[Slot] = match self.memory.binary_search_by_key(&group, |(g, _)| *g) {
            Ok(i) => &sorter.index[self.memory[i].1.clone()],
            Err(_) => &[],
        };
        let mut readers = Vec::new();
        for run in &sorter.runs {
            if let Some((_, offset)) = run.groups.iter().find(|(g, _)| *g == group) {
                readers.push(RunReader::open_at(
                    &run.path,
                    *offset,
                    group,
                    self.read_buffer,
                )?);
            }
        }
        // Sources: the runs, then memory; keys are unique, so the order of
        // sources never decides anything.
        let in_memory = readers.len();
        let mut next_mem = 0usize;
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if r.advance()? {
                heap.push(Reverse((r.key, i)));
            }
        }
        if let Some(s) = memory.first() {
            heap.push(Reverse((s.key, in_memory)));
        }
        while let Some(Reverse((_, source))) = heap.pop() {
            if source == in_memory {
                let s = &memory[next_mem];
                sink(Record {
                    key: s.key,
                    line: sorter.line(s),
                })?;
                next_mem += 1;
                if let Some(n) = memory.get(next_mem) {
                    heap.push(Reverse((n.key, in_memory)));
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
        Ok(())
    }

    /// Removes the run files.
    pub fn remove_runs(self) -> io::Result<()> {
        for run in &self.sorter.runs {
            fs::remove_file(&run.path)?;
        }
        Ok(())
    }
}

/// Reads one group's part of a run file back, a record at a time.
struct RunReader {
    input: BufReader<File>,
    group: u32,
    key: Key,
    line: Vec<u8>,
}

impl RunReader {
    fn open_at(path: &Path, offset: u64, group: u32, buffer: usize) -> io::Result<RunReader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(RunReader {
            input: BufReader::with_capacity(buffer, file),
            group,
            key: Key {
                group,
                time: 0,
                file: 0,
                seq: 0,
            },
            line: Vec::new(),
        })
    }

    /// Loads the next record of the group; `false` at its end.
    fn advance(&mut self) -> io::Result<bool> {
        let mut head = [0u8; RECORD_HEAD];
        match self.input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        if word(0) != self.group {
            return Ok(false);
        }
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

    /// Sorts `input` with `budget` bytes of memory, as two "files" fed
    /// interleaved, the way parallel readers would; returns the records in
    /// group then key order, the number of runs, and leaves no run file.
    fn sorted(budget: usize, input: &[(u32, i64, &str)]) -> (Vec<(Key, String)>, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = Sorter::new(dir.path(), budget);
        for (i, (g, t, text)) in input.iter().enumerate() {
            let key = Key {
                group: *g,
                time: *t,
                file: u32::try_from(i % 2).expect("small"),
                seq: u32::try_from(i / 2).expect("small"),
            };
            sorter.push(key, text.as_bytes()).expect("push");
        }
        let runs = sorter.runs();
        let groups = sorter.sorted_groups();
        let mut out = Vec::new();
        for g in &groups.groups {
            groups
                .for_each(*g, |r| -> io::Result<()> {
                    out.push((r.key, String::from_utf8_lossy(r.line).into_owned()));
                    Ok(())
                })
                .expect("read back");
        }
        groups.remove_runs().expect("remove runs");
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

    #[test]
    fn groups_only_in_some_runs_are_read_back_whole() {
        // Group 7 appears only in the first run, group 9 only in memory.
        let mut input: Vec<(u32, i64, &str)> = (0..1500).map(|i| (7, i, "x")).collect();
        input.extend((0..1500).map(|i| (8, i, "y")));
        input.extend((0..10).map(|i| (9, i, "z")));
        let (out, runs) = sorted(1, &input);
        assert!(runs >= 2);
        assert_eq!(out.iter().filter(|(k, _)| k.group == 7).count(), 1500);
        assert_eq!(out.iter().filter(|(k, _)| k.group == 8).count(), 1500);
        assert_eq!(out.iter().filter(|(k, _)| k.group == 9).count(), 10);
    }
}
