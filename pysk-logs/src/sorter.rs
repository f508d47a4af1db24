//! Sorting the lines of `split` per virtual host: in memory, and past the
//! memory budget in runs spilled to disk.
//!
//! Every parsing worker owns a [`Store`]. It keeps each group's (virtual
//! host's) lines, already converted to combined format, together in the
//! group's own chunks of one memory region, with a slot per line saying
//! where it is. Logs arrive nearly in time order, so a group's lines in sorted order
//! lie mostly one after the other in its chunks, and writing them out reads
//! memory in sequence instead of jumping about. When a store's share of the
//! budget is full, its groups are sorted and written as a run file of lines
//! with their keys, and the chunks are reused. At the end each worker sorts
//! its own groups ([`Store::sort`]); [`Sorted::for_each`] then hands out
//! one group in order — a merge of its lines in every store and of its
//! part of every run — so that groups are written on several threads at
//! once. Memory stays within the budget whatever the input size: chunks
//! and slots are counted against it, and a store spills before it would
//! pass its share.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::{Advice, MmapMut};

/// What lines are ordered by within their group: time, then input file
/// and line number, so equal times keep input order however the lines
/// arrived. Unique per line.
pub type Order = (i64, u32, u32);

/// One line in memory: its order and where it is in the store's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    time: i64,
    file: u32,
    seq: u32,
    at: u32,
    len: u32,
}

impl Slot {
    fn order(&self) -> Order {
        (self.time, self.file, self.seq)
    }

    fn line<'r>(&self, region: &'r [u8]) -> &'r [u8] {
        let at = self.at as usize;
        &region[at..at + self.len as usize]
    }
}

/// One group's lines in a store: their slots, and the room left in the
/// group's current chunk of the region.
#[derive(Debug, Default)]
struct Group {
    slots: Vec<Slot>,
    fill: usize,
    end: usize,
    chunks: u32,
}

/// A spilled run: its file and where each of its groups starts.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    groups: Vec<(u32, u64)>,
}

/// The bytes of a run record before its line: group, file, line number,
/// time and line length.
const RECORD_HEAD: usize = 24;
/// The read buffer of one run reader at most; fewer bytes when many runs
/// are read at once, so that they share the last eighth of the budget.
const RUN_READ_BUFFER: usize = 64 * 1024;
/// Bytes gathered before they are written to a run file.
const WRITE_BUFFER: usize = 1 << 20;

/// The first chunk of a group: room for the longest line `split` accepts.
/// A group's chunks double from there up to [`MAX_CHUNK`], so that many
/// small virtual hosts do not each hold a large chunk.
const MIN_CHUNK: usize = 128 * 1024;
/// The largest chunk: a huge page.
const MAX_CHUNK: usize = 2 << 20;

/// One worker's lines: per group its slots, the lines themselves in one
/// region of memory handed out in chunks, and the runs it spilled.
#[derive(Debug)]
pub struct Store {
    groups: Vec<Group>,
    /// Memory mapped once and reused after every spill: the kernel
    /// provides it in huge pages where it can, and a chunk's pages are
    /// asked for in one call before it is used, which costs a fraction of
    /// a fault per page on a virtual machine.
    region: MmapMut,
    /// Where the next chunk starts.
    next: usize,
    /// How far the region's pages were asked for.
    populated: usize,
    max_chunk: usize,
    /// Bytes of slots held.
    slot_bytes: usize,
    limit: usize,
    dir: PathBuf,
    name: String,
    runs: Vec<Run>,
}

impl Store {
    /// A store that keeps its lines within about `limit` bytes (two
    /// chunks at least), spilling runs into `dir` under names starting
    /// with `name`. Lines must be at most 128 KiB long.
    pub fn new(dir: &Path, name: String, limit: usize) -> io::Result<Store> {
        let max_chunk = (limit / 8).clamp(MIN_CHUNK, MAX_CHUNK);
        // Offsets are u32; what is not written to takes no memory.
        let size = limit.max(2 * max_chunk).min(u32::MAX as usize);
        let region = MmapMut::map_anon(size)?;
        // Without transparent huge pages this changes nothing.
        let _ = region.advise(Advice::HugePage);
        Ok(Store {
            groups: Vec::new(),
            region,
            next: 0,
            populated: 0,
            max_chunk,
            slot_bytes: 0,
            limit,
            dir: dir.to_owned(),
            name,
            runs: Vec::new(),
        })
    }

    /// How many runs this store spilled.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Hands out a chunk of `size` bytes of the region, spilling a run
    /// first when the budget has no room for it.
    fn chunk(&mut self, size: usize) -> io::Result<usize> {
        let over =
            |s: &Store| s.next + size > s.region.len() || s.next + size + s.slot_bytes > s.limit;
        if over(self) && self.groups.iter().any(|g| !g.slots.is_empty()) {
            self.spill()?;
        }
        if self.next + size > self.region.len() {
            return Err(io::Error::other("a line does not fit the sort memory"));
        }
        let at = self.next;
        self.next += size;
        if self.next > self.populated {
            let end = self.next.next_multiple_of(MAX_CHUNK).min(self.region.len());
            // Failing only means the pages come a fault at a time.
            let _ = self.region.advise_range(
                Advice::PopulateWrite,
                self.populated,
                end - self.populated,
            );
            self.populated = end;
        }
        Ok(at)
    }

    /// Adds a line of `group` made of `pieces`.
    pub fn push(&mut self, group: u32, order: Order, pieces: &[&[u8]]) -> io::Result<()> {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let g = group as usize;
        if self.groups.len() <= g {
            self.groups.resize_with(g + 1, Group::default);
        }
        if self.groups[g].end - self.groups[g].fill < len {
            let grown = MIN_CHUNK << self.groups[g].chunks.min(8);
            let size = grown.min(self.max_chunk).max(len);
            let at = self.chunk(size)?;
            let group = &mut self.groups[g];
            group.fill = at;
            group.end = at + size;
            group.chunks += 1;
        }
        let group = &mut self.groups[g];
        let at = group.fill;
        for p in pieces {
            self.region[group.fill..group.fill + p.len()].copy_from_slice(p);
            group.fill += p.len();
        }
        let before = group.slots.capacity();
        // The region is at most 4 GiB: offsets and lengths fit in a u32.
        group.slots.push(Slot {
            time: order.0,
            file: order.1,
            seq: order.2,
            at: at as u32,
            len: len as u32,
        });
        self.slot_bytes += (group.slots.capacity() - before) * std::mem::size_of::<Slot>();
        Ok(())
    }

    /// Sorts every group by [`Order`]. Orders are unique, but the stable
    /// sort is the faster one here: it finds and merges the long stretches
    /// in order that nearly sorted logs consist of.
    pub fn sort(&mut self) {
        for group in &mut self.groups {
            group.slots.sort_by_key(Slot::order);
        }
    }

    /// Writes every line, sorted, to a new run file and empties the store,
    /// keeping its region for reuse.
    fn spill(&mut self) -> io::Result<()> {
        self.sort();
        let path = self
            .dir
            .join(format!("run-{}-{}", self.name, self.runs.len()));
        let mut out = File::create(&path)?;
        let mut buf = Vec::with_capacity(WRITE_BUFFER + RECORD_HEAD + MIN_CHUNK);
        let mut groups = Vec::new();
        let mut offset = 0u64;
        for (g, group) in self.groups.iter().enumerate() {
            if group.slots.is_empty() {
                continue;
            }
            let number = u32::try_from(g).unwrap_or(u32::MAX);
            groups.push((number, offset));
            for s in &group.slots {
                buf.extend_from_slice(&number.to_le_bytes());
                buf.extend_from_slice(&s.file.to_le_bytes());
                buf.extend_from_slice(&s.seq.to_le_bytes());
                buf.extend_from_slice(&s.time.to_le_bytes());
                buf.extend_from_slice(&s.len.to_le_bytes());
                buf.extend_from_slice(s.line(&self.region));
                offset += (RECORD_HEAD + s.len as usize) as u64;
                if buf.len() >= WRITE_BUFFER {
                    out.write_all(&buf)?;
                    buf.clear();
                }
            }
        }
        out.write_all(&buf)?;
        self.runs.push(Run { path, groups });
        // The groups keep their slot lists' memory, still counted.
        for group in &mut self.groups {
            group.slots.clear();
            (group.fill, group.end, group.chunks) = (0, 0, 0);
        }
        self.slot_bytes = self
            .groups
            .iter()
            .map(|g| g.slots.capacity())
            .sum::<usize>()
            * std::mem::size_of::<Slot>();
        self.next = 0;
        Ok(())
    }
}

/// Every worker's store, sorted, to be written group by group; see
/// [`Sorted::for_each`].
#[derive(Debug)]
pub struct Sorted {
    stores: Vec<Store>,
    /// Every group that holds lines, in order.
    pub groups: Vec<u32>,
    read_buffer: usize,
}

impl Sorted {
    /// Takes the stores, each already sorted ([`Store::sort`]); `budget`
    /// is the whole memory budget, an eighth of which is for reading runs.
    pub fn new(stores: Vec<Store>, budget: usize) -> Sorted {
        let mut groups: Vec<u32> = Vec::new();
        let mut runs = 0;
        for store in &stores {
            groups.extend(
                (0..store.groups.len())
                    .filter(|&g| !store.groups[g].slots.is_empty())
                    .filter_map(|g| u32::try_from(g).ok()),
            );
            for run in &store.runs {
                groups.extend(run.groups.iter().map(|(g, _)| *g));
            }
            runs += store.runs.len();
        }
        groups.sort_unstable();
        groups.dedup();
        let readers = runs * std::thread::available_parallelism().map_or(1, |n| n.get());
        let read_buffer = (budget / 8 / readers.max(1)).clamp(4096, RUN_READ_BUFFER);
        Sorted {
            stores,
            groups,
            read_buffer,
        }
    }

    /// How many runs were spilled in all.
    pub fn runs(&self) -> usize {
        self.stores.iter().map(Store::runs).sum()
    }

    /// Hands every line of `group` to `sink` with its input file, in
    /// [`Order`]: a merge of the group's slots in each store and of its
    /// part of each run.
    pub fn for_each<F, E>(&self, group: u32, mut sink: F) -> Result<(), E>
    where
        F: FnMut(u32, &[u8]) -> Result<(), E>,
        E: From<io::Error>,
    {
        let mut memory: Vec<(&[Slot], &[u8])> = Vec::new();
        let mut readers = Vec::new();
        for store in &self.stores {
            if let Some(g) = store
                .groups
                .get(group as usize)
                .filter(|g| !g.slots.is_empty())
            {
                memory.push((&g.slots, &store.region));
            }
            for run in &store.runs {
                if let Some((_, offset)) = run.groups.iter().find(|(g, _)| *g == group) {
                    readers.push(RunReader::open_at(
                        &run.path,
                        *offset,
                        group,
                        self.read_buffer,
                    )?);
                }
            }
        }
        if let ([(slots, region)], []) = (memory.as_slice(), readers.as_slice()) {
            // One source: nothing to merge.
            for s in *slots {
                sink(s.file, s.line(region))?;
            }
            return Ok(());
        }
        // Sources: the runs, then the stores; orders are unique, so the
        // order of sources never decides anything.
        let mut next = vec![0usize; memory.len()];
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if r.advance()? {
                heap.push(Reverse((r.order, i)));
            }
        }
        for (m, (slots, _)) in memory.iter().enumerate() {
            if let Some(s) = slots.first() {
                heap.push(Reverse((s.order(), readers.len() + m)));
            }
        }
        while let Some(Reverse((_, source))) = heap.pop() {
            if let Some(m) = source.checked_sub(readers.len()) {
                let (slots, region) = memory[m];
                let s = &slots[next[m]];
                sink(s.file, s.line(region))?;
                next[m] += 1;
                if let Some(n) = slots.get(next[m]) {
                    heap.push(Reverse((n.order(), source)));
                }
            } else {
                let r = &mut readers[source];
                sink(r.order.1, &r.line)?;
                if r.advance()? {
                    heap.push(Reverse((r.order, source)));
                }
            }
        }
        Ok(())
    }

    /// Removes the run files.
    pub fn remove_runs(self) -> io::Result<()> {
        for store in &self.stores {
            for run in &store.runs {
                fs::remove_file(&run.path)?;
            }
        }
        Ok(())
    }
}

/// Reads one group's part of a run file back, a record at a time.
struct RunReader {
    input: BufReader<File>,
    group: u32,
    order: Order,
    line: Vec<u8>,
}

impl RunReader {
    fn open_at(path: &Path, offset: u64, group: u32, buffer: usize) -> io::Result<RunReader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(RunReader {
            input: BufReader::with_capacity(buffer, file),
            group,
            order: (0, 0, 0),
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
        self.order = (i64::from_le_bytes(t), word(4), word(8));
        self.line.resize(word(20) as usize, 0);
        self.input.read_exact(&mut self.line)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores lines `(group, time, text)` as two workers would, each
    /// taking every other "file", with `limit` bytes each; returns every
    /// group's lines as handed out, with their file, and the number of
    /// runs. No run file is left behind.
    fn sorted(limit: usize, input: &[(u32, i64, &str)]) -> (Vec<(u32, u32, String)>, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut stores: Vec<Store> = (0..2)
            .map(|w| Store::new(dir.path(), format!("w{w}"), limit).expect("map"))
            .collect();
        for (i, (g, t, text)) in input.iter().enumerate() {
            let file = u32::try_from(i % 2).expect("small");
            let seq = u32::try_from(i / 2).expect("small");
            let index = format!("{i} ");
            let pieces = [index.as_bytes(), text.as_bytes(), b"\n"];
            stores[i % 2]
                .push(*g, (*t, file, seq), &pieces)
                .expect("push");
        }
        for store in &mut stores {
            store.sort();
        }
        let sorted = Sorted::new(stores, limit * 2);
        let runs = sorted.runs();
        let mut out = Vec::new();
        for &g in &sorted.groups {
            sorted
                .for_each(g, |file, line| -> io::Result<()> {
                    out.push((g, file, String::from_utf8_lossy(line).into_owned()));
                    Ok(())
                })
                .expect("read back");
        }
        sorted.remove_runs().expect("remove runs");
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            0,
            "runs removed"
        );
        (out, runs)
    }

    #[test]
    fn sorts_by_group_then_time_and_keeps_input_order_on_ties() {
        // A limit of one chunk forces a spill every few hundred lines; a
        // large one none.
        let mut input = Vec::new();
        let words = ["a", "b", "c", "d", "e", "f", "g"];
        let long = "x".repeat(1000);
        for i in 0..50_000i64 {
            let group = u32::try_from(i % 3).expect("small");
            let word = if i % 11 == 0 {
                long.as_str()
            } else {
                words[(i % 7) as usize]
            };
            input.push((group, (i * 7919) % 50, word));
        }
        let (big, big_runs) = sorted(64 << 20, &input);
        assert_eq!(big_runs, 0);
        let (small, small_runs) = sorted(1, &input);
        assert!(small_runs > 3, "{small_runs} runs");
        assert_eq!(big, small);
        assert_eq!(big.len(), input.len());
        // Each line is "<index> <word>": its index gives its input order
        // (file = index % 2, line = index / 2), its time and its word.
        let seen: Vec<(u32, i64, (u32, usize))> = big
            .iter()
            .map(|(g, file, text)| {
                let (i, word) = text.split_once(' ').expect("space");
                let i: usize = i.parse().expect("index");
                assert_eq!(format!("{}\n", input[i].2), word);
                assert_eq!(*g, input[i].0);
                assert_eq!(*file as usize, i % 2);
                (*g, input[i].1, (*file, i / 2))
            })
            .collect();
        for pair in seen.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!((a.0, a.1) <= (b.0, b.1), "order");
            if (a.0, a.1) == (b.0, b.1) {
                assert!(a.2 < b.2, "ties keep input order");
            }
        }
    }

    #[test]
    fn groups_only_in_some_runs_are_read_back_whole() {
        // Group 7 appears only in the first runs, group 9 only in memory.
        let line = "y".repeat(500);
        let mut input: Vec<(u32, i64, &str)> = (0..1500).map(|i| (7, i, line.as_str())).collect();
        input.extend((0..1500).map(|i| (8, i, line.as_str())));
        input.extend((0..10).map(|i| (9, i, "z")));
        let (out, runs) = sorted(1, &input);
        assert!(runs >= 2);
        assert_eq!(out.iter().filter(|(g, _, _)| *g == 7).count(), 1500);
        assert_eq!(out.iter().filter(|(g, _, _)| *g == 8).count(), 1500);
        assert_eq!(out.iter().filter(|(g, _, _)| *g == 9).count(), 10);
    }
}
