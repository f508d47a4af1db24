//! `pysk-logs split`: raw logs in, one time-sorted combined log per
//! virtual host out.
//!
//! Every line of every input is parsed ([`crate::format`]), converted to
//! combined format in UTC and kept under its virtual host in the parsing
//! worker's own [`Store`], the external sort; lines that fit no format go,
//! with their reason, source
//! file and line number, to a rejected file of their input. The outputs,
//! the rejected files and the removal of the inbox files are then committed
//! as one batch ([`crate::spool`]), so a run killed at any point loses and
//! duplicates nothing. Inbox files are taken and, once read, checked by
//! the protocol of [`crate::inbox`], so a file still being written is
//! never read and then removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::error::LogsError;
use crate::format::{self, Reject};
use crate::inbox::{self, Left, State, Taken};
use crate::lines::{self, Event, MAX_LINE};
use crate::sorter::{Sorted, Store};
use crate::spool::{Manifest, Move, Spool};
use crate::{input, time};
use pysk_common::error::{read_err, write_err};

/// What `split` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The spool root.
    pub spool: PathBuf,
    /// When given, the only virtual hosts accepted.
    pub vhosts: Option<BTreeSet<String>>,
    /// The virtual host for lines of formats without one.
    pub vhost: Option<String>,
    /// Memory for sorting, in bytes.
    pub memory: usize,
    /// Explicit inputs; empty means every file in `inbox/`.
    pub files: Vec<PathBuf>,
    /// How long an inbox file's last write must be past before it is
    /// taken ([`crate::inbox`]).
    pub inbox_settle: Duration,
}

/// What a split run did, as printed by `--json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Input files read.
    pub files: usize,
    /// Lines read.
    pub lines: u64,
    /// Lines written to virtual host logs.
    pub accepted: u64,
    /// Accepted lines per virtual host.
    pub vhosts: BTreeMap<String, u64>,
    /// Rejected lines per reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Input files that could not be read (moved whole to `rejected/` when
    /// they came from the inbox).
    pub unreadable: Vec<String>,
    /// The files written, relative to the spool.
    pub outputs: Vec<String>,
    /// Batches of an earlier, interrupted run that were finished first.
    pub recovered: usize,
    /// Inbox entries that are not files (directories, FIFOs, sockets,
    /// links): left in place, and the run exits 1.
    pub odd: Vec<Left>,
    /// Inbox files still being written, or written to while they were
    /// read: left for the next run, none of their lines committed.
    pub waiting: Vec<Left>,
    /// Inbox files that could not be renamed once read, or whose removal
    /// cannot be recorded: left in place, none of their lines committed,
    /// and the run exits 1.
    pub stuck: Vec<Left>,
}

/// The virtual hosts seen so far; a host's group number is its index.
struct Vhosts<'a> {
    allowed: Option<&'a BTreeSet<String>>,
    names: Vec<String>,
}

impl Vhosts<'_> {
    /// The group of the virtual host written as `raw`, or why its lines are
    /// rejected.
    fn group(&mut self, raw: &[u8]) -> Result<u32, Reject> {
        match format::normalize_vhost(raw) {
            None => Err(Reject::BadVhost),
            Some(name) if self.allowed.is_some_and(|a| !a.contains(&name)) => {
                Err(Reject::UnknownVhost)
            }
            Some(name) => Ok(match self.names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    self.names.push(name);
                    self.names.len() - 1
                }
            }
            .try_into()
            .unwrap_or(u32::MAX)),
        }
    }
}

/// What every worker shares.
struct Shared<'a> {
    options: &'a Options,
    tmp: &'a Path,
    vhosts: Mutex<Vhosts<'a>>,
}

/// How reading one input ended.
enum FileResult {
    /// Read to the end.
    Read {
        /// Lines read.
        lines: u64,
        /// Rejected lines per reason.
        rejected: BTreeMap<&'static str, u64>,
        /// Where its rejected lines are, if it had any.
        reject_file: Option<PathBuf>,
    },
    /// Reading failed; its lines are left out of the outputs.
    Unreadable(io::Error),
}

/// One parsing thread's state: every accepted line goes, converted, into
/// its own [`Store`].
struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    vhost_cache: HashMap<Vec<u8>, Result<u32, Reject>>,
    stamp: time::UtcCache,
    clock: time::DayCache,
    store: Store,
}

impl<'s, 'a> Worker<'s, 'a> {
    /// Worker number `index`, keeping its lines within `limit` bytes.
    fn new(shared: &'s Shared<'a>, index: usize, limit: usize) -> Result<Self, LogsError> {
        let name = format!("{}-{index}", std::process::id());
        Ok(Worker {
            shared,
            vhost_cache: HashMap::new(),
            stamp: time::UtcCache::default(),
            clock: time::DayCache::default(),
            store: Store::new(shared.tmp, name, limit).map_err(write_err(shared.tmp))?,
        })
    }

    /// The group of the virtual host written as `raw`, or why its lines
    /// are rejected; a poisoned lock (another worker died holding it) is
    /// an internal fault that ends the run, never a verdict on the line.
    fn group(&mut self, raw: &[u8]) -> Result<Result<u32, Reject>, Step> {
        if let Some(known) = self.vhost_cache.get(raw) {
            return Ok(*known);
        }
        let default_vhost = self.shared.options.vhost.as_deref().map(str::as_bytes);
        let mut vhosts = self
            .shared
            .vhosts
            .lock()
            .map_err(|_| Step::Internal("the virtual host list's lock is poisoned"))?;
        // `%v:%p` names the virtual host without its port; an empty `%v`
        // (the default server) names none.
        let result = match format::vhost_name(raw).or(default_vhost) {
            Some(name) => vhosts.group(name),
            None => Err(Reject::NoVhost),
        };
        drop(vhosts);
        self.vhost_cache.insert(raw.to_vec(), result);
        Ok(result)
    }

    /// Parses one line; accepted lines go to the store, others to
    /// `rejects`.
    fn line(
        &mut self,
        file: u32,
        line_no: u64,
        line: &[u8],
        rejects: &mut Rejects,
        rejected: &mut BTreeMap<&'static str, u64>,
    ) -> Result<(), Step> {
        let default_vhost = self.shared.options.vhost.as_deref().map(str::as_bytes);
        let mut scratch = Vec::new();
        let parsed = match format::parse(line, &mut self.clock, &mut scratch) {
            Ok(entry) => match entry.vhost.or(default_vhost) {
                Some(raw) => self.group(raw)?.map(|group| (entry, group)),
                None => Err(Reject::NoVhost),
            },
            Err(reason) => Err(reason),
        };
        match parsed {
            Ok((entry, group)) => {
                let seq = u32::try_from(line_no).unwrap_or(u32::MAX);
                let stamp = self.stamp.format(entry.time);
                self.store.push(
                    group,
                    (entry.time, file, seq),
                    &format::combined(&entry, stamp),
                )
            }
            Err(reason) => {
                *rejected.entry(reason.as_str()).or_default() += 1;
                rejects.line(reason, line_no, line)
            }
        }
        .map_err(Step::Write)
    }

    /// The name rejected lines give as their source: an inbox file's name
    /// as it arrived ([`inbox::delivered_as`]), an explicit input's path.
    fn source(&self, path: &Path) -> PathBuf {
        match self.shared.options.files.is_empty() {
            true => inbox::delivered_as(path),
            false => path.to_owned(),
        }
    }

    /// Reads input `fi` to the end. An input that cannot be read is a
    /// [`FileResult::Unreadable`]; failing to write what came of it is an
    /// error that ends the run.
    fn read_file(&mut self, fi: usize, path: &Path) -> Result<FileResult, LogsError> {
        let file = u32::try_from(fi).unwrap_or(u32::MAX);
        let tmp = self.shared.tmp;
        let mut rejects = Rejects {
            path: tmp.join(format!("rejected-{}-{fi}.log", std::process::id())),
            out: None,
            source: self.source(path).display().to_string(),
        };
        let mut line_no = 0u64;
        let mut rejected = BTreeMap::new();
        let result = input::open(path).map_err(Step::Read).and_then(|reader| {
            lines::for_each(reader, MAX_LINE, |event| -> Result<(), Step> {
                match event {
                    Event::Line(line) => {
                        line_no += 1;
                        self.line(file, line_no, line, &mut rejects, &mut rejected)
                    }
                    Event::LongStart(part) => {
                        line_no += 1;
                        *rejected.entry(Reject::TooLong.as_str()).or_default() += 1;
                        rejects
                            .start(Reject::TooLong, line_no)
                            .and_then(|()| rejects.writer()?.write_all(part))
                            .map_err(Step::Write)
                    }
                    Event::LongMore(part) => rejects
                        .writer()
                        .and_then(|w| w.write_all(part))
                        .map_err(Step::Write),
                    Event::LongEnd => rejects
                        .writer()
                        .and_then(|w| w.write_all(b"\n"))
                        .map_err(Step::Write),
                }
            })
        });
        // What was parsed stays in the store either way: the lines of an
        // input that failed half-way are dropped when the outputs are
        // written, by their file number.
        match result {
            Ok(()) => Ok(FileResult::Read {
                lines: line_no,
                rejected,
                reject_file: rejects.finish().map_err(write_err(tmp))?,
            }),
            Err(Step::Write(e)) => Err(write_err(tmp)(e).into()),
            Err(Step::Internal(what)) => Err(internal(what)),
            Err(Step::Read(e)) => {
                drop(rejects.out.take());
                let _ = std::fs::remove_file(&rejects.path);
                Ok(FileResult::Unreadable(e))
            }
        }
    }
}

/// An internal fault of the run (a poisoned lock): reported as such, exit
/// 70. A worker that panics is not caught here: rayon raises its panic
/// again in the thread that started the work, and release builds abort on
/// a panic, so the run ends before its commit point and the next run
/// starts from the same inbox.
fn internal(what: &str) -> LogsError {
    pysk_common::Error::Internal(format!("split: {what}")).into()
}

/// The rejected lines of one input file, written to `tmp/` as they come.
struct Rejects {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    source: String,
}

impl Rejects {
    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            self.out = Some(BufWriter::new(File::create(&self.path)?));
        }
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("rejects writer"))
    }

    /// Starts a rejected line: `reason<TAB>source:line<TAB>`.
    fn start(&mut self, reason: Reject, line_no: u64) -> io::Result<()> {
        let head = format!("{}\t{}:{line_no}\t", reason.as_str(), self.source);
        self.writer()?.write_all(head.as_bytes())
    }

    /// Writes one whole rejected line.
    fn line(&mut self, reason: Reject, line_no: u64, line: &[u8]) -> io::Result<()> {
        self.start(reason, line_no)?;
        let w = self.writer()?;
        w.write_all(line)?;
        w.write_all(b"\n")
    }

    /// Flushes and syncs; returns whether anything was written.
    fn finish(self) -> io::Result<Option<PathBuf>> {
        match self.out {
            None => Ok(None),
            Some(w) => {
                let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.sync_all()?;
                Ok(Some(self.path))
            }
        }
    }
}

/// Runs `split` and returns its summary; `Outcome::Partial` when an input
/// could not be read. The caller holds the spool's lock
/// ([`crate::spool::Spool::lock`]).
///
/// The phases, each a function below: [`start`] (finish an interrupted
/// batch, list the inputs), [`parse`] (every input into the workers'
/// stores, on every core), [`tally`] (what each input gave), [`write`]
/// (each virtual host's lines, sorted, into `tmp/`, on every core),
/// [`plan_batch`] (the manifest: outputs into place, inputs gone), and the
/// commit.
pub fn run(options: &Options, report: &Reporter) -> Result<(Summary, Outcome), LogsError> {
    let spool = Spool::new(&options.spool);
    let (mut summary, (inputs, taken)) = start(&spool, options, report)?;
    if inputs.is_empty() {
        let outcome = outcome(&summary);
        return Ok((summary, outcome));
    }
    let tmp = spool.tmp();
    let started = Instant::now();
    let Parsed {
        by_file,
        stores,
        names,
    } = parse(options, &tmp, &inputs)?;
    let unread: Vec<bool> = by_file
        .iter()
        .map(|r| matches!(r, Some(FileResult::Unreadable(_))))
        .collect();
    let frozen = taken
        .as_deref()
        .map(|taken| recordable(&spool, inbox::freeze(taken, &unread)));
    let tallied = tally(inputs, frozen, by_file, &mut summary, report)?;
    let sorted = Sorted::new(stores, options.memory);
    report.debug(format!(
        "read {} line(s) in {:.2} s, {} run(s) spilled",
        summary.lines,
        started.elapsed().as_secs_f64(),
        sorted.runs()
    ));
    let started = Instant::now();
    let outputs = write(&sorted, &spool, &names, &tallied.skipped())?;
    sorted.remove_runs().map_err(write_err(&tmp))?;
    report.debug(format!(
        "sorted and wrote the outputs in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    let manifest = plan_batch(&spool, &outputs, &names, &tallied, &mut summary, report)?;
    crate::failpoint::reached("before-commit");
    spool.commit(&manifest)?;
    warn_no_vhost(&summary, report);
    let outcome = outcome(&summary);
    Ok((summary, outcome))
}

/// Lines without a virtual host are a sender's logs in combined or common
/// format split without `--vhost`: every such line of that server ends in
/// `rejected/` night after night, so it is said even with `-q`.
fn warn_no_vhost(summary: &Summary, report: &Reporter) {
    if let Some(n) = summary.rejected.get(Reject::NoVhost.as_str()) {
        report.warn(format!(
            "{n} line(s) name no virtual host (combined or common format) and went to \
             rejected/: split such a server's logs with --vhost NAME"
        ));
    }
}

/// Each file [`inbox::freeze`] would let go whose removal cannot be
/// written into the manifest (a path that is not UTF-8) marked stuck, so
/// that its lines are never committed: the next run would commit them
/// again.
fn recordable(spool: &Spool, frozen: Vec<inbox::Frozen>) -> Vec<inbox::Frozen> {
    frozen
        .into_iter()
        .map(|f| match f.state {
            State::Unchanged if spool.relative(&f.path).is_none() => inbox::Frozen {
                state: State::Stuck("name is not UTF-8, so its removal cannot be recorded".into()),
                ..f
            },
            _ => f,
        })
        .collect()
}

/// Exit 1 when an input could not be read, an inbox file could not be let
/// go, or the inbox holds odd entries.
fn outcome(summary: &Summary) -> Outcome {
    if summary.unreadable.is_empty() && summary.odd.is_empty() && summary.stuck.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    }
}

/// The inputs [`start`] lists, and for an inbox run the files taken.
type Inputs = (Vec<PathBuf>, Option<Vec<Taken>>);

/// Makes the spool, finishes any batch an interrupted run committed, and
/// lists the inputs: the explicit files, else the inbox files
/// [`inbox::take`] takes (also returned, to be checked once read).
fn start(
    spool: &Spool,
    options: &Options,
    report: &Reporter,
) -> Result<(Summary, Inputs), LogsError> {
    spool.prepare()?;
    let summary = Summary {
        recovered: spool.recover()?,
        ..Summary::default()
    };
    if summary.recovered > 0 {
        report.warn(format!(
            "{}: finished {} batch(es) of an interrupted run",
            spool.root().display(),
            summary.recovered
        ));
    }
    if !options.files.is_empty() {
        let inputs = options.files.clone();
        let summary = Summary {
            files: inputs.len(),
            ..summary
        };
        return Ok((summary, (inputs, None)));
    }
    let listing = take_inbox(spool, options, report)?;
    let inputs: Vec<PathBuf> = listing.taken.iter().map(|t| t.path.clone()).collect();
    let summary = Summary {
        files: inputs.len(),
        odd: listing.odd,
        waiting: listing.waiting,
        ..summary
    };
    Ok((summary, (inputs, Some(listing.taken))))
}

/// The inbox files [`inbox::take`] takes; what it leaves is reported: odd
/// entries as trouble, files still being written as news (but one open
/// for writing and unchanged for long as trouble).
fn take_inbox(
    spool: &Spool,
    options: &Options,
    report: &Reporter,
) -> Result<inbox::Listing, LogsError> {
    let listing = inbox::take(&spool.inbox(), options.inbox_settle)?;
    for odd in &listing.odd {
        report.warn(format!("{}: {}; left in the inbox", odd.path, odd.why));
    }
    for w in &listing.waiting {
        let text = format!("{}: {}; left for the next run", w.path, w.why);
        match w.stale {
            true => report.warn(text),
            false => report.info(text),
        }
    }
    if listing.hidden > 0 {
        report.debug(format!(
            "{} process(es) could not be examined for inbox files open for writing \
             (no permission); the quiet period alone guards against them",
            listing.hidden
        ));
    }
    Ok(listing)
}

/// Parses every input on every core: each of rayon's threads is one worker
/// (`rayon::broadcast`) that takes whole files, one at a time, and keeps
/// its lines in its own [`Store`], a share of 7/8 of `--memory` (the last
/// eighth is for writing the outputs and reading spilled runs back). One
/// worker a thread, rather than a task a file, because a store is a large
/// mapped region, made once per worker.
fn parse(options: &Options, tmp: &Path, inputs: &[PathBuf]) -> Result<Parsed, LogsError> {
    let shared = Shared {
        options,
        tmp,
        vhosts: Mutex::new(Vhosts {
            allowed: options.vhosts.as_ref(),
            names: Vec::new(),
        }),
    };
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().min(inputs.len());
    let share = options.memory / 8 * 7 / workers;
    let results = rayon::broadcast(|ctx| -> Result<Option<WorkerResult>, LogsError> {
        if ctx.index() >= workers {
            return Ok(None);
        }
        let mut worker = Worker::new(&shared, ctx.index(), share)?;
        let mut done = Vec::new();
        loop {
            let fi = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = inputs.get(fi) else { break };
            done.push((fi, worker.read_file(fi, path)?));
        }
        worker.store.sort();
        Ok(Some((done, worker.store)))
    });
    let mut by_file: Vec<Option<FileResult>> = (0..inputs.len()).map(|_| None).collect();
    let mut stores = Vec::new();
    for (done, store) in results
        .into_iter()
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, _>>()?
    {
        for (fi, r) in done {
            by_file[fi] = Some(r);
        }
        stores.push(store);
    }
    let vhosts = shared
        .vhosts
        .into_inner()
        .map_err(|_| internal("the virtual host list's lock is poisoned"))?;
    Ok(Parsed {
        by_file,
        stores,
        names: vhosts.names,
    })
}

/// What [`parse`] gives.
struct Parsed {
    /// Each input's result, by input number (`None`: read by no worker).
    by_file: Vec<Option<FileResult>>,
    /// The workers' stores, their groups sorted.
    stores: Vec<Store>,
    /// The virtual hosts' names, by group.
    names: Vec<String>,
}

/// What one worker did: each input it read, by input number, and its store.
type WorkerResult = (Vec<(usize, FileResult)>, Store);

/// What the inputs gave, once they are all read.
struct Tallied {
    /// The inputs.
    inputs: Vec<PathBuf>,
    /// They came from the inbox (and go once committed).
    from_inbox: bool,
    /// By input: it could not be read, so its lines are left out and it is
    /// set aside whole.
    failed: Vec<bool>,
    /// By input: it was written to while it was read, or could not be
    /// let go ([`State::Stuck`]), so its lines are left out and it stays
    /// in the inbox for the next run.
    left: Vec<bool>,
    /// The rejected-lines files in `tmp/`.
    reject_files: Vec<PathBuf>,
}

impl Tallied {
    /// By input: its lines are left out of the outputs.
    fn skipped(&self) -> Vec<bool> {
        self.failed
            .iter()
            .zip(&self.left)
            .map(|(f, c)| *f || *c)
            .collect()
    }
}

/// Adds each input's lines and rejects to the summary, and reports the
/// inputs that could not be read. `frozen` (inbox runs) is each input
/// after [`inbox::freeze`]: one written to while it was read, or stuck, is
/// reported, counts for nothing and stays.
fn tally(
    inputs: Vec<PathBuf>,
    frozen: Option<Vec<inbox::Frozen>>,
    by_file: Vec<Option<FileResult>>,
    summary: &mut Summary,
    report: &Reporter,
) -> Result<Tallied, LogsError> {
    let mut tallied = Tallied {
        failed: vec![false; inputs.len()],
        left: vec![false; inputs.len()],
        reject_files: Vec::new(),
        from_inbox: frozen.is_some(),
        inputs,
    };
    let mut states = Vec::new();
    for (fi, now) in frozen.into_iter().flatten().enumerate() {
        tallied.inputs[fi] = now.path;
        tallied.left[fi] = now.state != State::Unchanged;
        states.push(now.state);
    }
    for (fi, (path, result)) in tallied.inputs.iter().zip(by_file).enumerate() {
        if let Some(state) = states.get(fi).filter(|_| tallied.left[fi]) {
            left_in_inbox(path, state, result, summary, report);
            continue;
        }
        match result {
            Some(FileResult::Read {
                lines,
                rejected,
                reject_file,
            }) => {
                summary.lines += lines;
                for (reason, n) in rejected {
                    *summary.rejected.entry(reason).or_default() += n;
                }
                tallied.reject_files.extend(reject_file);
            }
            Some(FileResult::Unreadable(e)) => {
                report.warn(read_err(path)(e));
                tallied.failed[fi] = true;
                summary.unreadable.push(path.display().to_string());
            }
            None => return Err(internal("an input was read by no worker")),
        }
    }
    Ok(tallied)
}

/// Reports an inbox file written to while it was read, or stuck, and
/// drops what this run made of it: its rejected lines (its accepted ones
/// are left out when the outputs are written).
fn left_in_inbox(
    path: &Path,
    state: &State,
    result: Option<FileResult>,
    summary: &mut Summary,
    report: &Reporter,
) {
    if let Some(FileResult::Read {
        reject_file: Some(file),
        ..
    }) = result
    {
        let _ = fs::remove_file(file);
    }
    let (why, list, until) = match state {
        State::Stuck(why) => (why.as_str(), &mut summary.stuck, "in the inbox"),
        _ => (
            "written to while it was read",
            &mut summary.waiting,
            "for the next run",
        ),
    };
    report.warn(format!(
        "{}: {why}; left {until}, none of its lines taken",
        path.display()
    ));
    list.push(Left {
        path: path.display().to_string(),
        why: why.to_owned(),
        stale: false,
    });
}

/// Writes each virtual host's lines, sorted, into `tmp/`, on every core
/// (rayon, a virtual host a task), leaving out the lines of the inputs
/// `skip`ped (failed half-way, or written to while read), and makes every
/// output durable. A host left with no line has no output and no entry.
/// Each host's directory in `pending/` is made by its task, while the
/// other threads work, rather than one after the other in the commit; an
/// empty one left by a crash does no harm. The outputs come back in group
/// order.
fn write(
    sorted: &Sorted,
    spool: &Spool,
    names: &[String],
    skip: &[bool],
) -> Result<Vec<Output>, LogsError> {
    let tmp = spool.tmp();
    let pending = spool.root().join("pending");
    let skip = |file: u32| skip.get(file as usize).copied().unwrap_or(false);
    let mut outputs: Vec<Output> = sorted
        .groups
        .par_iter()
        .map(|&group| -> Result<Option<Output>, LogsError> {
            let mut out = Output::create(&tmp, group).map_err(write_err(&tmp))?;
            sorted
                .for_each(group, |file, line| -> io::Result<()> {
                    if skip(file) { Ok(()) } else { out.write(line) }
                })
                .map_err(write_err(&out.path))?;
            let path = out.path.clone();
            if out.lines == 0 {
                drop(out);
                fs::remove_file(&path).map_err(write_err(&path))?;
                return Ok(None);
            }
            if let Some(name) = names.get(group as usize) {
                let dir = pending.join(name);
                fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            }
            Ok(Some(out.finish().map_err(write_err(&path))?))
        })
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    outputs.sort_by_key(|o| o.group);
    for o in &outputs {
        o.file.sync_all().map_err(write_err(&o.path))?;
    }
    Ok(outputs)
}

/// The batch to commit: every output to a fresh name in
/// `pending/<vhost>/`, every rejected-lines file to `rejected/`, and, for
/// inbox runs, every input removed (or, when it could not be read, moved
/// whole to `rejected/`). Fills in the summary's per-host counts and
/// outputs.
fn plan_batch(
    spool: &Spool,
    outputs: &[Output],
    names: &[String],
    tallied: &Tallied,
    summary: &mut Summary,
    report: &Reporter,
) -> Result<Manifest, LogsError> {
    let now = pysk_common::date::unix_now();
    let mut manifest = Manifest {
        version: 1,
        ..Manifest::default()
    };
    let rel = |p: &Path| {
        spool
            .relative(p)
            .ok_or_else(|| write_err(p)(io::Error::other("not a UTF-8 path inside the spool")))
    };
    for Output {
        group, path, lines, ..
    } in outputs
    {
        let name = names
            .get(*group as usize)
            .ok_or_else(|| internal("an output of no virtual host"))?;
        let to = spool.fresh_name(&format!("pending/{name}"), now, ".log", &manifest.moves);
        summary.accepted += lines;
        summary.vhosts.insert(name.clone(), *lines);
        summary.outputs.push(to.clone());
        manifest.moves.push(Move {
            from: rel(path)?,
            to,
        });
    }
    for path in &tallied.reject_files {
        let to = spool.fresh_name("rejected", now, ".log", &manifest.moves);
        summary.outputs.push(to.clone());
        manifest.moves.push(Move {
            from: rel(path)?,
            to,
        });
    }
    if tallied.from_inbox {
        inbox_fates(spool, tallied, now, &mut manifest, report);
    }
    Ok(manifest)
}

/// Adds to `manifest` what becomes of each inbox file: removed once its
/// lines are committed, or moved whole to `rejected/` when it could not be
/// read; one written to while it was read, or stuck, stays. A file that
/// could not be read and whose name is not UTF-8 cannot be written into
/// the manifest, so it stays in the inbox, reported (none of its lines is
/// committed; [`recordable`] keeps every other such file out).
fn inbox_fates(
    spool: &Spool,
    tallied: &Tallied,
    now: u64,
    manifest: &mut Manifest,
    report: &Reporter,
) {
    for (fi, (path, failed)) in tallied.inputs.iter().zip(&tallied.failed).enumerate() {
        if tallied.left[fi] {
            continue;
        }
        let Some(from) = spool.relative(path) else {
            report.warn(format!(
                "{}: name is not UTF-8; left in the inbox",
                path.display()
            ));
            continue;
        };
        if *failed {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let to = spool.fresh_name("rejected", now, &format!("-{name}"), &manifest.moves);
            report.warn(format!(
                "{}: set aside whole as {}",
                path.display(),
                spool.root().join(&to).display()
            ));
            manifest.moves.push(Move { from, to });
        } else {
            manifest.remove.push(from);
        }
    }
}

/// How reading one input failed: reading it (which sets the input aside),
/// writing what came of it, or an internal fault (which end the run).
enum Step {
    Read(io::Error),
    Write(io::Error),
    Internal(&'static str),
}

impl From<io::Error> for Step {
    /// Errors the line reader returns come from reading the input.
    fn from(e: io::Error) -> Step {
        Step::Read(e)
    }
}

/// Bytes gathered before they are written to an output.
const OUTPUT_BUFFER: usize = 1 << 20;
/// Bytes written to an output between requests that the kernel start
/// writing them to disk.
const WRITEBACK: u64 = 8 << 20;

/// One virtual host's output in `tmp/`, being written.
struct Output {
    group: u32,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    written: u64,
    lines: u64,
}

impl Output {
    fn create(tmp: &Path, group: u32) -> io::Result<Output> {
        let path = tmp.join(format!("out-{}-{group}.log", std::process::id()));
        let file = File::create(&path)?;
        Ok(Output {
            group,
            path,
            file,
            buf: Vec::with_capacity(OUTPUT_BUFFER + MAX_LINE + 64),
            written: 0,
            lines: 0,
        })
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        self.lines += 1;
        self.buf.extend_from_slice(line);
        if self.buf.len() >= OUTPUT_BUFFER {
            self.drain()?;
        }
        Ok(())
    }

    /// Writes the buffer out, and every [`WRITEBACK`] bytes asks the kernel
    /// to start writing them to disk.
    fn drain(&mut self) -> io::Result<()> {
        self.file.write_all(&self.buf)?;
        let before = self.written;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if before / WRITEBACK != self.written / WRITEBACK {
            self.writeback();
        }
        Ok(())
    }

    /// Asks the kernel to start writing the file to disk now, so that the
    /// `fsync` that makes the output durable, once every output is written,
    /// finds little left to wait for.
    fn writeback(&self) {
        // SAFETY: sync_file_range(2) on a file descriptor we own; it only
        // schedules I/O. Failure is harmless: fsync follows anyway.
        unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(&self.file),
                0,
                0,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }

    fn finish(mut self) -> io::Result<Output> {
        self.drain()?;
        self.writeback();
        Ok(self)
    }
}

/// The lines of the summary printed on stderr.
pub fn describe(summary: &Summary) -> Vec<String> {
    let rejected: u64 = summary.rejected.values().sum();
    let mut out = vec![format!(
        "split {} file(s), {} line(s): {} accepted, {} rejected",
        summary.files, summary.lines, summary.accepted, rejected
    )];
    for (vhost, n) in &summary.vhosts {
        out.push(format!("{vhost}: {n} line(s)"));
    }
    if rejected > 0 {
        let reasons: Vec<String> = summary
            .rejected
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        out.push(format!("rejected: {}", reasons.join(", ")));
    }
    out
}
