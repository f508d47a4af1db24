//! `pysk-logs split`: raw logs in, one time-sorted combined log per
//! virtual host out.
//!
//! Every line of every input is parsed ([`crate::format`]), converted to
//! combined format in UTC and handed to the external [`Sorter`] under its
//! virtual host; lines that fit no format go, with their reason, source
//! file and line number, to a rejected file of their input. The outputs,
//! the rejected files and the removal of the inbox files are then committed
//! as one batch ([`crate::spool`]), so a run killed at any point loses and
//! duplicates nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::error::{LogsError, input_err, output_err};
use crate::format::{self, Reject};
use crate::lines::{self, Event};
use crate::sorter::Sorter;
use crate::spool::{Manifest, Move, Spool};
use crate::{input, time};

/// The longest line accepted; Apache's own request line limit is 8 KiB.
pub const MAX_LINE: usize = 64 * 1024;

/// What `split` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The spool root.
    pub spool: PathBuf,
    /// When given, the only virtual hosts accepted.
    pub vhosts: Option<HashSet<String>>,
    /// The virtual host for lines of formats without one.
    pub vhost: Option<String>,
    /// Memory for sorting, in bytes.
    pub memory: usize,
    /// Explicit inputs; empty means every file in `inbox/`.
    pub files: Vec<PathBuf>,
    /// How long to wait for another run's lock.
    pub wait: Duration,
}

/// What a split run did, as printed by `--json` (version 1).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Always 1.
    pub version: u32,
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
}

/// The virtual hosts seen so far and their sort group numbers.
struct Vhosts<'a> {
    allowed: Option<&'a HashSet<String>>,
    by_raw: HashMap<Vec<u8>, Result<u32, Reject>>,
    names: Vec<String>,
}

impl Vhosts<'_> {
    fn group(&mut self, raw: &[u8]) -> Result<u32, Reject> {
        if let Some(known) = self.by_raw.get(raw) {
            return *known;
        }
        let result = match format::normalize_vhost(raw) {
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
        };
        self.by_raw.insert(raw.to_vec(), result);
        result
    }
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
/// could not be read.
pub fn run(options: &Options, report: &Reporter) -> Result<(Summary, Outcome), LogsError> {
    let spool = Spool::new(&options.spool);
    spool.prepare()?;
    let _lock = Lock::acquire(&options.spool.join(".split.lock"), options.wait)?;
    let mut summary = Summary {
        version: 1,
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
    let from_inbox = options.files.is_empty();
    let inputs = if from_inbox {
        spool.inbox_files()?
    } else {
        options.files.clone()
    };
    summary.files = inputs.len();
    if inputs.is_empty() {
        return Ok((summary, Outcome::Success));
    }

    let tmp = spool.tmp();
    let mut sorter = Sorter::new(&tmp, options.memory);
    let mut vhosts = Vhosts {
        allowed: options.vhosts.as_ref(),
        by_raw: HashMap::new(),
        names: Vec::new(),
    };
    let mut failed: Vec<bool> = vec![false; inputs.len()];
    let mut reject_files: Vec<PathBuf> = Vec::new();
    let mut stamp = [0u8; time::LEN];
    let mut stamp_time = i64::MIN;

    for (fi, path) in inputs.iter().enumerate() {
        let file_id = u32::try_from(fi).unwrap_or(u32::MAX);
        let mut rejects = Rejects {
            path: tmp.join(format!("rejected-{}-{fi}.log", std::process::id())),
            out: None,
            source: path.display().to_string(),
        };
        let mut line_no = 0u64;
        let mut counts = (0u64, BTreeMap::<&'static str, u64>::new());
        let result = input::open(path).map_err(Step::Read).and_then(|reader| {
            lines::for_each(reader, MAX_LINE, |event| -> Result<(), Step> {
                match event {
                    Event::Line(line) => {
                        line_no += 1;
                        let parsed = format::parse(line).and_then(|entry| {
                            let raw = entry.vhost.or(options.vhost.as_deref().map(str::as_bytes));
                            let group = vhosts.group(raw.ok_or(Reject::NoVhost)?)?;
                            Ok((entry, group))
                        });
                        match parsed {
                            Ok((entry, group)) => {
                                if entry.time != stamp_time {
                                    time::format_utc(entry.time, &mut stamp);
                                    stamp_time = entry.time;
                                }
                                counts.0 += 1;
                                sorter
                                    .push(group, entry.time, file_id, line.len() + 16, |arena| {
                                        format::write_combined(&entry, &stamp, arena);
                                    })
                                    .map_err(Step::Write)
                            }
                            Err(reason) => {
                                *counts.1.entry(reason.as_str()).or_default() += 1;
                                rejects.line(reason, line_no, line).map_err(Step::Write)
                            }
                        }
                    }
                    Event::LongStart(part) => {
                        line_no += 1;
                        *counts.1.entry(Reject::TooLong.as_str()).or_default() += 1;
                        rejects
                            .start(Reject::TooLong, line_no)
                            .map_err(Step::Write)?;
                        rejects
                            .writer()
                            .and_then(|w| w.write_all(part))
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
        match result {
            Ok(()) => {
                summary.lines += line_no;
                summary.accepted += counts.0;
                for (reason, n) in counts.1 {
                    *summary.rejected.entry(reason).or_default() += n;
                }
                if let Some(p) = rejects.finish().map_err(output_err(&tmp))? {
                    reject_files.push(p);
                }
            }
            Err(Step::Write(e)) => return Err(output_err(&tmp)(e)),
            Err(Step::Read(e)) => {
                report.warn(input_err(path)(e));
                failed[fi] = true;
                summary.unreadable.push(path.display().to_string());
                drop(rejects.out.take());
                let _ = std::fs::remove_file(&rejects.path);
            }
        }
    }

    // Write each virtual host's lines, sorted, into tmp/, leaving out the
    // lines of inputs that failed half-way.
    let mut outputs: Vec<(u32, PathBuf)> = Vec::new();
    let mut current: Option<(u32, BufWriter<File>)> = None;
    let mut per_group: Vec<u64> = vec![0; vhosts.names.len()];
    sorter
        .finish(|record| -> io::Result<()> {
            if failed.get(record.file as usize).copied().unwrap_or(false) {
                return Ok(());
            }
            if current.as_ref().is_none_or(|(g, _)| *g != record.group) {
                if let Some((_, w)) = current.take() {
                    close_output(w)?;
                }
                let path = tmp.join(format!("out-{}-{}.log", std::process::id(), record.group));
                let file = File::create(&path)?;
                outputs.push((record.group, path));
                current = Some((record.group, BufWriter::with_capacity(1 << 20, file)));
            }
            if let Some((_, w)) = current.as_mut() {
                w.write_all(record.line)?;
            }
            if let Some(n) = per_group.get_mut(record.group as usize) {
                *n += 1;
            }
            Ok(())
        })
        .map_err(output_err(&tmp))?;
    if let Some((_, w)) = current.take() {
        close_output(w).map_err(output_err(&tmp))?;
    }
    summary.accepted = per_group.iter().sum();

    // Plan the batch: every output into place, every input gone.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut manifest = Manifest {
        version: 1,
        ..Manifest::default()
    };
    let rel = |p: &Path| {
        spool.relative(p).ok_or_else(|| LogsError::Output {
            path: p.to_owned(),
            source: io::Error::other("not a UTF-8 path inside the spool"),
        })
    };
    for (group, path) in &outputs {
        let name = &vhosts.names[*group as usize];
        let to = spool.fresh_name(&format!("pending/{name}"), now, ".log", &manifest.moves);
        summary
            .vhosts
            .insert(name.clone(), per_group[*group as usize]);
        summary.outputs.push(to.clone());
        manifest.moves.push(Move {
            from: rel(path)?,
            to,
        });
    }
    for path in &reject_files {
        let to = spool.fresh_name("rejected", now, ".log", &manifest.moves);
        summary.outputs.push(to.clone());
        manifest.moves.push(Move {
            from: rel(path)?,
            to,
        });
    }
    if from_inbox {
        for (path, failed) in inputs.iter().zip(&failed) {
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
                manifest.moves.push(Move { from, to });
            } else {
                manifest.remove.push(from);
            }
        }
    }
    crate::failpoint("before-commit");
    spool.commit(&manifest)?;

    let outcome = if summary.unreadable.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    };
    Ok((summary, outcome))
}

/// How reading one input failed: reading it (which sets the input aside)
/// or writing what came of it (which ends the run).
enum Step {
    Read(io::Error),
    Write(io::Error),
}

impl From<io::Error> for Step {
    /// Errors the line reader returns come from reading the input.
    fn from(e: io::Error) -> Step {
        Step::Read(e)
    }
}

/// Flushes an output and makes it durable.
fn close_output(w: BufWriter<File>) -> io::Result<()> {
    w.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
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
