//! `conf diff` and `conf apply`: the configuration tree (`hv_conf_tree`)
//! rendered for each host with that host's switches ([`render`]), compared
//! with what the host has, and (apply) the changed paths written there
//! atomically ([`remote`]); as jobs of the same [`fanout`] as `exec`, with
//! the same classes, summary, `--json` and `last-run.json`.
//!
//! Every host's tree is rendered before any host is contacted, so an
//! unknown placeholder stops the run with no host touched. Each host then
//! gets one ssh that prints the current state of its paths; `apply` takes
//! the tool's lock (`<hv_state_dir>/pysk-hv.lock`, `--wait`) first and
//! gives each host that has changes a second ssh, the new files on its
//! stdin. `--root DIR` puts every path under DIR on the host (`{host}` in
//! DIR is the host's name), for trying a tree out in scratch directories.

pub mod remote;
pub mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::exit::Outcome;
use pysk_common::inventory::Host;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;
use pysk_common::switches::{self, Switches};

use crate::classify::Class;
use crate::error::HvError;
use crate::exec;
use crate::fanout::{self, Limits};
use crate::ssh;
use crate::summary::{self, Summary};
use remote::Remote;
use render::{Entry, Kind};

/// Show the changes, or make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Print the unified diff of every path that would change.
    Diff,
    /// Write the changed paths on each host.
    Apply,
}

/// The options of `conf`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts, ssh, fanout, timeout, state, `--json`, `--dry-run`, as for
    /// `exec` (its command, `--gather` and `--outdir` unused).
    pub run: crate::run::Run,
    /// Diff or apply (`apply --dry-run` is `diff`).
    pub action: Action,
    /// The configuration directory (switches and excludes per host).
    pub config_dir: PathBuf,
    /// The configuration tree.
    pub tree: PathBuf,
    /// The prefix of every path on the host; `{host}` is the host's name.
    pub root: String,
    /// How long `apply` waits for the lock.
    pub wait: Duration,
}

/// What both passes over the hosts share.
struct Pass<'a> {
    options: &'a Options,
    hosts: &'a [Host],
    private: &'a Path,
    report: &'a Reporter,
}

/// One host's rendered tree and what it has now.
struct Plan {
    root: String,
    entries: Vec<Entry>,
    changed: Vec<Entry>,
    /// The paths `apply` will not write: a directory, or something that
    /// is no directory above them, is in the way on the host.
    conflicts: Vec<String>,
    text: String,
}

/// Runs `conf diff` or `conf apply`.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, HvError> {
    let run = &options.run;
    let Some(prepared) = crate::run::prepare(run, report)? else {
        return Ok(Outcome::Success);
    };
    let mut plans = prepared
        .hosts
        .iter()
        .map(|host| plan(options, host))
        .collect::<Result<Vec<_>, _>>()?;
    let apply = options.action == Action::Apply && !run.dry_run;
    // Taken after every host's tree is rendered and before any host is
    // read, so that what apply writes is what it compared; a diff waits
    // for a run that holds it, creating nothing.
    let lock_file = run.state_dir.join("pysk-hv.lock");
    let _lock = match apply {
        true => Some(Lock::acquire(&lock_file, options.wait)?),
        false => Lock::existing(&lock_file, options.wait)?,
    };
    let pass = Pass {
        options,
        hosts: &prepared.hosts,
        private: prepared.private.path(),
        report,
    };
    let mut outcomes = read_states(&pass, &mut plans, out)?;
    if apply {
        write_changes(&pass, &plans, &mut outcomes, out)?;
    }
    tell(options, apply, &plans, &mut outcomes, report, out)?;
    exec::conclude(run, &outcomes, report, || document(run, &outcomes))
}

/// The `--json` document: exec's, `dry_run` true for `apply --dry-run`
/// (and `diff --dry-run`).
fn document(run: &crate::run::Run, outcomes: &[fanout::Outcome]) -> Summary {
    Summary {
        dry_run: run.dry_run,
        ..summary::summary(outcomes, true)
    }
}

/// `host`'s rendered tree; nothing compared yet.
fn plan(options: &Options, host: &Host) -> Result<Plan, HvError> {
    let switches = Switches::load(&options.config_dir, &host.name)?;
    let exclude = switches::exclude(&options.config_dir, &host.name)?;
    let entries = render::render(&options.tree, &switches, &exclude)?;
    Ok(Plan {
        root: options.root.replace("{host}", &host.name),
        entries,
        changed: Vec::new(),
        conflicts: Vec::new(),
        text: String::new(),
    })
}

/// Each host's paths read back in one ssh; the changed ones and their
/// diff put into its plan. A host whose output cannot be read fails.
fn read_states(
    pass: &Pass<'_>,
    plans: &mut [Plan],
    out: &mut dyn Write,
) -> Result<Vec<fanout::Outcome>, HvError> {
    let (run, hosts, private, report) = (&pass.options.run, pass.hosts, pass.private, pass.report);
    let mut jobs = Vec::new();
    for (host, plan) in hosts.iter().zip(plans.iter()) {
        let paths: Vec<String> = plan
            .entries
            .iter()
            .map(|e| format!("{}{}", plan.root, e.path))
            .collect();
        let input = private.join(format!("{}.paths", host.name));
        std::fs::write(&input, remote::path_list(&paths))
            .map_err(pysk_common::error::write_err(&input))?;
        jobs.extend(fed(run, host, private, remote::READ, input)?);
    }
    let mut outcomes = fanout::run(&jobs, limits(run, read_keep(plans)), report, out)?;
    for (o, plan) in outcomes.iter_mut().zip(plans.iter_mut()) {
        let stdout = std::mem::take(&mut o.stdout);
        if o.class != Class::Ok {
            continue;
        }
        match remote::parse(&stdout, plan.entries.len()) {
            Ok(states) => {
                compare(&o.host, plan, &states);
                warn_readable_secrets(&o.host, plan, report);
            }
            Err(why) => {
                o.class = Class::Exit(1);
                o.stderr
                    .extend_from_slice(format!("unreadable state: {why}\n").as_bytes());
                report.warn(format!("{}: unreadable state: {why}", o.host));
            }
        }
    }
    Ok(outcomes)
}

/// `host`'s job running `script` with the file `input` as its stdin.
fn fed(
    run: &crate::run::Run,
    host: &Host,
    private: &Path,
    script: &str,
    input: PathBuf,
) -> Result<Vec<fanout::Job>, HvError> {
    let shell = ssh::remote_command(&[script.to_owned()], run.timeout);
    let mut jobs = crate::run::jobs(run, std::slice::from_ref(host), private, &shell)?;
    for job in &mut jobs {
        job.stdin = Some(input.clone());
    }
    Ok(jobs)
}

/// The ssh limits of either pass: output kept, not shown, up to `keep`
/// bytes a stream.
fn limits(run: &crate::run::Run, keep: usize) -> Limits<'static> {
    Limits {
        keep,
        ..run.limits(None, false, !run.json)
    }
}

/// What the read pass keeps of a host's answer: the state of files as
/// large as the tree's twice over, and at least [`fanout::KEEP`]; a host
/// whose files are larger still fails as an unreadable state, never
/// compared on a part.
fn read_keep(plans: &[Plan]) -> usize {
    let tree = |plan: &Plan| -> usize {
        plan.entries
            .iter()
            .map(|e| match &e.kind {
                Kind::File { bytes, .. } => bytes.len() + e.path.len() + 64,
                Kind::Link(target) => target.len() + e.path.len() + 64,
            })
            .sum()
    };
    let largest = plans.iter().map(tree).max().unwrap_or(0);
    largest.saturating_mul(2).max(fanout::KEEP)
}

/// Puts into `plan` the entries that differ from `states` and their
/// diff, and the paths something on the host is in the way of.
fn compare(host: &str, plan: &mut Plan, states: &[Remote]) {
    for (entry, state) in plan.entries.iter().zip(states) {
        if !remote::differs(entry, state) {
            continue;
        }
        let label = format!("{host}:{}{}", plan.root, entry.path);
        if let Some(line) = conflict(&label, state) {
            plan.text.push_str(&format!("{line}\n"));
            plan.conflicts.push(line);
            continue;
        }
        plan.text.push_str(&diff_text(&label, entry, state));
        plan.changed.push(entry.clone());
    }
}

/// Why `apply` will not write the path `label` on a host in `state`, if
/// it will not.
fn conflict(label: &str, state: &Remote) -> Option<String> {
    let why = match state {
        Remote::Dir => "a directory on the host".to_owned(),
        Remote::Blocked(above) => format!("{above} on the host is not a directory"),
        _ => return None,
    };
    Some(format!("{label}: {why}; apply will not replace it"))
}

/// A warning for each file of `plan` that holds a secret (filled from a
/// secret key) yet is world-readable by its mode in the tree.
fn warn_readable_secrets(host: &str, plan: &Plan, report: &Reporter) {
    for entry in &plan.entries {
        let Kind::File {
            mode, secret: true, ..
        } = entry.kind
        else {
            continue;
        };
        if mode & 0o004 != 0 {
            report.warn(format!(
                "{host}:{}{}: holds a secret, yet its mode {mode:04o} lets everyone read it",
                plan.root, entry.path
            ));
        }
    }
}

/// How `entry` differs from `state`, for people: a unified diff of text,
/// else a line.
fn diff_text(label: &str, entry: &Entry, state: &Remote) -> String {
    let (old, old_mode) = match state {
        Remote::File(bytes, mode) => (Some(bytes.as_slice()), Some(*mode)),
        _ => (None, None),
    };
    let mut text = String::new();
    if let Remote::Link(target) = state {
        text.push_str(&format!("{label}: now a link to {target}\n"));
    }
    match &entry.kind {
        Kind::Link(target) => text.push_str(&format!("{label}: to be a link to {target}\n")),
        Kind::File {
            bytes,
            mode,
            secret: true,
        } => {
            match old {
                None => text.push_str(&format!("{label}: new file (mode {mode:04o}, not shown)\n")),
                Some(old) if old != bytes.as_slice() => text.push_str(&format!(
                    "{label}: contents differ (mode {mode:04o}, not shown)\n"
                )),
                Some(_) => {}
            }
            text.push_str(&mode_change(label, old_mode, *mode));
        }
        Kind::File { bytes, mode, .. } => {
            let old_text = old.map(std::str::from_utf8);
            match (old_text, std::str::from_utf8(bytes)) {
                (Some(Err(_)), _) | (_, Err(_)) => {
                    if old != Some(bytes.as_slice()) {
                        text.push_str(&format!("Binary files {label} differ\n"));
                    }
                }
                (old_text, Ok(new)) => {
                    let old_text = old_text.and_then(Result::ok);
                    text.push_str(&pysk_common::diff::unified(
                        Path::new(label),
                        old_text,
                        Some(new),
                    ));
                    if old_text.is_none() && new.is_empty() {
                        text.push_str(&format!("{label}: to be an empty file\n"));
                    }
                }
            }
            text.push_str(&mode_change(label, old_mode, *mode));
        }
    }
    text
}

/// The line telling that the mode of an existing file changes, if it
/// does.
fn mode_change(label: &str, old: Option<u32>, new: u32) -> String {
    match old {
        Some(old) if old != new => format!("{label}: mode {old:04o} to be {new:04o}\n"),
        _ => String::new(),
    }
}

/// `apply`: one more ssh for each host that was read and has changes,
/// its new files on stdin; its outcome replaces the read's.
fn write_changes(
    pass: &Pass<'_>,
    plans: &[Plan],
    outcomes: &mut [fanout::Outcome],
    out: &mut dyn Write,
) -> Result<(), HvError> {
    let (run, hosts, private, report) = (&pass.options.run, pass.hosts, pass.private, pass.report);
    let mut jobs = Vec::new();
    let mut which = Vec::new();
    for (index, (host, plan)) in hosts.iter().zip(plans).enumerate() {
        let nothing = plan.changed.is_empty() && plan.conflicts.is_empty();
        if outcomes[index].class != Class::Ok || nothing {
            continue;
        }
        if !plan.conflicts.is_empty() {
            refuse(&mut outcomes[index], &plan.conflicts, report);
            continue;
        }
        let input = private.join(format!("{}.in", host.name));
        let dirs = render::dir_modes(&pass.options.tree, &plan.changed)?;
        std::fs::write(&input, remote::payload(&dirs, &plan.changed, &plan.root))
            .map_err(pysk_common::error::write_err(&input))?;
        jobs.extend(fed(run, host, private, remote::WRITE, input)?);
        which.push(index);
    }
    let written = fanout::run(&jobs, limits(run, fanout::KEEP), report, out)?;
    for (index, o) in which.into_iter().zip(written) {
        outcomes[index] = o;
    }
    Ok(())
}

/// Fails a host that something is in the way on, before anything is sent
/// to it: each path told, and that nothing was changed.
fn refuse(o: &mut fanout::Outcome, conflicts: &[String], report: &Reporter) {
    o.class = Class::Exit(1);
    for line in conflicts {
        report.warn(line);
        o.stderr.extend_from_slice(format!("{line}\n").as_bytes());
    }
    let line = format!("{}: nothing was changed", o.host);
    report.warn(&line);
    o.stderr.extend_from_slice(b"nothing was changed\n");
}

/// Per host: the diffs (diff), then `host: N changed` or `host:
/// unchanged`, on `out` for a diff, through `report` for what apply did;
/// under `--json` the same text as each host's stdout.
fn tell(
    options: &Options,
    applied: bool,
    plans: &[Plan],
    outcomes: &mut [fanout::Outcome],
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(), HvError> {
    for (o, plan) in outcomes.iter_mut().zip(plans) {
        o.stdout.clear();
        if o.class != Class::Ok {
            continue;
        }
        let mut text = if applied {
            String::new()
        } else {
            plan.text.clone()
        };
        let (n, m) = (plan.changed.len(), plan.conflicts.len());
        text.push_str(&match (n, m) {
            (0, 0) => format!("{}: unchanged\n", o.host),
            (_, 0) => format!("{}: {n} changed\n", o.host),
            _ => format!("{}: {n} changed, {m} in the way\n", o.host),
        });
        if options.run.json {
            o.stdout = text.into_bytes();
        } else if applied {
            report.info(text.trim_end());
        } else {
            out.write_all(text.as_bytes())
                .map_err(pysk_common::Error::Stdout)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8], mode: u32) -> Entry {
        Entry {
            path: "/f".into(),
            kind: Kind::File {
                bytes: bytes.to_vec(),
                mode,
                secret: false,
            },
        }
    }

    #[test]
    fn modes_links_and_binary_files_are_told_in_a_line() {
        let same = Remote::File(b"a\n".to_vec(), 0o644);
        assert_eq!(
            diff_text("h:/f", &file(b"a\n", 0o600), &same),
            "h:/f: mode 0644 to be 0600\n"
        );
        assert_eq!(
            diff_text("h:/f", &file(b"\xff", 0o644), &same),
            "Binary files h:/f differ\n"
        );
        let link = Entry {
            path: "/f".into(),
            kind: Kind::Link("/t".into()),
        };
        assert_eq!(
            diff_text("h:/f", &link, &Remote::Link("/old".into())),
            "h:/f: now a link to /old\nh:/f: to be a link to /t\n"
        );
        assert_eq!(
            diff_text("h:/f", &file(b"", 0o644), &Remote::Missing),
            "h:/f: to be an empty file\n"
        );
    }

    #[test]
    fn a_secret_files_contents_are_never_shown() {
        let mut secret = file(b"pw=new\n", 0o600);
        if let Kind::File { secret: s, .. } = &mut secret.kind {
            *s = true;
        }
        let old = Remote::File(b"pw=old\n".to_vec(), 0o640);
        assert_eq!(
            diff_text("h:/f", &secret, &old),
            "h:/f: contents differ (mode 0600, not shown)\nh:/f: mode 0640 to be 0600\n"
        );
        assert_eq!(
            diff_text("h:/f", &secret, &Remote::Missing),
            "h:/f: new file (mode 0600, not shown)\n"
        );
        let same = Remote::File(b"pw=new\n".to_vec(), 0o600);
        assert_eq!(diff_text("h:/f", &secret, &same), "");
    }
}
