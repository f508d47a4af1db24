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

use pysk_common::atomic::{self, Written};
use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::error::{LogsError, input_err, output_err};
use crate::format::normalize_vhost;

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
    /// The group `DirData` belongs to (the web server's, so that the
    /// AWStats CGI can read it), when set.
    pub data_group: Option<String>,
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

/// What an `awstats` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
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
        Err(e) => return Err(input_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(input_err(dir))?;
        if !entry.file_type().map_err(input_err(entry.path()))?.is_dir() {
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

/// Quotes a value for an AWStats configuration line (no `"` can occur in
/// the paths and names we write, which are checked; this keeps it so).
fn quoted(value: &str) -> Result<String, LogsError> {
    if value.contains(['"', '\n', '\r']) {
        return Err(LogsError::Setting {
            name: "awstats".into(),
            reason: format!("{value:?} cannot be written into an AWStats configuration"),
        });
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

/// Whether the file at `path` is one pysk-logs wrote.
fn ours(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|t| t.starts_with(MARKER))
}

/// Whether `vhost` has logs waiting in `pending/`.
fn has_pending(spool: &Path, vhost: &str) -> bool {
    fs::read_dir(spool.join("pending").join(vhost)).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
    })
}

/// Writes the configurations, removes stale ones, and runs AWStats for
/// every vhost with pending logs.
pub fn run(options: &Options, report: &Reporter) -> Result<(Summary, Outcome), LogsError> {
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
    let mut summary = Summary::default();

    fs::create_dir_all(&options.conf_dir).map_err(output_err(&options.conf_dir))?;
    fs::create_dir_all(&options.data_dir).map_err(output_err(&options.data_dir))?;
    fs::set_permissions(
        &options.data_dir,
        fs::Permissions::from_mode(options.data_mode),
    )
    .map_err(output_err(&options.data_dir))?;
    if let Some(name) = &options.data_group {
        let group = nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| LogsError::Setting {
                name: "logs_awstats_data_group".into(),
                reason: format!("no group {name:?} on this system"),
            })?;
        std::os::unix::fs::chown(&options.data_dir, None, Some(group.gid.as_raw()))
            .map_err(output_err(&options.data_dir))?;
    }

    for vhost in &vhosts {
        let path = options.conf_dir.join(format!("awstats.{vhost}.conf"));
        if path.exists() && !ours(&path) {
            report.warn(format!(
                "{}: not written by pysk-logs; left as it is",
                path.display()
            ));
            continue;
        }
        let text = config(options, vhost)?;
        let opts = atomic::Options {
            mode: Some(0o644),
            ..atomic::Options::default()
        };
        if atomic::replace(&path, text.as_bytes(), opts)? == Written::Replaced {
            summary.written.push(vhost.clone());
        }
    }

    // Configurations pysk-logs wrote for vhosts that are gone.
    for entry in fs::read_dir(&options.conf_dir).map_err(input_err(&options.conf_dir))? {
        let path = entry.map_err(input_err(&options.conf_dir))?.path();
        let Some(vhost) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("awstats."))
            .and_then(|n| n.strip_suffix(".conf"))
        else {
            continue;
        };
        if !vhosts.iter().any(|v| v == vhost) && ours(&path) {
            fs::remove_file(&path).map_err(output_err(&path))?;
            summary.removed.push(vhost.to_owned());
        }
    }
    atomic::sync_dir(&options.conf_dir).map_err(output_err(&options.conf_dir))?;

    for vhost in vhosts.iter().filter(|v| has_pending(&options.spool, v)) {
        let out = Command::new(&options.awstats_pl)
            .arg(format!("-config={vhost}"))
            .arg(format!("-configdir={}", options.conf_dir.display()))
            .arg("-update")
            .output();
        match out {
            Ok(out) if out.status.success() => {
                report.verbose(format!("{vhost}: AWStats updated"));
                summary.updated.push(vhost.clone());
            }
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let err = String::from_utf8_lossy(&out.stderr);
                let last_of = |t: &str| {
                    t.lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .map(str::to_owned)
                };
                let last = last_of(&err).or_else(|| last_of(&text));
                report.warn(format!(
                    "{vhost}: awstats.pl failed ({}): {}",
                    out.status,
                    last.as_deref().unwrap_or("no output")
                ));
                summary.failed.push(vhost.clone());
            }
            Err(e) => {
                report.warn(format!("{}: cannot run: {e}", options.awstats_pl.display()));
                summary.failed.push(vhost.clone());
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
