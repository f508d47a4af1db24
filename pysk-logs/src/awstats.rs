//! `pysk-logs awstats`: one AWStats configuration per virtual host, and
//! AWStats run for every virtual host with pending logs.
//!
//! Each `awstats.<vhost>.conf` reads its logs through `pysk-logs merge
//! --archive` over the vhost's pending files, shows host names from the
//! cache `resolve` builds (`DNSLookup=2`), and includes a local file for
//! site-wide settings. The files are written atomically and carry a marker
//! line, so that configurations of vhosts that are gone are removed — only
//! those pysk-logs wrote, never an admin's own.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use pysk_common::atomic;
use pysk_common::error::cause;
use pysk_common::exit::Outcome;
use pysk_common::marker;
use pysk_common::report::Reporter;

use crate::error::LogsError;
use crate::format::normalize_vhost;
use pysk_common::error::{read_err, write_err};

/// The first line of every configuration pysk-logs writes.
pub const MARKER: &str = "# Written by pysk-logs awstats: changes here are overwritten.";

/// What `awstats` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The spool root.
    pub spool: PathBuf,
    /// Where the `awstats.<vhost>.conf` files go.
    pub conf_dir: PathBuf,
    /// AWStats' `DirData`.
    pub data_dir: PathBuf,
    /// Permission bits for `DirData`.
    pub data_mode: u32,
    /// The group id `DirData` is given (the web server's group, so that
    /// the AWStats CGI can read it), when set.
    pub data_group: Option<u32>,
    /// The reverse-DNS cache.
    pub dns_cache: PathBuf,
    /// The local file of site-wide settings, included when it exists.
    pub include: PathBuf,
    /// `awstats.pl`.
    pub awstats_pl: PathBuf,
    /// The `pysk-logs` binary the `LogFile` pipe runs.
    pub pysk_logs: PathBuf,
    /// When given, exactly these virtual hosts; otherwise those with a
    /// directory in `pending/` or `processed/`.
    pub vhosts: Option<Vec<String>>,
}

/// What an `awstats` run did (with `--dry-run`, would do), as printed by
/// `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Whether this was a dry run: nothing written, AWStats not run.
    pub dry_run: bool,
    /// Configurations written because they were new or changed.
    pub written: Vec<String>,
    /// Configurations of vhosts that are gone, removed.
    pub removed: Vec<String>,
    /// Vhosts AWStats updated.
    pub updated: Vec<String>,
    /// Vhosts whose update failed (reported).
    pub failed: Vec<String>,
}

/// The summary line printed on stderr.
pub fn describe(summary: &Summary) -> String {
    format!(
        "awstats: {} configuration(s) written, {} removed, {} vhost(s) updated, {} failed",
        summary.written.len(),
        summary.removed.len(),
        summary.updated.len(),
        summary.failed.len()
    )
}

/// The virtual hosts named by the directories in `dir`.
fn vhost_dirs(dir: &Path) -> Result<Vec<String>, LogsError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(read_err(dir)(e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(read_err(dir))?;
        if !entry.file_type().map_err(read_err(entry.path()))?.is_dir() {
            continue;
        }
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| normalize_vhost(n.as_bytes()))
        {
            out.push(name);
        }
    }
    Ok(out)
}

/// Whether `value` can be written inside `"…"` in an AWStats
/// configuration: no quote, no line end (the settings check the paths
/// they resolve with this, to name the switch that holds one).
pub fn quotable(value: &str) -> bool {
    !value.contains(['"', '\n', '\r'])
}

/// Quotes a value for an AWStats configuration line. The settings refuse
/// every path that is not [`quotable`], naming its switch or option, and
/// virtual host names cannot hold a quote; one that still arrives here is
/// a fault of the tool, not of its input.
fn quoted(value: &str) -> Result<String, LogsError> {
    if !quotable(value) {
        return Err(pysk_common::Error::Internal(format!(
            "{value:?} reached an AWStats configuration unchecked (it holds a quote or a line end)"
        ))
        .into());
    }
    Ok(format!("\"{value}\""))
}

/// The configuration for `vhost`.
pub fn config(options: &Options, vhost: &str) -> Result<String, LogsError> {
    let path = |p: &Path| quoted(&p.display().to_string());
    let pending = options.spool.join("pending").join(vhost);
    let log_file = format!(
        "{} merge --archive {} {}/*.log |",
        options.pysk_logs.display(),
        options.spool.join("processed").display(),
        pending.display()
    );
    let mut text = format!(
        "{MARKER}\n\
         LogFile={}\n\
         LogType=W\n\
         LogFormat=1\n\
         SiteDomain={}\n\
         HostAliases={}\n\
         DirData={}\n\
         DNSLookup=2\n\
         DNSStaticCacheFile={}\n",
        quoted(&log_file)?,
        quoted(vhost)?,
        quoted(&format!("www.{vhost}"))?,
        path(&options.data_dir)?,
        path(&options.dns_cache)?,
    );
    if options.include.is_file() {
        text.push_str(&format!("Include {}\n", path(&options.include)?));
    }
    Ok(text)
}

/// Whether the file at `path` is one pysk-logs wrote: it starts with
/// [`MARKER`] (see [`pysk_common::marker`]).
fn ours(path: &Path) -> Result<bool, LogsError> {
    Ok(marker::carries(path, MARKER).map_err(read_err(path))?)
}

/// Whether `vhost` has logs waiting in `pending/`.
fn has_pending(spool: &Path, vhost: &str) -> bool {
    fs::read_dir(spool.join("pending").join(vhost)).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
    })
}

/// One configuration file to write or remove.
#[derive(Debug, Clone)]
struct Change {
    vhost: String,
    path: PathBuf,
    /// What the file holds now (`None`: no file).
    old: Option<String>,
    /// What it is to hold (`None`: it is removed).
    new: Option<String>,
}

/// What an `awstats` run would do, found without changing anything.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    changes: Vec<Change>,
    /// Vhosts with pending logs, for `awstats.pl -update`.
    updates: Vec<String>,
}

/// The virtual hosts to configure: the list given, else those with a
/// directory in `pending/` or `processed/`; sorted, each once.
fn vhosts(options: &Options) -> Result<Vec<String>, LogsError> {
    let mut vhosts = match &options.vhosts {
        Some(list) => list.clone(),
        None => {
            let mut v = vhost_dirs(&options.spool.join("pending"))?;
            v.extend(vhost_dirs(&options.spool.join("processed"))?);
            v
        }
    };
    vhosts.sort();
    vhosts.dedup();
    Ok(vhosts)
}

/// The current text of `path`, `None` when there is none.
fn current(path: &Path) -> Result<Option<String>, LogsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(path)(e).into()),
    }
}

/// The configurations of pysk-logs in `conf_dir` whose vhost is not in
/// `vhosts`: `(vhost, path)`.
fn stale(conf_dir: &Path, vhosts: &[String]) -> Result<Vec<(String, PathBuf)>, LogsError> {
    let entries = match fs::read_dir(conf_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(conf_dir)(e).into()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_err(conf_dir))?.path();
        let Some(vhost) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("awstats."))
            .and_then(|n| n.strip_suffix(".conf"))
        else {
            continue;
        };
        if !vhosts.iter().any(|v| v == vhost) && ours(&path)? {
            out.push((vhost.to_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}

/// Finds what a run would change: configurations new or different,
/// configurations of vhosts that are gone, vhosts to update. Reads only;
/// an admin's own file of the same name is reported and left alone.
pub fn plan(options: &Options, report: &Reporter) -> Result<Plan, LogsError> {
    let vhosts = vhosts(options)?;
    let mut plan = Plan::default();
    for vhost in &vhosts {
        let path = options.conf_dir.join(format!("awstats.{vhost}.conf"));
        let old = current(&path)?;
        if old.is_some() && !ours(&path)? {
            report.warn(format!(
                "{}: not written by pysk-logs; left as it is",
                path.display()
            ));
            continue;
        }
        let new = config(options, vhost)?;
        if old.as_deref() != Some(new.as_str()) {
            plan.changes.push(Change {
                vhost: vhost.clone(),
                path,
                old,
                new: Some(new),
            });
        }
    }
    for (vhost, path) in stale(&options.conf_dir, &vhosts)? {
        let old = current(&path)?;
        plan.changes.push(Change {
            vhost,
            path,
            old,
            new: None,
        });
    }
    plan.updates = vhosts
        .into_iter()
        .filter(|v| has_pending(&options.spool, v))
        .collect();
    Ok(plan)
}

impl Plan {
    /// The `--json` document the real run would print, for `--dry-run
    /// --json`: the configurations it would write and remove, the vhosts
    /// it would update (none has failed, as none has run).
    pub fn summary(&self) -> Summary {
        let (written, removed): (Vec<&Change>, Vec<&Change>) =
            self.changes.iter().partition(|c| c.new.is_some());
        let vhosts = |changes: Vec<&Change>| changes.into_iter().map(|c| c.vhost.clone()).collect();
        Summary {
            dry_run: true,
            written: vhosts(written),
            removed: vhosts(removed),
            updated: self.updates.clone(),
            failed: Vec::new(),
        }
    }

    /// The dry run's output: the unified diff of every configuration to
    /// write or remove, then the AWStats command for each vhost to update.
    pub fn show(&self, options: &Options) -> String {
        let mut out = String::new();
        for c in &self.changes {
            out.push_str(&pysk_common::diff::unified(
                &c.path,
                c.old.as_deref(),
                c.new.as_deref(),
            ));
        }
        for vhost in &self.updates {
            out.push_str(&format!(
                "would run: {} {}\n",
                options.awstats_pl.display(),
                update_args(options, vhost).join(" ")
            ));
        }
        out
    }

    /// Carries the plan out: `DirData` made with its mode and group, the
    /// configurations written and removed, AWStats run for every vhost
    /// with pending logs (a failed update is reported and counted).
    pub fn apply(
        self,
        options: &Options,
        report: &Reporter,
    ) -> Result<(Summary, Outcome), LogsError> {
        prepare_dirs(options)?;
        let mut summary = Summary::default();
        for c in self.changes {
            match &c.new {
                Some(text) => {
                    let opts = atomic::Options {
                        mode: Some(0o644),
                        ..atomic::Options::default()
                    };
                    atomic::replace(&c.path, text.as_bytes(), opts)?;
                    summary.written.push(c.vhost);
                }
                None => {
                    fs::remove_file(&c.path).map_err(write_err(&c.path))?;
                    summary.removed.push(c.vhost);
                }
            }
        }
        atomic::sync_dir(&options.conf_dir).map_err(write_err(&options.conf_dir))?;
        for vhost in self.updates {
            match update(options, &vhost) {
                Ok(()) => {
                    report.verbose(format!("{vhost}: AWStats updated"));
                    summary.updated.push(vhost);
                }
                Err(why) => {
                    report.warn(why);
                    summary.failed.push(vhost);
                }
            }
        }
        let outcome = if summary.failed.is_empty() {
            Outcome::Success
        } else {
            Outcome::Partial
        };
        Ok((summary, outcome))
    }
}

/// Makes the configuration directory and `DirData`, the latter with its
/// mode and group.
fn prepare_dirs(options: &Options) -> Result<(), LogsError> {
    fs::create_dir_all(&options.conf_dir).map_err(write_err(&options.conf_dir))?;
    fs::create_dir_all(&options.data_dir).map_err(write_err(&options.data_dir))?;
    fs::set_permissions(
        &options.data_dir,
        fs::Permissions::from_mode(options.data_mode),
    )
    .map_err(write_err(&options.data_dir))?;
    if let Some(gid) = options.data_group {
        std::os::unix::fs::chown(&options.data_dir, None, Some(gid))
            .map_err(write_err(&options.data_dir))?;
    }
    Ok(())
}

/// The arguments of `awstats.pl` that update `vhost`.
fn update_args(options: &Options, vhost: &str) -> Vec<String> {
    vec![
        format!("-config={vhost}"),
        format!("-configdir={}", options.conf_dir.display()),
        "-update".to_owned(),
    ]
}

/// Runs `awstats.pl -update` for `vhost`; the error is the line to report.
fn update(options: &Options, vhost: &str) -> Result<(), String> {
    let out = Command::new(&options.awstats_pl)
        .args(update_args(options, vhost))
        .output()
        .map_err(|e| {
            format!(
                "{}: cannot run: {}",
                options.awstats_pl.display(),
                cause(&e)
            )
        })?;
    if out.status.success() {
        return Ok(());
    }
    let last_of = |t: &[u8]| {
        String::from_utf8_lossy(t)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_owned)
    };
    let last = last_of(&out.stderr).or_else(|| last_of(&out.stdout));
    Err(format!(
        "{vhost}: awstats.pl failed ({}): {}",
        out.status,
        last.as_deref().unwrap_or("no output")
    ))
}

/// Writes the configurations, removes stale ones, and runs AWStats for
/// every vhost with pending logs: [`plan`], then [`Plan::apply`].
pub fn run(options: &Options, report: &Reporter) -> Result<(Summary, Outcome), LogsError> {
    plan(options, report)?.apply(options, report)
}
